//! Parameters of the Gated DeltaNet device ops and the checks both ops run.

use std::ops::Range;

use super::reference::{sequence_ranges, GdnShape};
use crate::ops::validate;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

/// Key and value head sizes the kernels are built for.
pub const GDN_HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// Most sequences one packed (`cu_seqlens`) prefill call may hold: the
/// sequence table travels in the kernels' launch parameters.
pub const GDN_MAX_PACKED_SEQUENCES: usize = 256;

/// Byte alignment every q, k, v, o and state view must start at (the
/// kernels move them with 16-byte copies).
pub const GDN_VIEW_ALIGN: usize = 16;

/// Chunk size of the prefill (and of its `chunk_states` snapshots).
pub const GDN_CHUNK: usize = 64;

/// Options of [`gated_delta_net_prefill`](super::gated_delta_net_prefill).
#[derive(Debug, Clone, Copy, Default)]
pub struct GdnPrefillParams<'a> {
    /// Output scale; `None` is `1 / sqrt(key_dim)`.
    pub scale: Option<f32>,
    /// L2-normalise q and k over `key_dim` first (`x / sqrt(Σx² + 1e-6)`).
    pub l2_normalize_qk: bool,
    /// A packed variable-length batch (q of shape `[1, total, H_k, K]`):
    /// token offsets `[0, t1, t1+t2, …, total]`, non-decreasing, at most
    /// [`GDN_MAX_PACKED_SEQUENCES`] sequences. Each sequence has its own
    /// state. Host values: the launcher needs the chunk count, and they
    /// reach the kernels in the launch parameters (no upload, no sync).
    pub cu_seqlens: Option<&'a [usize]>,
    /// When given, receives the state at the start of every chunk: F32
    /// `[num_chunks, H_v, V, K]`, chunks in token order
    /// ([`ChunkLayout`](super::reference::ChunkLayout) order; for an unpacked
    /// batch `[B, ceil(T / 64), …]`).
    pub chunk_states: Option<&'a MlxBuffer>,
    /// Working memory of the CUDA kernels, at least
    /// [`gated_delta_net_prefill_scratch_bytes`](super::gated_delta_net_prefill_scratch_bytes)
    /// bytes, any dtype, starting 16-byte aligned; reused freely between
    /// calls on one encoder. `None`: each CUDA call takes its own from the
    /// encoder's stream-ordered scratch (no wait for the GPU; a pool hit
    /// after the first call). Unused on the CPU.
    pub scratch: Option<&'a MlxBuffer>,
}

/// Options of [`gated_delta_net_decode`](super::gated_delta_net_decode).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GdnDecodeParams {
    /// Output scale; `None` is `1 / sqrt(key_dim)`.
    pub scale: Option<f32>,
    /// L2-normalise q and k over `key_dim` first.
    pub l2_normalize_qk: bool,
}

/// The checked sizes of one call.
#[derive(Debug, Clone)]
pub(crate) struct GdnCall {
    pub shape: GdnShape,
    pub dtype: DType,
    pub scale: f32,
    /// Token range of each sequence (each has its own state).
    pub sequences: Vec<Range<usize>>,
}

impl GdnCall {
    /// Chunks of each sequence, in order: the global chunk index of the
    /// first chunk of every sequence, plus the total at the end.
    pub fn chunk_offsets(&self) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(self.sequences.len() + 1);
        let mut total = 0;
        offsets.push(0);
        for s in &self.sequences {
            total += s.len().div_ceil(GDN_CHUNK);
            offsets.push(total);
        }
        offsets
    }

    pub fn num_chunks(&self) -> usize {
        self.chunk_offsets().last().copied().unwrap_or(0)
    }

    pub fn state_elements(&self) -> usize {
        self.sequences.len() * self.shape.num_value_heads * self.shape.state_len()
    }
}

/// The inputs and outputs every GDN op takes.
pub(crate) struct GdnTensors<'a> {
    pub q: &'a MlxBuffer,
    pub k: &'a MlxBuffer,
    pub v: &'a MlxBuffer,
    pub g: &'a MlxBuffer,
    pub beta: &'a MlxBuffer,
    pub o: &'a MlxBuffer,
}

/// Checks devices, dtypes, shapes, alignment and overlaps of the tensors,
/// and the sequence layout; returns the call's sizes. `states` are the F32
/// state buffers `[num_sequences, H_v, V, K]` (inputs and outputs).
pub(crate) fn check_call(
    op: &'static str,
    enc: &CommandEncoder,
    t: &GdnTensors<'_>,
    states: &[(&str, &MlxBuffer)],
    scale: Option<f32>,
    cu_seqlens: Option<&[usize]>,
) -> Result<GdnCall> {
    let mut all = vec![
        ("q", t.q),
        ("k", t.k),
        ("v", t.v),
        ("g", t.g),
        ("beta", t.beta),
        ("o", t.o),
    ];
    all.extend_from_slice(states);
    validate::same_device(op, enc, &all)?;
    validate::dtype_in(op, "q", t.q, &[DType::BF16, DType::F32])?;
    let dtype = t.q.dtype();
    for (what, b) in [("k", t.k), ("v", t.v), ("o", t.o)] {
        validate::dtype_is(op, what, b, dtype)?;
    }
    for (what, b) in [("g", t.g), ("beta", t.beta)] {
        validate::dtype_is(op, what, b, DType::F32)?;
    }
    for (what, b) in states {
        validate::dtype_is(op, what, b, DType::F32)?;
    }

    let &[batch, seq_len, num_key_heads, key_dim] = t.q.shape() else {
        return Err(MlxError::shape(
            op,
            format!(
                "q must be [batch, seq_len, key_heads, key_dim], got {:?}",
                t.q.shape()
            ),
        ));
    };
    if t.k.shape() != t.q.shape() {
        return Err(MlxError::shape(
            op,
            format!("k has shape {:?}, q {:?}", t.k.shape(), t.q.shape()),
        ));
    }
    let &[vb, vt, num_value_heads, value_dim] = t.v.shape() else {
        return Err(MlxError::shape(
            op,
            format!(
                "v must be [batch, seq_len, value_heads, value_dim], got {:?}",
                t.v.shape()
            ),
        ));
    };
    if (vb, vt) != (batch, seq_len) {
        return Err(MlxError::shape(
            op,
            format!("v has shape {:?}, q {:?}", t.v.shape(), t.q.shape()),
        ));
    }
    for (what, dim) in [("key_dim", key_dim), ("value_dim", value_dim)] {
        if !GDN_HEAD_DIMS.contains(&dim) {
            return Err(MlxError::unsupported(
                op,
                format!("{what} {dim}: the kernels support {GDN_HEAD_DIMS:?}"),
            ));
        }
    }
    if num_value_heads % num_key_heads != 0 {
        return Err(MlxError::invalid(
            op,
            format!(
                "value heads ({num_value_heads}) must be a multiple of key heads ({num_key_heads})"
            ),
        ));
    }
    let shape = GdnShape {
        batch,
        seq_len,
        num_key_heads,
        num_value_heads,
        key_dim,
        value_dim,
    };
    let tokens = shape.num_tokens();
    validate::element_count(op, "g", t.g, tokens * num_value_heads)?;
    validate::element_count(op, "beta", t.beta, tokens * num_value_heads)?;
    validate::element_count(op, "o", t.o, tokens * num_value_heads * value_dim)?;

    let sequences = sequences(op, &shape, cu_seqlens)?;
    let state_elements = sequences.len() * num_value_heads * shape.state_len();
    for (what, b) in states {
        validate::element_count(op, what, b, state_elements)?;
    }

    for (what, b) in [("q", t.q), ("k", t.k), ("v", t.v), ("o", t.o)]
        .into_iter()
        .chain(states.iter().copied())
    {
        if b.byte_offset() % GDN_VIEW_ALIGN != 0 {
            return Err(MlxError::invalid(
                op,
                format!(
                    "{what} starts at byte offset {}; views must start {GDN_VIEW_ALIGN}-byte aligned",
                    b.byte_offset()
                ),
            ));
        }
    }
    for input in [t.q, t.k, t.v, t.g, t.beta] {
        if t.o.overlaps(input) {
            return Err(MlxError::invalid(op, "the output o overlaps an input"));
        }
    }
    let scale = scale.unwrap_or(1.0 / (key_dim as f32).sqrt());
    if !scale.is_finite() {
        return Err(MlxError::invalid(
            op,
            format!("scale must be finite, got {scale}"),
        ));
    }
    Ok(GdnCall {
        shape,
        dtype,
        scale,
        sequences,
    })
}

/// The state buffers must not overlap the token tensors; two of them may
/// only be the very same view (an in-place update).
pub(crate) fn check_state_overlaps(
    op: &'static str,
    t: &GdnTensors<'_>,
    states: &[&MlxBuffer],
) -> Result<()> {
    for (i, s) in states.iter().enumerate() {
        for b in [t.q, t.k, t.v, t.g, t.beta, t.o] {
            if s.overlaps(b) {
                return Err(MlxError::invalid(
                    op,
                    "a state buffer overlaps q, k, v, g, beta or o",
                ));
            }
        }
        for other in &states[i + 1..] {
            validate::no_partial_overlap(op, s, other)?;
        }
    }
    Ok(())
}

/// The sequences of a call (the reference's rule), with at most
/// [`GDN_MAX_PACKED_SEQUENCES`] packed ones: the table travels in the
/// launch parameters.
pub(crate) fn sequences(
    op: &'static str,
    shape: &GdnShape,
    cu_seqlens: Option<&[usize]>,
) -> Result<Vec<Range<usize>>> {
    if let Some(offsets) = cu_seqlens {
        let n = offsets.len().saturating_sub(1);
        if n == 0 || n > GDN_MAX_PACKED_SEQUENCES {
            return Err(MlxError::invalid(
                op,
                format!(
                    "cu_seqlens must hold 1 to {GDN_MAX_PACKED_SEQUENCES} sequences ({} offsets given)",
                    offsets.len()
                ),
            ));
        }
    }
    sequence_ranges(op, shape, cu_seqlens)
}
