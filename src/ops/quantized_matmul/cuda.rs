//! The CUDA launcher: sends each product to the vector, decode or prefill
//! kernels.

use super::{GgmlQuantizedMatmulParams, QuantizedMatmulPath};
use crate::formats::GgmlType;
use crate::kernels::KernelRegistry;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

pub(crate) use super::decode::register as register_decode;
pub(crate) use super::prefill::register as register_prefill;
pub(crate) use super::vector::register as register_vector;

pub(super) fn quantized_matmul(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    p: &GgmlQuantizedMatmulParams,
    path: QuantizedMatmulPath,
) -> Result<()> {
    crate::ops::validate::hopper_or_newer(
        super::OP,
        enc,
        "the CUDA kernels (bulk async copies, thread-block clusters, wgmma)",
    )?;
    match path {
        QuantizedMatmulPath::Prefill => super::prefill::launch(enc, input, weight, output, p),
        QuantizedMatmulPath::Vector => super::vector::launch(enc, input, weight, output, p),
        _ => super::decode::launch(enc, input, weight, output, p),
    }
}

/// The kernel `quantized_matmul_<path>_<type>_<io>` (`path` is `vector`,
/// `decode` or `prefill`, `type` GGML's name in lower case, `io` `f32` or `bf16`).
pub(crate) fn kernel_name(path: &str, ty: GgmlType, io: DType) -> String {
    let io = if io == DType::BF16 { "bf16" } else { "f32" };
    format!(
        "quantized_matmul_{path}_{}_{io}",
        ty.name().to_ascii_lowercase()
    )
}

/// The shape error for a value too large for a path's kernels.
pub(super) fn too_big(path: &str, what: &str, v: usize) -> MlxError {
    MlxError::shape(
        super::OP,
        format!("{what} = {v} is too large for the {path} kernels"),
    )
}

/// `v` as a 32-bit kernel argument of a path, or `too_big`.
pub(super) fn kernel_u32(path: &str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| too_big(path, what, v))
}

/// Registers one module per GGML type of `types` for a path, holding that
/// type's F32 and BF16 kernels, so that a model compiles only the types it
/// uses (each instantiation of these kernels takes NVRTC about a second).
/// `source(ty)` is the module's whole source.
pub(super) fn register_per_type(
    registry: &KernelRegistry,
    path: &str,
    types: &[GgmlType],
    source: impl Fn(GgmlType) -> String,
) -> Result<()> {
    types.iter().try_for_each(|&ty| {
        let kernels = [DType::F32, DType::BF16].map(|io| kernel_name(path, ty, io));
        let names = kernels.each_ref().map(String::as_str);
        let module = format!("quantized_matmul_{path}_{}", ty.name().to_ascii_lowercase());
        registry.register_module(&module, source(ty), &names)
    })
}
