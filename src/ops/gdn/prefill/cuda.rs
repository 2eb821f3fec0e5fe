//! The prefill launcher: sequence table, scratch layout, kernel choice and
//! shared-memory sizes of the prep kernel (`gdn_prefill_prep.cu`) and the
//! state kernels (`gdn_prefill_state_wg.cu` for BF16, `gdn_prefill_state.cu`
//! for F32), which all include `gdn_prefill.cuh`.

use bytemuck::{Pod, Zeroable};

use crate::device::cuda::bf16_tensor_map;
use crate::encoder::{KernelArg, LaunchConfig};
use crate::ops::gdn::params::{GdnCall, GdnPrefillParams, GDN_CHUNK, GDN_MAX_PACKED_SEQUENCES};
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

/// The header both kernel modules include, under its include name.
pub(crate) const HEADER: (&str, &str) = ("gdn_prefill.cuh", include_str!("gdn_prefill.cuh"));
pub(crate) const PREP_SOURCE: &str = include_str!("gdn_prefill_prep.cu");
pub(crate) const STATE_SOURCE: &str = include_str!("gdn_prefill_state.cu");
pub(crate) const STATE_WG_SOURCE: &str = include_str!("gdn_prefill_state_wg.cu");
/// `gdn_prefill_prep_k{K}_{dtype}`: BF16 then F32, each in K order.
pub(crate) const PREP_KERNELS: &[&str] = &[
    "gdn_prefill_prep_k64_bf16",
    "gdn_prefill_prep_k128_bf16",
    "gdn_prefill_prep_k256_bf16",
    "gdn_prefill_prep_k64_f32",
    "gdn_prefill_prep_k128_f32",
    "gdn_prefill_prep_k256_f32",
];
/// The state kernels of BF16 calls, `gdn_prefill_state_wg_k{K}`, and of
/// F32 calls, `gdn_prefill_state_k{K}_f32`, each in K order.
pub(crate) const STATE_WG_KERNELS: &[&str] = &[
    "gdn_prefill_state_wg_k64",
    "gdn_prefill_state_wg_k128",
    "gdn_prefill_state_wg_k256",
];
pub(crate) const STATE_KERNELS: &[&str] = &[
    "gdn_prefill_state_k64_f32",
    "gdn_prefill_state_k128_f32",
    "gdn_prefill_state_k256_f32",
];

const OP: &str = "gated_delta_net_prefill";
/// Threads of the prep kernel (4 warps) and the state kernel (8 warps).
const PREP_THREADS: u32 = 128;
const STATE_THREADS: u32 = 256;
/// Value rows of the state per block of the F32 state kernel (`GDN_VT`)
/// and of the BF16 one (`GDN_WG_VT`).
const V_TILE: usize = 32;
const WG_V_TILE: usize = 64;
/// f32 row factors per (chunk, value head) (`GDN_F_FLOATS`).
const F_FLOATS: usize = 2 * GDN_CHUNK + 4;

/// The tensors of one call.
pub(crate) struct PrefillIo<'a> {
    pub q: &'a MlxBuffer,
    pub k: &'a MlxBuffer,
    pub v: &'a MlxBuffer,
    pub g: &'a MlxBuffer,
    pub beta: &'a MlxBuffer,
    pub initial_state: Option<&'a MlxBuffer>,
    pub o: &'a MlxBuffer,
    pub final_state: Option<&'a MlxBuffer>,
    pub chunk_states: Option<&'a MlxBuffer>,
}

/// `GdnDims` of the kernels.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Dims {
    num_key_heads: i32,
    num_value_heads: i32,
    value_dim: i32,
    l2_norm: i32,
    scale: f32,
    stages: i32,
    q_in_w: i32,
    out_stages: i32,
    seg_chunks: i32,
}

/// `GdnSeqs` of the kernels: four header words, then the token and chunk
/// offsets of up to GDN_MAX_PACKED_SEQUENCES sequences (i32 each).
fn seq_table(call: &GdnCall, packed: bool) -> Vec<i32> {
    let n = GDN_MAX_PACKED_SEQUENCES + 1;
    let mut words = vec![0i32; 4 + 2 * n];
    words[0] = call.sequences.len() as i32;
    words[2] = call.num_chunks() as i32;
    if packed {
        for (i, s) in call.sequences.iter().enumerate() {
            words[4 + i] = s.start as i32;
            words[4 + i + 1] = s.end as i32;
        }
        for (i, c) in call.chunk_offsets().into_iter().enumerate() {
            words[4 + n + i] = c as i32;
        }
    } else {
        words[1] = call.shape.seq_len as i32;
    }
    words
}

/// Byte offsets of the intermediates in the scratch buffer: W `[T, H_v, K]`,
/// U `[T, H_v, V]` and P `[chunks, H_v, 64, 64]` in the call's dtype, the
/// row factors `[chunks, H_v, F_FLOATS]` in f32.
pub(crate) struct ScratchLayout {
    pub w: usize,
    pub u: usize,
    pub p: usize,
    pub f: usize,
    pub total: usize,
    sizes: [usize; 4],
}

impl ScratchLayout {
    pub fn of(call: &GdnCall) -> ScratchLayout {
        let s = &call.shape;
        let el = call.dtype.size_of();
        let rows = s.num_tokens() * s.num_value_heads;
        let chunks = call.num_chunks() * s.num_value_heads;
        let sizes = [
            rows * s.key_dim * el,
            rows * s.value_dim * el,
            chunks * GDN_CHUNK * GDN_CHUNK * el,
            chunks * F_FLOATS * 4,
        ];
        let mut at = [0usize; 4];
        let mut end = 0;
        for (i, size) in sizes.iter().enumerate() {
            at[i] = end;
            end += (*size).max(1).next_multiple_of(256);
        }
        ScratchLayout {
            w: at[0],
            u: at[1],
            p: at[2],
            f: at[3],
            total: end,
            sizes,
        }
    }

    fn views(&self, scratch: &MlxBuffer) -> Result<[MlxBuffer; 4]> {
        let raw = scratch.reinterpret(DType::U8, &[scratch.byte_len()])?;
        let at = [self.w, self.u, self.p, self.f];
        let view = |i: usize| raw.slice_view(at[i], self.sizes[i].max(1));
        Ok([view(0)?, view(1)?, view(2)?, view(3)?])
    }
}

/// 0, 1, 2 for K = 64, 128, 256.
fn key_index(call: &GdnCall) -> usize {
    match call.shape.key_dim {
        64 => 0,
        128 => 1,
        _ => 2,
    }
}

fn no_room(call: &GdnCall, limit: usize) -> MlxError {
    MlxError::unsupported(
        OP,
        format!(
            "{} key_dim {} needs more shared memory than the device's {limit} bytes",
            call.dtype, call.shape.key_dim
        ),
    )
}

/// Shared-memory bytes of the F32 state kernel and its stage count / Q placement.
fn state_smem(call: &GdnCall, limit: usize) -> Result<(usize, i32, i32)> {
    let el = call.dtype.size_of();
    let pad = 16 / el;
    let ks = call.shape.key_dim + pad;
    let (ps, us) = (GDN_CHUNK + pad, V_TILE + pad);
    let floats = F_FLOATS * 4;
    let stage =
        |tiles: usize| (tiles * GDN_CHUNK * ks + GDN_CHUNK * ps + GDN_CHUNK * us) * el + floats;
    let fixed = (V_TILE * ks + 2 * GDN_CHUNK * us) * el;
    if 3 * stage(3) + fixed <= limit {
        Ok((3 * stage(3) + fixed, 3, 0))
    } else if 2 * stage(3) + fixed <= limit {
        Ok((2 * stage(3) + fixed, 2, 0))
    } else if stage(3) + fixed <= limit {
        Ok((stage(3) + fixed, 1, 0))
    } else if stage(2) + fixed <= limit {
        Ok((stage(2) + fixed, 1, 1))
    } else {
        Err(no_room(call, limit))
    }
}

/// Shared-memory bytes of the BF16 state kernel and the stages of its two
/// rings (WG0's W, K, U; WG1's Q, P), as `GdnWgLayout` in
/// `gdn_prefill_state_wg.cu` lays them out: 2 and 2 where they fit (3 and 2
/// measured 2–3 % slower, a single stage for WG1 30 %; PERF.md), fewer for
/// larger K.
fn state_wg_smem(call: &GdnCall, limit: usize) -> Result<(usize, i32, i32)> {
    const BOX: usize = 64 * 128;
    let tile = call.shape.key_dim / 64 * BOX;
    let factors = F_FLOATS * 4;
    let a_stage = (2 * tile + BOX + factors).next_multiple_of(1024);
    let b_stage = (tile + BOX + factors).next_multiple_of(1024);
    // Alignment slack; two buffers each of H and V_newᵀ; 2 × 2 × 3 mbarriers.
    let fixed = 1024 + 2 * (tile + BOX) + 96;
    [(2i32, 2i32), (2, 1), (1, 1)]
        .into_iter()
        .map(|(a, b)| (fixed + a as usize * a_stage + b as usize * b_stage, a, b))
        .find(|&(bytes, _, _)| bytes <= limit)
        .ok_or_else(|| no_room(call, limit))
}

/// The TMA descriptors of the BF16 state kernel: q, k, W, P and U, all in
/// 64 × 64 boxes with the 128-byte swizzle.
fn state_maps(
    call: &GdnCall,
    io: &PrefillIo<'_>,
    w: &MlxBuffer,
    p: &MlxBuffer,
    u: &MlxBuffer,
) -> Result<[[u64; 16]; 5]> {
    let s = &call.shape;
    let address = |b: &MlxBuffer| {
        b.device_ptr()
            .ok_or_else(|| MlxError::invalid(OP, "a tensor is not in device memory"))
    };
    // A call without tokens reads nothing; the descriptors still need rows.
    let tokens = s.num_tokens().max(1);
    let rows_of = |heads: usize, dim: usize, b: &MlxBuffer| {
        bf16_tensor_map(
            address(b)?,
            tokens,
            heads * dim,
            heads * dim * 2,
            (64, 64),
            true,
        )
    };
    let p_rows = (call.num_chunks() * s.num_value_heads * GDN_CHUNK).max(1);
    Ok([
        rows_of(s.num_key_heads, s.key_dim, io.q)?,
        rows_of(s.num_key_heads, s.key_dim, io.k)?,
        rows_of(s.num_value_heads, s.key_dim, w)?,
        bf16_tensor_map(
            address(p)?,
            p_rows,
            GDN_CHUNK,
            GDN_CHUNK * 2,
            (64, 64),
            true,
        )?,
        rows_of(s.num_value_heads, s.value_dim, u)?,
    ])
}

/// Fewest chunks per segment of the state kernels: a segment's chain also
/// runs the chunks before it that its state still depends on.
const MIN_SEGMENT_CHUNKS: usize = 4;

/// Chunks per segment of the state kernels and the segments of the longest
/// sequence (grid z), `(0, 1)` for whole sequences. Sequences are cut so
/// that the blocks fill the SMs once, and only with L2-normalised keys:
/// without them the prep kernel flags no chunk as a contraction, and every
/// segment's chain would start at its sequence's start (`gdn_chain_start`
/// in `gdn_prefill.cuh`).
fn segments(call: &GdnCall, l2_norm: bool, tiles: usize, sms: usize) -> (usize, usize) {
    let longest = (call.sequences.iter())
        .map(|r| r.len().div_ceil(GDN_CHUNK))
        .max()
        .unwrap_or(0);
    let per_sequence = sms / (tiles * call.sequences.len()).max(1);
    if !l2_norm || per_sequence < 2 {
        return (0, 1);
    }
    let seg = longest.div_ceil(per_sequence).max(MIN_SEGMENT_CHUNKS);
    if seg >= longest {
        return (0, 1);
    }
    (seg, longest.div_ceil(seg))
}

pub(super) fn prefill(
    enc: &mut CommandEncoder,
    call: &GdnCall,
    params: &GdnPrefillParams<'_>,
    io: &PrefillIo<'_>,
) -> Result<()> {
    let s = &call.shape;
    // The kernels index token rows, and the TMA coordinates P rows, in i32.
    let p_rows = call.num_chunks() * GDN_CHUNK;
    if s.num_tokens().max(p_rows) > i32::MAX as usize / s.num_value_heads.max(1)
        || call.sequences.len() > 65535
    {
        return Err(MlxError::unsupported(
            OP,
            format!(
                "{} tokens in {} sequences exceed the kernels' index range",
                s.num_tokens(),
                call.sequences.len()
            ),
        ));
    }
    let bf16 = call.dtype == DType::BF16;
    if bf16 {
        crate::ops::validate::hopper_or_newer(OP, enc, "BF16 calls (TMA, wgmma)")?;
    }
    let layout = ScratchLayout::of(call);
    let own_scratch;
    let scratch = match params.scratch {
        Some(b) => b,
        None => {
            own_scratch = enc.scratch(DType::U8, &[layout.total])?;
            &own_scratch
        }
    };
    let [w, u, p, f] = layout.views(scratch)?;
    let limit = enc.device().cuda_properties().map_or(48 * 1024, |props| {
        props.max_shared_memory_per_block_optin as usize
    });
    let (state_bytes, stages, q_in_w, out_stages) = if bf16 {
        let (bytes, stages, out_stages) = state_wg_smem(call, limit)?;
        (bytes, stages, 0, out_stages)
    } else {
        let (bytes, stages, q_in_w) = state_smem(call, limit)?;
        (bytes, stages, q_in_w, 0)
    };
    let v_tile = if bf16 { WG_V_TILE } else { V_TILE };
    let tiles = s.num_value_heads * s.value_dim / v_tile;
    let sms = enc
        .device()
        .cuda_properties()
        .map_or(1, |p| p.sm_count as usize);
    let (seg_chunks, segments) = segments(call, params.l2_normalize_qk, tiles, sms);
    let dims = Dims {
        num_key_heads: s.num_key_heads as i32,
        num_value_heads: s.num_value_heads as i32,
        value_dim: s.value_dim as i32,
        l2_norm: params.l2_normalize_qk as i32,
        scale: call.scale,
        stages,
        q_in_w,
        out_stages,
        seg_chunks: seg_chunks as i32,
    };
    let table = seq_table(call, params.cu_seqlens.is_some());
    let table_bytes: &[u8] = bytemuck::cast_slice(&table);
    let key = key_index(call);
    let num_chunks = call.num_chunks();

    if num_chunks > 0 {
        let el = call.dtype.size_of();
        let pad = 16 / el;
        let xs = s.key_dim.max(s.value_dim) + pad;
        // k and q/v rows; one f32 matrix for A and T, which the two
        // T·diag products in the call's type later overwrite; 5 row vectors.
        let matrices =
            (GDN_CHUNK * (GDN_CHUNK + 4) * 4).max(2 * GDN_CHUNK * (GDN_CHUNK + pad) * el);
        let prep_bytes = GDN_CHUNK * (s.key_dim + pad + xs) * el + matrices + 5 * GDN_CHUNK * 4;
        if prep_bytes > limit {
            return Err(MlxError::unsupported(
                OP,
                format!(
                    "{} key_dim {} / value_dim {} needs {prep_bytes} bytes of shared memory; \
                     the device allows {limit}",
                    call.dtype, s.key_dim, s.value_dim
                ),
            ));
        }
        // One block per (chunk, value head), heads fastest (a 1-D grid
        // allows 2³¹ − 1 blocks).
        let prep_blocks = num_chunks
            .checked_mul(s.num_value_heads)
            .and_then(|b| u32::try_from(b).ok())
            .filter(|&b| b < 1 << 31)
            .ok_or_else(|| {
                MlxError::unsupported(
                    OP,
                    format!(
                        "{num_chunks} chunks × {} value heads exceed the 2³¹ − 1 blocks of a launch",
                        s.num_value_heads
                    ),
                )
            })?;
        enc.dispatch_kernel(
            PREP_KERNELS[key + if bf16 { 0 } else { 3 }],
            LaunchConfig {
                grid: (prep_blocks, 1, 1),
                block: (PREP_THREADS, 1, 1),
                shared_mem_bytes: prep_bytes as u32,
            },
            &[
                KernelArg::Buffer(io.q),
                KernelArg::Buffer(io.k),
                KernelArg::Buffer(io.v),
                KernelArg::Buffer(io.g),
                KernelArg::Buffer(io.beta),
                KernelArg::Buffer(&w),
                KernelArg::Buffer(&u),
                KernelArg::Buffer(&p),
                KernelArg::Buffer(&f),
                KernelArg::Bytes(table_bytes),
                KernelArg::pod(&dims),
            ],
        )?;
    }
    let config = LaunchConfig {
        grid: (tiles as u32, call.sequences.len() as u32, segments as u32),
        block: (STATE_THREADS, 1, 1),
        shared_mem_bytes: state_bytes as u32,
    };
    let states = [
        KernelArg::Buffer(&f),
        KernelArg::optional(io.initial_state),
        KernelArg::optional(io.final_state),
        KernelArg::optional(io.chunk_states),
        KernelArg::Buffer(io.o),
        KernelArg::Bytes(table_bytes),
        KernelArg::pod(&dims),
    ];
    if bf16 {
        let maps = state_maps(call, io, &w, &p, &u)?;
        let mut args: Vec<KernelArg> = maps
            .iter()
            .map(|m| KernelArg::Bytes(bytemuck::cast_slice(m)))
            .collect();
        args.extend(states);
        enc.dispatch_kernel(STATE_WG_KERNELS[key], config, &args)
    } else {
        let mut args = vec![
            KernelArg::Buffer(io.q),
            KernelArg::Buffer(io.k),
            KernelArg::Buffer(&w),
            KernelArg::Buffer(&u),
            KernelArg::Buffer(&p),
        ];
        args.extend(states);
        enc.dispatch_kernel(STATE_KERNELS[key], config, &args)
    }
}
