//! The vector (m = 1) kernels' launcher: one NVRTC module per supported
//! GGML type, each holding the F32 and BF16 I/O kernels
//! `quantized_matmul_vector_<type>_<io>` instantiated from the one template
//! in `vector.cu`.

use bytemuck::{Pod, Zeroable};

use super::cuda::{kernel_name, kernel_u32, register_per_type};
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

/// `QV_WARPS`, `QV_STAGES`, `QV_ROW_SLOT`, `QV_XCAP` in `vector.cu`; a
/// tile is 32 rows, a warp's slot 8 row slots.
const WARPS: usize = 16;
const STAGES: usize = 2;
const ROW_SLOT: usize = 720;
const XCAP: usize = 16384;
const TILE: usize = 32;
/// Shared memory of a tile's row sums: 4 quarters × 32 rows × f32.
const TILE_SUMS: usize = 4 * TILE * 4;

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
/// 32 elements) of one phase, and the row sums of `tiles` tiles.
fn shared_bytes(k: usize, tiles: usize) -> usize {
    let x = k.min(XCAP);
    WARPS * STAGES * (8 * ROW_SLOT + 8) + x + x / 2 + tiles * TILE_SUMS
}

/// CTAs and the tiles each takes at most: one CTA per multiprocessor (or
/// per tile, if fewer), more where a CTA's row sums would not fit in
/// `max_shared` bytes (then in several waves).
fn grid(n: usize, k: usize, sms: usize, max_shared: usize) -> Result<(usize, usize)> {
    let fixed = shared_bytes(k, 0);
    let fit = max_shared.saturating_sub(fixed) / TILE_SUMS;
    if fit == 0 {
        return Err(MlxError::unsupported(
            super::OP,
            format!(
                "the vector kernels need {} bytes of shared memory per block; this GPU allows {max_shared}",
                fixed + TILE_SUMS
            ),
        ));
    }
    let tiles = n.div_ceil(TILE);
    let ctas = tiles.min(sms).max(tiles.div_ceil(fit));
    Ok((ctas, tiles.div_ceil(ctas)))
}

pub(super) fn launch(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    p: &GgmlQuantizedMatmulParams,
) -> Result<()> {
    let (sms, max_shared) = enc.device().cuda_properties().map_or((1, 0), |props| {
        (
            props.sm_count as usize,
            props.max_shared_memory_per_block_optin as usize,
        )
    });
    let dim = |what: &str, v: usize| kernel_u32("vector", what, v);
    // The kernel counts elements of a row in 32-bit arithmetic.
    dim("k", p.k)?;
    let params = QvParams {
        row_bytes: (weight.byte_len() / p.n) as u64,
        n: dim("n", p.n)?,
        row_blocks: dim("blocks per row", p.k / p.ggml_type.block_size())?,
    };
    let (ctas, cta_tiles) = grid(p.n, p.k, sms, max_shared)?;
    let config = LaunchConfig {
        grid: (dim("CTAs", ctas)?, 1, 1),
        block: ((WARPS * 32) as u32, 1, 1),
        shared_mem_bytes: shared_bytes(p.k, cta_tiles) as u32,
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

    /// On an H100/H200 (132 multiprocessors, 227 KiB a block may opt
    /// into) every grid fits, has one wave up to ~190k rows, and gives
    /// every CTA a tile.
    #[test]
    fn grids_fit_an_h200() {
        let max_shared = 227 * 1024;
        for k in [256, 14336, XCAP, XCAP + 256, 1 << 20] {
            for n in [1, 4096, 16384, 152064, 1 << 20] {
                let (ctas, cta_tiles) = grid(n, k, 132, max_shared).unwrap();
                assert!(shared_bytes(k, cta_tiles) <= max_shared, "n={n} k={k}");
                assert!(ctas <= n.div_ceil(TILE), "n={n} k={k}: a CTA without tiles");
                if n <= 190_000 {
                    assert!(ctas <= 132, "n={n} k={k}: {ctas} CTAs");
                }
            }
        }
        assert!(grid(4096, 14336, 132, 100 * 1024).is_err());
    }
}
