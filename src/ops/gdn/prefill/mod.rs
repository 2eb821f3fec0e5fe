//! `gated_delta_net_prefill`: the chunked Gated DeltaNet over whole
//! sequences (math and chunked form in [`reference`](super::reference)).
//!
//! The CUDA path runs two kernels (see `gdn_prefill.cuh`): a chunk-parallel
//! one (decay cumsum, β-weighted K·Kᵀ, (I + A)⁻¹, W/U, the causal chunk
//! attention) and one sequential over chunks that carries the state in
//! registers and writes the output. Their intermediates live in the scratch
//! buffer. When a call has too few (sequence, head) pairs to fill the GPU
//! and its keys are L2-normalised, the second kernel cuts long sequences
//! into segments run side by side; each segment's chain starts where the
//! state's dependence on everything before it has decayed below 2⁻³²
//! (relative), which holds as a bound because every step is then a
//! contraction scaled by its decay (β in [0, 2]; chunks with other β are
//! never cut across), or at the sequence's start where it has not. The CPU
//! path is the f32 chunked reference.

mod cpu;
pub(crate) mod cuda;

use super::params::{
    check_call, check_state_overlaps, sequences, GdnCall, GdnPrefillParams, GdnTensors, GDN_CHUNK,
};
use super::reference::GdnShape;
use crate::ops::validate;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

const OP: &str = "gated_delta_net_prefill";

/// Runs the Gated DeltaNet over the tokens of each sequence.
///
/// q, k `[B, T, H_k, K]` and v `[B, T, H_v, V]` are BF16 or F32 (the same),
/// o `[B, T, H_v, V]` has their dtype; g (log-decays, ≤ 0) and beta (in
/// (0, 1)) are F32 `[B, T, H_v]`; the states are F32 `[N, H_v, V, K]`, one per
/// sequence (N = B, or the number of `cu_seqlens` segments). `None` initial
/// state is zero; `final_state` may be the very same view as
/// `initial_state`. K, V ∈ {64, 128, 256}; H_v a multiple of H_k; any T.
/// Sums are accumulated in f32; on CUDA the matrix products round their
/// operands to bf16 (BF16 calls) or tf32 (F32 calls); with L2-normalised
/// keys a long sequence may also drop, on CUDA, dependences below 2⁻³² of
/// the state (module docs). BF16 calls on CUDA need compute capability 9.0
/// (Hopper) or newer.
#[allow(clippy::too_many_arguments)]
pub fn gated_delta_net_prefill(
    enc: &mut CommandEncoder,
    q: &MlxBuffer,
    k: &MlxBuffer,
    v: &MlxBuffer,
    g: &MlxBuffer,
    beta: &MlxBuffer,
    initial_state: Option<&MlxBuffer>,
    o: &MlxBuffer,
    final_state: Option<&MlxBuffer>,
    params: &GdnPrefillParams<'_>,
) -> Result<()> {
    let tensors = GdnTensors {
        q,
        k,
        v,
        g,
        beta,
        o,
    };
    let mut states = Vec::new();
    if let Some(s) = initial_state {
        states.push(("initial_state", s));
    }
    if let Some(s) = final_state {
        states.push(("final_state", s));
    }
    let call = check_call(OP, enc, &tensors, &states, params.scale, params.cu_seqlens)?;
    let state_views: Vec<&MlxBuffer> = states.iter().map(|(_, b)| *b).collect();
    check_state_overlaps(OP, &tensors, &state_views)?;
    if let Some(cs) = params.chunk_states {
        validate::same_device(OP, enc, &[("chunk_states", cs)])?;
        validate::dtype_is(OP, "chunk_states", cs, DType::F32)?;
        let per_chunk = call.shape.num_value_heads * call.shape.state_len();
        validate::element_count(OP, "chunk_states", cs, call.num_chunks() * per_chunk)?;
        if cs.byte_offset() % super::GDN_VIEW_ALIGN != 0 {
            return Err(MlxError::invalid(
                OP,
                "chunk_states must start 16-byte aligned",
            ));
        }
        let mut all: Vec<&MlxBuffer> = vec![q, k, v, g, beta, o];
        all.extend(&state_views);
        if all.iter().any(|b| cs.overlaps(b)) {
            return Err(MlxError::invalid(
                OP,
                "chunk_states overlaps another tensor",
            ));
        }
    }
    let scratch_bytes = scratch_bytes_of(&call);
    if let Some(s) = params.scratch {
        validate::same_device(OP, enc, &[("scratch", s)])?;
        if s.byte_len() < scratch_bytes {
            return Err(MlxError::invalid(
                OP,
                format!(
                    "scratch holds {} bytes, the call needs {scratch_bytes}",
                    s.byte_len()
                ),
            ));
        }
        if s.byte_offset() % super::GDN_VIEW_ALIGN != 0 {
            return Err(MlxError::invalid(OP, "scratch must start 16-byte aligned"));
        }
        let mut all: Vec<&MlxBuffer> = vec![q, k, v, g, beta, o];
        all.extend(&state_views);
        all.extend(params.chunk_states);
        if all.iter().any(|b| s.overlaps(b)) {
            return Err(MlxError::invalid(OP, "scratch overlaps another tensor"));
        }
    }
    let io = cuda::PrefillIo {
        q,
        k,
        v,
        g,
        beta,
        initial_state,
        o,
        final_state,
        chunk_states: params.chunk_states,
    };
    enc.encode_op(
        OP,
        || cpu::prefill(&call, params, &io),
        |enc| cuda::prefill(enc, &call, params, &io),
    )
}

/// Bytes of scratch a CUDA prefill call needs (see
/// [`GdnPrefillParams::scratch`]); `cu_seqlens` as in the call.
pub fn gated_delta_net_prefill_scratch_bytes(
    shape: &GdnShape,
    dtype: DType,
    cu_seqlens: Option<&[usize]>,
) -> Result<usize> {
    const WHAT: &str = "gated_delta_net_prefill_scratch_bytes";
    let sequences = sequences(WHAT, shape, cu_seqlens)?;
    // Every scratch array is at most a chunk's 64 × 64 block or a K or V
    // row per token and head, of at most 4 bytes: bound the total before
    // the layout multiplies it out.
    let rows = shape.batch as u128 * shape.seq_len as u128 * shape.num_value_heads as u128;
    let per_row = 4 * (shape.key_dim + shape.value_dim + GDN_CHUNK * GDN_CHUNK + 2) as u128;
    if rows * per_row + 6 * 256 > isize::MAX as u128 {
        return Err(MlxError::invalid(
            WHAT,
            format!("the scratch of {shape:?} would not fit in memory"),
        ));
    }
    let call = GdnCall {
        shape: *shape,
        dtype,
        scale: 1.0,
        sequences,
    };
    Ok(scratch_bytes_of(&call))
}

fn scratch_bytes_of(call: &GdnCall) -> usize {
    cuda::ScratchLayout::of(call).total
}
