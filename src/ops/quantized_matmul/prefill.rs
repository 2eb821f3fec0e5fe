//! The prefill kernels' launcher: tiles of 256 input rows × 64 weight rows,
//! two wgmma warpgroups per CTA sharing the dequantized weights.
//!
//! One kernel template (`prefill.cu`) is compiled once per weight type, as
//! its own module, so that a model touching two or three types compiles
//! only those (NVRTC takes seconds per instantiation of this kernel). Each
//! module holds the F32 and the BF16 input/output variants.

use super::cuda::{kernel_name, kernel_u32, register_per_type, too_big};
use super::GgmlQuantizedMatmulParams;
use crate::device::cuda::bf16_tensor_map;
use crate::encoder::{KernelArg, LaunchConfig};
use crate::formats::GgmlType;
use crate::kernels::KernelRegistry;
use crate::ops::cast::cast;
use crate::ops::copy::{copy_strided, StridedCopyParams};
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

/// The per-type dequantization header the kernel source includes.
const DEQUANT_HEADER: (&str, &str) = (
    "qmm_prefill_dequant.cuh",
    include_str!("prefill_dequant.cuh"),
);

/// Output tile of one CTA (input rows × weight rows) and its threads; they
/// match `QMM_BM`, `QMM_BN` and `QMM_THREADS` in `prefill.cu`.
const TILE_M: usize = 256;
const TILE_N: usize = 64;
const THREADS: u32 = 256;
/// Shared-memory slots (`prefill.cu`) of the input tile (`QMM_X_SLOTS`,
/// each 256 rows of 64 bf16), of the dequantized weights (`QMM_A_SLOTS`,
/// 64 rows of 64 bf16) and of the raw weight tile, and the slack that lets
/// the kernel align the bf16 slots to 1024 bytes (the 128-byte swizzle's
/// period).
const INPUT_SLOTS: usize = 4;
const INPUT_SLOT_BYTES: usize = TILE_M * 64 * 2;
const DEQUANT_SLOTS: usize = 3;
const DEQUANT_SLOT_BYTES: usize = TILE_N * 64 * 2;
const WEIGHT_SLOTS: usize = 2;
const ALIGN_SLACK: usize = 1024;

const SOURCE: &str = include_str!("prefill.cu");

/// Registers the shared dequantization header and one module per weight
/// type: the kernel template preceded by the defines that pick the type's
/// `Deq*` struct and name the two kernels.
pub(crate) fn register(registry: &KernelRegistry) -> Result<()> {
    registry.register_header(DEQUANT_HEADER.0, DEQUANT_HEADER.1)?;
    register_per_type(registry, "prefill", &GgmlType::ALL, |ty| {
        format!(
            "#define QMM_DEQ Deq{}\n#define QMM_NAME_F32 {}\n#define QMM_NAME_BF16 {}\n{SOURCE}",
            ty.name(),
            kernel_name("prefill", ty, DType::F32),
            kernel_name("prefill", ty, DType::BF16),
        )
    })
}

/// Elements of one raw weight stage (`Deq::KB` in the dequant header).
fn stage_elements(ty: GgmlType) -> usize {
    if ty.block_size() == 1 {
        128
    } else {
        256
    }
}

/// Bytes between weight rows in a shared-memory stage: the stage's bytes
/// plus up to 14 bytes of misalignment, rounded to an odd number of 16-byte
/// units so that eight rows read at the same offset hit distinct banks
/// (`QmmW::STRIDE` in `prefill.cu`).
fn weight_stride(ty: GgmlType) -> usize {
    let stage_bytes = stage_elements(ty) / ty.block_size() * ty.type_size();
    let units = (stage_bytes + 14).div_ceil(16);
    16 * (units | 1)
}

/// Dynamic shared memory of one CTA (the input tile is bf16 in shared
/// memory whatever the I/O dtype).
pub(super) fn shared_bytes(ty: GgmlType) -> usize {
    ALIGN_SLACK
        + INPUT_SLOTS * INPUT_SLOT_BYTES
        + DEQUANT_SLOTS * DEQUANT_SLOT_BYTES
        + WEIGHT_SLOTS * TILE_N * weight_stride(ty)
}

pub(super) fn launch(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    p: &GgmlQuantizedMatmulParams,
) -> Result<()> {
    let kernel = kernel_name("prefill", p.ggml_type, output.dtype());
    let dim = |what: &str, v: usize| kernel_u32("prefill", what, v);
    let (m, n, k) = (dim("m", p.m)?, dim("n", p.n)?, dim("k", p.k)?);
    // The kernel counts 64-element stages of k in 32-bit arithmetic, and a
    // TMA coordinate is an i32.
    if k > i32::MAX as u32 - 64 {
        return Err(too_big("prefill", "k", p.k));
    }
    let grid_y = dim("m / 256", p.m.div_ceil(TILE_M))?;
    if grid_y > 65_535 {
        return Err(too_big("prefill", "m", p.m));
    }
    let row_bytes = p.ggml_type.row_bytes(p.k as u64)? as u64;
    // The kernel reads the input through a TMA descriptor, which needs bf16
    // rows starting on 16 bytes; any other input is converted first.
    let device_address = |b: &MlxBuffer| {
        b.device_ptr()
            .ok_or_else(|| MlxError::invalid(super::OP, "the input is not in device memory"))
    };
    let staged;
    let (rows, row_len) =
        if input.dtype() == DType::BF16 && device_address(input)? % 16 == 0 && p.k % 8 == 0 {
            (input, p.k)
        } else {
            staged = bf16_rows(enc, input, p.m, p.k)?;
            (&staged.0, staged.1)
        };
    let address = device_address(rows)?;
    let map = bf16_tensor_map(address, p.m, p.k, 2 * row_len, (TILE_M as u32, 64), true)?;
    let config = LaunchConfig {
        grid: (dim("n / 64", p.n.div_ceil(TILE_N))?, grid_y, 1),
        block: (THREADS, 1, 1),
        shared_mem_bytes: shared_bytes(p.ggml_type) as u32,
    };
    enc.dispatch_kernel(
        &kernel,
        config,
        &[
            KernelArg::Bytes(bytemuck::cast_slice(&map)),
            KernelArg::Buffer(weight),
            KernelArg::Buffer(output),
            KernelArg::pod(&m),
            KernelArg::pod(&n),
            KernelArg::pod(&k),
            KernelArg::pod(&row_bytes),
        ],
    )
}

/// The `m × k` input as bf16 rows of `k` rounded up to 8 elements (so that
/// each starts on 16 bytes), in the encoder's scratch; the row length.
fn bf16_rows(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    m: usize,
    k: usize,
) -> Result<(MlxBuffer, usize)> {
    let row_len = k.next_multiple_of(8);
    let rows = enc.scratch(DType::BF16, &[m, row_len])?;
    if row_len == k {
        cast(enc, input, &rows)?;
    } else {
        let packed = enc.scratch(DType::BF16, &[m, k])?;
        cast(enc, input, &packed)?;
        let layout = StridedCopyParams {
            shape: vec![m, k],
            src_strides: vec![k, 1],
            dst_strides: Some(vec![row_len, 1]),
        };
        copy_strided(enc, &packed, &rows, &layout)?;
    }
    Ok((rows, row_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_fits_and_strides_are_odd_units() {
        for ty in GgmlType::ALL {
            let s = weight_stride(ty);
            assert_eq!((s / 16) % 2, 1, "{ty}");
            let stage = stage_elements(ty) / ty.block_size() * ty.type_size();
            assert!(s >= stage + 14, "{ty}");
            assert!(shared_bytes(ty) <= 227 * 1024, "{ty}");
        }
    }
}
