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
use crate::{CommandEncoder, MlxBuffer, MlxError, Result};

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
    phase_blocks: u32,
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

/// Most bytes of B fragments (f16 input values) a CTA holds at once.
const PHASE_BUDGET: usize = 32 << 10;

/// Blocks per stage (`SB` in `decode.cu`).
fn stage_blocks(ty: GgmlType) -> usize {
    (160 / decode_block(ty).0).clamp(1, 8)
}

/// Blocks whose B fragments a CTA converts at once: its whole k range when
/// that fits `PHASE_BUDGET`, else fewer, in whole stages. Each block takes
/// 16 bytes per input row per 8 elements.
fn phase_blocks(ty: GgmlType, m: usize, k: usize) -> usize {
    let (_, be) = decode_block(ty);
    let sb = stage_blocks(ty);
    let per_block = be / 8 * 16 * m;
    let cta_blocks = k.div_ceil(be).div_ceil(CLUSTER).div_ceil(sb) * sb;
    (PHASE_BUDGET / per_block / sb * sb).clamp(sb, cta_blocks.max(sb))
}

/// Dynamic shared memory of one CTA, from the same constants as `qmv` in
/// `decode.cu`: a ring of stages (64 weight rows, each in whole 16-byte
/// granules) and the B fragments of one phase.
fn shared_bytes(ty: GgmlType, m: usize, k: usize) -> usize {
    let (bb, be) = decode_block(ty);
    let w_slot = (stage_blocks(ty) * bb + 29) / 16 * 16;
    STAGES * ROWS * w_slot + phase_blocks(ty, m, k) * be / 8 * 16 * m
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
    let params = QmvParams {
        m: p.m as u32,
        n: p.n as u32,
        k: p.k as u32,
        row_bytes: row_bytes as u32,
        row_blocks: p.k.div_ceil(be) as u32,
        phase_blocks: phase_blocks(p.ggml_type, p.m, p.k) as u32,
    };
    let tiles = p.n.div_ceil(ROWS);
    let config = LaunchConfig {
        grid: ((tiles * CLUSTER) as u32, 1, 1),
        block: (THREADS, 1, 1),
        shared_mem_bytes: shared_bytes(p.ggml_type, p.m, p.k) as u32,
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

    /// The largest CTA (8 input rows, a k long enough to need several
    /// phases) still fits twice on an H100/H200 multiprocessor (228 KiB,
    /// 1 KiB reserved per CTA).
    #[test]
    fn shared_memory_fits_two_ctas() {
        for ty in GgmlType::ALL {
            for k in [ty.block_size(), 14336, 1 << 20] {
                let bytes = shared_bytes(ty, 8, k);
                assert!(2 * (bytes + 1024) <= 228 * 1024, "{ty} k={k}: {bytes}");
            }
        }
    }

    /// Phases are whole stages, and at k = 14336 one phase spans a CTA's
    /// whole k range for every type and m.
    #[test]
    fn phases_are_whole_stages() {
        for ty in GgmlType::ALL {
            let k = 14336 / ty.block_size() * ty.block_size();
            for m in 1..=8 {
                let (sb, pb) = (stage_blocks(ty), phase_blocks(ty, m, k));
                assert_eq!(pb % sb, 0, "{ty} m={m}");
                let (_, be) = decode_block(ty);
                assert!(pb >= k.div_ceil(be).div_ceil(CLUSTER), "{ty} m={m}: {pb}");
            }
        }
    }
}
