//! Ops. Each family is a vertical slice in its own folder: `mod.rs` (public
//! function, params, validation), `cpu.rs` (the reference), `cuda.rs` (the
//! launcher) and `<family>.cu` (the kernels).

pub mod cast;
pub mod copy;
pub mod elementwise;
pub mod fill;
pub mod gdn;
pub mod gdn_layer;
mod host;
pub mod quantized_matmul;
mod validate;

use crate::encoder::{CommandEncoder, LaunchConfig};
use crate::kernels::KernelRegistry;
use crate::Result;

/// Registers every kernel module of the crate's ops with `registry`.
pub(crate) fn register_builtin_kernels(registry: &KernelRegistry) -> Result<()> {
    registry.register_header("ggml_blocks.cuh", crate::formats::GGML_BLOCKS_CUH)?;
    let (gdn_header, gdn_header_source) = gdn::prefill::cuda::HEADER;
    registry.register_header(gdn_header, gdn_header_source)?;
    let modules: [(&str, &'static str, &[&str]); 9] = [
        ("fill", fill::cuda::SOURCE, fill::cuda::KERNELS),
        ("copy", copy::cuda::SOURCE, copy::cuda::KERNELS),
        ("cast", cast::cuda::SOURCE, cast::cuda::KERNELS),
        (
            "elementwise",
            elementwise::cuda::SOURCE,
            elementwise::cuda::KERNELS,
        ),
        (
            "gdn_layer",
            gdn_layer::cuda::SOURCE,
            gdn_layer::cuda::KERNELS,
        ),
        (
            "gdn_prefill_prep",
            gdn::prefill::cuda::PREP_SOURCE,
            gdn::prefill::cuda::PREP_KERNELS,
        ),
        (
            "gdn_prefill_state",
            gdn::prefill::cuda::STATE_SOURCE,
            gdn::prefill::cuda::STATE_KERNELS,
        ),
        (
            "gdn_prefill_state_wg",
            gdn::prefill::cuda::STATE_WG_SOURCE,
            gdn::prefill::cuda::STATE_WG_KERNELS,
        ),
        (
            "gdn_decode",
            gdn::decode::cuda::SOURCE,
            gdn::decode::cuda::KERNELS,
        ),
    ];
    modules
        .iter()
        .try_for_each(|(name, source, kernels)| registry.register_module(name, *source, kernels))?;
    quantized_matmul::cuda::register_vector(registry)?;
    quantized_matmul::cuda::register_decode(registry)?;
    quantized_matmul::cuda::register_prefill(registry)
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
