//! The decode kernels' launcher: one NVRTC module per GGML type (compiled
//! on first use of that type), each holding the F32 and BF16 I/O kernels
//! `quantized_matmul_decode_<type>_<io>` instantiated from the one template
//! in `decode.cu`.

use bytemuck::{Pod, Zeroable};

use super::cuda::{kernel_name, register_per_type};
use super::GgmlQuantizedMatmulParams;
use crate::encoder::{KernelArg, LaunchConfig};
use crate::formats::GgmlType;
use crate::kernels::KernelRegistry;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

pub(crate) const SOURCE: &str = include_str!("decode.cu");

/// Weight rows per CTA, CTAs per cluster (splitting k), threads per CTA,
/// ring depth: `QMV_ROWS`, `QMV_CLUSTER`, `QMV_WARPS * 32`, `QMV_STAGES`
/// in `decode.cu`.
const ROWS: usize = 64;
const CLUSTER: usize = 8;
const THREADS: u32 = 128;
const STAGES: usize = 3;

/// Mirrors `QmvParams` in `decode.cu`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct QmvParams {
    m: u32,
    n: u32,
    k: u32,
    row_bytes: u32,
    row_blocks: u32,
    pad: u32,
}

/// Registers one module per GGML type: the shared source plus the line
/// that instantiates that type's two kernels.
pub(crate) fn register(registry: &KernelRegistry) -> Result<()> {
    register_per_type(registry, "decode", |ty| {
        let tag = ty.name().to_ascii_lowercase();
        format!("{SOURCE}\nQMV_INSTANTIATE({tag})\n")
    })
}

/// The kernel's unit of decoding: bytes and elements of one block (float
/// types are read in blocks of 32 elements; `Dq_<type>` in `decode.cu`).
fn decode_block(ty: GgmlType) -> (usize, usize) {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => (32 * ty.type_size(), 32),
        _ => (ty.type_size(), ty.block_size()),
    }
}

/// Dynamic shared memory of one CTA, from the same constants as `qmv` in
/// `decode.cu`: a ring of stages (64 weight rows and `m` input rows, each
/// in whole 16-byte granules) and the f16 B fragments of one stage.
fn shared_bytes(ty: GgmlType, m: usize, io: DType) -> usize {
    let (bb, be) = decode_block(ty);
    let sb = (160 / bb).clamp(1, 8);
    let w_slot = (sb * bb + 29) / 16 * 16;
    let x_slot = (sb * be * io.size_of() + 29) / 16 * 16;
    STAGES * (ROWS * w_slot + m * x_slot) + sb * be * 16
}

pub(super) fn launch(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    p: &GgmlQuantizedMatmulParams,
) -> Result<()> {
    let (_, be) = decode_block(p.ggml_type);
    let row_bytes = weight.byte_len() / p.n;
    // The kernel addresses a 64-row tile with 32-bit offsets.
    if row_bytes * ROWS >= 1 << 32 {
        return Err(MlxError::unsupported(
            super::OP,
            format!(
                "the decode path takes weight rows under 64 MiB; a row holds {row_bytes} bytes"
            ),
        ));
    }
    let dim = |what: &str, v: usize| {
        u32::try_from(v).map_err(|_| {
            MlxError::shape(
                super::OP,
                format!("{what} = {v} is too large for the decode kernels"),
            )
        })
    };
    let params = QmvParams {
        m: dim("m", p.m)?,
        n: dim("n", p.n)?,
        k: dim("k", p.k)?,
        row_bytes: dim("row bytes", row_bytes)?,
        row_blocks: dim("blocks per row", p.k.div_ceil(be))?,
        pad: 0,
    };
    let config = LaunchConfig {
        grid: (dim("CTAs", p.n.div_ceil(ROWS) * CLUSTER)?, 1, 1),
        block: (THREADS, 1, 1),
        shared_mem_bytes: shared_bytes(p.ggml_type, p.m, input.dtype()) as u32,
    };
    enc.dispatch_kernel(
        &kernel_name("decode", p.ggml_type, input.dtype()),
        config,
        &[
            KernelArg::Buffer(input),
            KernelArg::Buffer(weight),
            KernelArg::Buffer(output),
            KernelArg::pod(&params),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest CTA (Q6_K, 8 rows of F32 input) still fits twice on an
    /// H100/H200 multiprocessor (228 KiB, 1 KiB reserved per CTA).
    #[test]
    fn shared_memory_fits_two_ctas() {
        for ty in GgmlType::ALL {
            let bytes = shared_bytes(ty, 8, DType::F32);
            assert!(2 * (bytes + 1024) <= 228 * 1024, "{ty}: {bytes}");
        }
    }
}
