//! The decode kernels' launcher: one NVRTC module per GGML type (compiled
//! on first use of that type), each holding the F32 and BF16 I/O kernels
//! `quantized_matmul_decode_<type>_<io>` instantiated from the one template
//! in `decode.cu`.

use bytemuck::{Pod, Zeroable};

use super::cuda::{kernel_name, kernel_u32, register_per_type};
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
    register_per_type(registry, "decode", &GgmlType::ALL, |ty| {
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

/// Shared memory per CTA that lets 5 CTAs share an H100/H200
/// multiprocessor (228 KiB, 1 KiB reserved per CTA), as many as the
/// registers allow (`QMV_MIN_CTAS`): the B fragments of a phase take what
/// the ring leaves of it.
const CTA_SHARED: usize = 44 << 10;

/// Blocks per stage (`SB` in `decode.cu`).
fn stage_blocks(ty: GgmlType) -> usize {
    (160 / decode_block(ty).0).clamp(1, 8)
}

/// Bytes of the weight ring: `STAGES` stages of 64 rows, each row's stage
/// in whole 16-byte granules from any even start.
fn ring_bytes(ty: GgmlType) -> usize {
    STAGES * ROWS * ((stage_blocks(ty) * decode_block(ty).0 + 29) / 16 * 16)
}

/// Blocks whose B fragments a CTA converts at once: its whole k range when
/// that fits beside the ring in `CTA_SHARED`, else fewer, in whole stages
/// (at least one). Each block takes 16 bytes per input row per 8 elements.
fn phase_blocks(ty: GgmlType, m: usize, k: usize) -> usize {
    let (_, be) = decode_block(ty);
    let sb = stage_blocks(ty);
    let per_block = be / 8 * 16 * m;
    let cta_blocks = k.div_ceil(be).div_ceil(CLUSTER).div_ceil(sb) * sb;
    let budget = CTA_SHARED.saturating_sub(ring_bytes(ty));
    (budget / per_block / sb * sb).clamp(sb, cta_blocks.max(sb))
}

/// Dynamic shared memory of one CTA, from the same constants as `qmv` in
/// `decode.cu`: the weight ring and the B fragments of one phase.
fn shared_bytes(ty: GgmlType, m: usize, k: usize) -> usize {
    let (_, be) = decode_block(ty);
    ring_bytes(ty) + phase_blocks(ty, m, k) * be / 8 * 16 * m
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
    let dim = |what: &str, v: usize| kernel_u32("decode", what, v);
    let params = QmvParams {
        m: dim("m", p.m)?,
        n: dim("n", p.n)?,
        k: dim("k", p.k)?,
        row_bytes: dim("row bytes", row_bytes)?,
        row_blocks: dim("blocks per row", p.k.div_ceil(be))?,
        phase_blocks: dim("blocks per phase", phase_blocks(p.ggml_type, p.m, p.k))?,
    };
    let config = LaunchConfig {
        grid: (dim("CTAs", p.n.div_ceil(ROWS) * CLUSTER)?, 1, 1),
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

    /// Phases are whole stages; a CTA stays within `CTA_SHARED` whenever
    /// the ring and one stage's fragments fit there; at m = 1 and k = 14336
    /// the targeted types but Q6_K (whose ring leaves room for 4 of its 7
    /// blocks) convert their input in one phase.
    #[test]
    fn phases_are_whole_stages() {
        for ty in GgmlType::ALL {
            let (_, be) = decode_block(ty);
            let sb = stage_blocks(ty);
            for k in [14336, 1 << 20] {
                for m in 1..=8 {
                    let pb = phase_blocks(ty, m, k);
                    assert_eq!(pb % sb, 0, "{ty} m={m}");
                    if ring_bytes(ty) + sb * be / 8 * 16 * m <= CTA_SHARED {
                        assert!(shared_bytes(ty, m, k) <= CTA_SHARED, "{ty} m={m} k={k}");
                    }
                }
            }
        }
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
        ] {
            let cta_blocks = 14336usize.div_ceil(decode_block(ty).1).div_ceil(CLUSTER);
            assert!(phase_blocks(ty, 1, 14336) >= cta_blocks, "{ty}");
        }
    }
}
