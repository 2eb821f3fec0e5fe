//! The CUDA launcher: picks the vectorized kernel where every row the
//! kernel touches is aligned for it, else the one-element-per-access one.

use super::{GdnGatesParams, RmsNormGatedParams, SsmConvParams};
use crate::encoder::{KernelArg, LaunchConfig};
use crate::ops::grid_stride_launch;
use crate::{CommandEncoder, DType, MlxBuffer, Result};

pub(crate) const SOURCE: &str = include_str!("gdn_layer.cu");
pub(crate) const KERNELS: &[&str] = &[
    "ssm_conv_tile_f32",
    "ssm_conv_tile_f16",
    "ssm_conv_tile_bf16",
    "ssm_conv_any_width_f32",
    "ssm_conv_any_width_f16",
    "ssm_conv_any_width_bf16",
    "ssm_conv_decode_f32",
    "ssm_conv_decode_f16",
    "ssm_conv_decode_bf16",
    "gdn_gates_vec4_f32",
    "gdn_gates_vec4_f16",
    "gdn_gates_vec4_bf16",
    "gdn_gates_f32",
    "gdn_gates_f16",
    "gdn_gates_bf16",
    "rms_norm_gated_vec_f32",
    "rms_norm_gated_vec_f16",
    "rms_norm_gated_vec_bf16",
    "rms_norm_gated_vec_long_f32",
    "rms_norm_gated_vec_long_f16",
    "rms_norm_gated_vec_long_bf16",
    "rms_norm_gated_f32",
    "rms_norm_gated_f16",
    "rms_norm_gated_bf16",
    "rms_norm_gated_wide_f32",
    "rms_norm_gated_wide_f16",
    "rms_norm_gated_wide_bf16",
];

/// Mirrors of the constants in `gdn_layer.cu`.
const CONV_WINDOW_MAX: usize = 4;
/// Channels and bytes of tokens an `ssm_conv_tile` block takes (its rows:
/// `CONV_GROUPS · CONV_GROUP_BYTES / (CONV_TILE_CHANNELS · element size)`).
const CONV_TILE_CHANNELS: usize = 512;
const CONV_GROUP_BYTES: usize = 16384;
const CONV_GROUPS: usize = 2;
/// Elements per thread of the tile kernel's stores.
const CONV_VEC: usize = 4;
/// Bytes of alignment (address and row length) of the tile kernel's copies.
const COPY_ALIGN: usize = 16;
/// Threads per multiprocessor the `ssm_conv_any_width` chunks make.
const ANY_WIDTH_THREADS_PER_SM: usize = 512;
/// Chunks of a row each lane of an `rms_norm_gated` kernel holds, and
/// rows per lane group: `_vec` holds 4 rows of 1 chunk, `_vec_long` 1 row
/// of 4 chunks (the same registers), the scalar kernel 1 row of 8.
const NORM_VEC_CHUNKS: usize = 1;
const NORM_VEC_LONG_CHUNKS: usize = 4;
const NORM_SCALAR_CHUNKS: usize = 8;
const NORM_VEC_ROWS: usize = 4;

/// The bytes of one access of the `rms_norm_gated_vec` kernels.
const VEC_BYTES: usize = 16;

/// Block size of every launch here (`NORM_THREADS` and `CONV_THREADS` in
/// the source, which the kernels' launch bounds assume).
const THREADS: u32 = 256;

fn dtype_suffix(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

/// Every buffer starts at a multiple of `bytes` (allocations are at least
/// 256-byte aligned, so the view offset decides).
fn aligned(bytes: usize, buffers: &[Option<&MlxBuffer>]) -> bool {
    buffers
        .iter()
        .flatten()
        .all(|b| b.byte_offset() % bytes == 0)
}

/// Elements per 16-byte access.
fn vec_len(d: DType) -> usize {
    VEC_BYTES / d.size_of()
}

/// One thread per item, in blocks of [`THREADS`].
fn one_thread_each(items: u64) -> LaunchConfig {
    LaunchConfig::linear(items.div_ceil(THREADS as u64).max(1) as u32, THREADS)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn ssm_conv(
    enc: &mut CommandEncoder,
    x: &MlxBuffer,
    weight: &MlxBuffer,
    bias: Option<&MlxBuffer>,
    conv_state_in: Option<&MlxBuffer>,
    out: &MlxBuffer,
    conv_state_out: Option<&MlxBuffer>,
    p: &SsmConvParams,
) -> Result<()> {
    let dt = dtype_suffix(x.dtype());
    let size = x.dtype().size_of();
    let props = enc.device().cuda_properties();
    let sms = props.map_or(1, |d| d.sm_count as usize);
    // The tile kernel copies rows in whole 16-byte pieces from 16-byte-aligned
    // addresses (cp.async, sm_80) and stores CONV_VEC elements at a time.
    let tile = props.is_some_and(|d| d.compute_capability.0 >= 8)
        && p.kernel_width <= CONV_WINDOW_MAX
        && (p.channels * size) % COPY_ALIGN == 0
        && aligned(COPY_ALIGN, &[Some(x), conv_state_in])
        && aligned(CONV_VEC * size, &[Some(out), conv_state_out]);
    let tile_rows = CONV_GROUPS * CONV_GROUP_BYTES / (CONV_TILE_CHANNELS * size);
    let tile_blocks = u32::try_from(
        p.channels.div_ceil(CONV_TILE_CHANNELS) * p.batch * p.seq_len.div_ceil(tile_rows),
    )
    .ok()
    .filter(|&b| b <= i32::MAX as u32);
    let (batch, seq_len, channels, width) = (
        p.batch as u32,
        p.seq_len as u32,
        p.channels as u32,
        p.kernel_width as u32,
    );
    let mut args = vec![
        KernelArg::Buffer(x),
        KernelArg::Buffer(weight),
        KernelArg::optional(bias),
        KernelArg::optional(conv_state_in),
        KernelArg::Buffer(out),
        KernelArg::optional(conv_state_out),
        KernelArg::pod(&batch),
        KernelArg::pod(&seq_len),
        KernelArg::pod(&channels),
        KernelArg::pod(&width),
    ];
    if let (true, Some(blocks)) = (tile, tile_blocks) {
        let config = LaunchConfig::linear(blocks, THREADS);
        return enc.dispatch_kernel(&format!("ssm_conv_tile_{dt}"), config, &args);
    }
    // The any-width kernel: a thread takes one channel of a chunk of at
    // least W − 1 tokens (so only a sequence's first chunk reads its carried
    // state), about ANY_WIDTH_THREADS_PER_SM threads per multiprocessor.
    let chunks = (sms * ANY_WIDTH_THREADS_PER_SM)
        .div_ceil(p.channels * p.batch)
        .clamp(1, p.seq_len);
    let tokens = p.seq_len.div_ceil(chunks).max(p.kernel_width - 1);
    let threads = p.channels * p.batch * p.seq_len.div_ceil(tokens);
    let tokens = tokens as u32;
    args.push(KernelArg::pod(&tokens));
    let name = format!("ssm_conv_any_width_{dt}");
    enc.dispatch_kernel(&name, one_thread_each(threads as u64), &args)
}

pub(super) fn ssm_conv_decode(
    enc: &mut CommandEncoder,
    x: &MlxBuffer,
    weight: &MlxBuffer,
    bias: Option<&MlxBuffer>,
    conv_state: &MlxBuffer,
    out: &MlxBuffer,
    p: &SsmConvParams,
) -> Result<()> {
    let name = format!("ssm_conv_decode_{}", dtype_suffix(x.dtype()));
    let (batch, channels, width) = (p.batch as u32, p.channels as u32, p.kernel_width as u32);
    enc.dispatch_kernel(
        &name,
        one_thread_each((p.batch * p.channels) as u64),
        &[
            KernelArg::Buffer(x),
            KernelArg::Buffer(weight),
            KernelArg::optional(bias),
            KernelArg::Buffer(conv_state),
            KernelArg::Buffer(out),
            KernelArg::pod(&batch),
            KernelArg::pod(&channels),
            KernelArg::pod(&width),
        ],
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn gdn_gates(
    enc: &mut CommandEncoder,
    a: &MlxBuffer,
    b: &MlxBuffer,
    a_log: &MlxBuffer,
    dt_bias: &MlxBuffer,
    g_out: &MlxBuffer,
    beta_out: &MlxBuffer,
    p: &GdnGatesParams,
) -> Result<()> {
    let dt = dtype_suffix(a.dtype());
    let n = (p.rows * p.num_value_heads) as u64;
    let vec4 = n % 4 == 0
        && aligned(4 * a.dtype().size_of(), &[Some(a), Some(b)])
        && aligned(16, &[Some(g_out), Some(beta_out)]);
    let (name, per_thread) = if vec4 {
        (format!("gdn_gates_vec4_{dt}"), 4)
    } else {
        (format!("gdn_gates_{dt}"), 1)
    };
    let heads = p.num_value_heads as u32;
    let config = grid_stride_launch(enc, n.div_ceil(per_thread), THREADS);
    enc.dispatch_kernel(
        &name,
        config,
        &[
            KernelArg::Buffer(a),
            KernelArg::Buffer(b),
            KernelArg::Buffer(a_log),
            KernelArg::Buffer(dt_bias),
            KernelArg::Buffer(g_out),
            KernelArg::Buffer(beta_out),
            KernelArg::pod(&n),
            KernelArg::pod(&heads),
        ],
    )
}

pub(super) fn rms_norm_gated(
    enc: &mut CommandEncoder,
    o: &MlxBuffer,
    z: &MlxBuffer,
    weight: &MlxBuffer,
    out: &MlxBuffer,
    p: &RmsNormGatedParams,
) -> Result<()> {
    let dt = dtype_suffix(o.dtype());
    let dim = weight.element_count();
    let rows = (o.element_count() / dim) as u64;
    let vec = vec_len(o.dtype());
    let aligned_vec =
        dim % vec == 0 && aligned(VEC_BYTES, &[Some(o), Some(z), Some(out), Some(weight)]);
    // (kernel, elements per access, chunks per lane, rows per lane group)
    let variant = if aligned_vec && dim <= 32 * vec * NORM_VEC_CHUNKS {
        Some(("rms_norm_gated_vec", vec, NORM_VEC_CHUNKS, NORM_VEC_ROWS))
    } else if aligned_vec && dim <= 32 * vec * NORM_VEC_LONG_CHUNKS {
        Some(("rms_norm_gated_vec_long", vec, NORM_VEC_LONG_CHUNKS, 1))
    } else if dim <= 32 * NORM_SCALAR_CHUNKS {
        Some(("rms_norm_gated", 1, NORM_SCALAR_CHUNKS, 1))
    } else {
        None
    };
    let (dim32, eps) = (dim as u32, p.eps);
    let mut args = vec![
        KernelArg::Buffer(o),
        KernelArg::Buffer(z),
        KernelArg::Buffer(weight),
        KernelArg::Buffer(out),
        KernelArg::pod(&rows),
        KernelArg::pod(&dim32),
        KernelArg::pod(&eps),
    ];
    let Some((kernel, vec, chunks, rows_per_group)) = variant else {
        // One warp per row.
        let config = grid_stride_launch(enc, rows * 32, THREADS);
        return enc.dispatch_kernel(&format!("rms_norm_gated_wide_{dt}"), config, &args);
    };
    // The fewest lanes (a power of two) whose chunks cover a row.
    let row_lanes = dim.div_ceil(vec * chunks).next_power_of_two() as u32;
    args.push(KernelArg::pod(&row_lanes));
    let threads = rows.div_ceil(rows_per_group as u64) * row_lanes as u64;
    let config = grid_stride_launch(enc, threads, THREADS);
    enc.dispatch_kernel(&format!("{kernel}_{dt}"), config, &args)
}
