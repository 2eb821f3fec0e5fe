//! The vector (m = 1) kernels' launcher: one NVRTC module per supported
//! GGML type, each holding the F32 and BF16 I/O kernels
//! `quantized_matmul_vector_<type>_<io>` instantiated from the one template
//! in `vector.cu`.

use bytemuck::{Pod, Zeroable};

use super::cuda::{kernel_name, register_per_type};
use super::GgmlQuantizedMatmulParams;
use crate::encoder::{KernelArg, LaunchConfig};
use crate::formats::GgmlType;
use crate::kernels::KernelRegistry;
use crate::{CommandEncoder, MlxBuffer, MlxError, Result};

pub(crate) const SOURCE: &str = include_str!("vector.cu");

/// The types the vector kernels take (`Qv_<type>` in `vector.cu`).
pub(super) const TYPES: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// `QV_WARPS`, `QV_STAGES`, `QV_ROW_SLOT`, `QV_XCAP`, `QV_GROUP` in
/// `vector.cu`; a tile is 32 rows, a warp's slot 8 row slots.
const WARPS: usize = 16;
const STAGES: usize = 3;
const ROW_SLOT: usize = 464;
const XCAP: usize = 32768;
const GROUP: usize = 256;
const TILE: usize = 32;

/// Mirrors `QvParams` in `vector.cu`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct QvParams {
    row_bytes: u64,
    n: u32,
    row_blocks: u32,
}

pub(crate) fn register(registry: &KernelRegistry) -> Result<()> {
    register_per_type(registry, "vector", &TYPES, |ty| {
        let tag = ty.name().to_ascii_lowercase();
        format!("{SOURCE}\nQV_INSTANTIATE({tag})\n")
    })
}

/// Dynamic shared memory of one CTA, laid out as in `qv`: the warps' rings
/// and barriers, x codes (1 byte per element) and group sums (16 bytes per
/// 32 elements) of one phase, the four quarters' sums of two tiles, and,
/// with several phases, the rows' partial sums.
fn shared_bytes(k: usize) -> usize {
    let phased = k > XCAP;
    let x = if phased { XCAP } else { k };
    WARPS * STAGES * (8 * ROW_SLOT + 8)
        + x
        + x / 2
        + 2 * 4 * TILE * 4
        + if phased { GROUP * 4 } else { 0 }
}

pub(super) fn launch(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    p: &GgmlQuantizedMatmulParams,
) -> Result<()> {
    let sms = enc
        .device()
        .cuda_properties()
        .map_or(1, |props| props.sm_count as usize);
    let dim = |what: &str, v: usize| {
        u32::try_from(v).map_err(|_| {
            MlxError::shape(
                super::OP,
                format!("{what} = {v} is too large for the vector kernels"),
            )
        })
    };
    // The kernel counts elements of a row in 32-bit arithmetic.
    dim("k", p.k)?;
    let params = QvParams {
        row_bytes: (weight.byte_len() / p.n) as u64,
        n: dim("n", p.n)?,
        row_blocks: dim("blocks per row", p.k / p.ggml_type.block_size())?,
    };
    // One CTA per multiprocessor (at most one per 32-row tile); when k
    // takes several phases, enough CTAs that each holds the partial sums of
    // its rows (at most `GROUP`), in several waves if need be.
    let tiles = p.n.div_ceil(TILE);
    let mut ctas = tiles.min(sms);
    if p.k > XCAP {
        ctas = ctas.max(tiles.div_ceil(GROUP / TILE));
    }
    let config = LaunchConfig {
        grid: (dim("CTAs", ctas)?, 1, 1),
        block: ((WARPS * 32) as u32, 1, 1),
        shared_mem_bytes: shared_bytes(p.k) as u32,
    };
    enc.dispatch_kernel(
        &kernel_name("vector", p.ggml_type, input.dtype()),
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

    /// The largest CTA fits an H100/H200 multiprocessor (227 KiB a block
    /// may opt into).
    #[test]
    fn shared_memory_fits() {
        for k in [256, XCAP, XCAP + 256, 1 << 20] {
            assert!(shared_bytes(k) <= 227 * 1024, "k={k}: {}", shared_bytes(k));
        }
    }
}
