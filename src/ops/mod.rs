//! Ops. Each family is a vertical slice in its own folder: `mod.rs` (public
//! function, params, validation), `cpu.rs` (the reference), `cuda.rs` (the
//! launcher) and `<family>.cu` (the kernels).

pub mod cast;
pub mod copy;
pub mod elementwise;
pub mod fill;
pub mod gdn;
mod host;
pub mod quantized_matmul;
mod validate;

use crate::encoder::{CommandEncoder, LaunchConfig};
use crate::kernels::KernelRegistry;
use crate::Result;

/// Registers every kernel module of the crate's ops with `registry`.
pub(crate) fn register_builtin_kernels(registry: &KernelRegistry) -> Result<()> {
    registry.register_header("ggml_blocks.cuh", crate::formats::GGML_BLOCKS_CUH)?;
    quantized_matmul::cuda::register_decode_kernels(registry)?;
    let modules: [(&str, &'static str, &[&str]); 5] = [
        ("fill", fill::cuda::SOURCE, fill::cuda::KERNELS),
        ("copy", copy::cuda::SOURCE, copy::cuda::KERNELS),
        ("cast", cast::cuda::SOURCE, cast::cuda::KERNELS),
        (
            "elementwise",
            elementwise::cuda::SOURCE,
            elementwise::cuda::KERNELS,
        ),
        (
            "quantized_matmul_prefill",
            quantized_matmul::cuda::PREFILL_SOURCE,
            quantized_matmul::cuda::PREFILL_KERNELS,
        ),
    ];
    // A family whose kernels are not written yet lists none: nothing to register.
    modules
        .iter()
        .filter(|(_, _, kernels)| !kernels.is_empty())
        .try_for_each(|(name, source, kernels)| registry.register_module(name, *source, kernels))
}

/// A 1-D grid-stride launch over `n` items: enough blocks to fill the GPU
/// several times over, never more than the items need.
pub(crate) fn grid_stride_launch(enc: &CommandEncoder, n: u64, threads: u32) -> LaunchConfig {
    let sms = enc
        .device()
        .cuda_properties()
        .map_or(1, |p| p.sm_count.max(1)) as u64;
    let blocks = n.div_ceil(threads as u64).clamp(1, sms * 32);
    LaunchConfig::linear(blocks as u32, threads)
}
