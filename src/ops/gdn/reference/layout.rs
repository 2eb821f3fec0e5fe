//! Shapes, inputs and the sequence/chunk layout shared by the Gated DeltaNet
//! references, and the validation every public entry point runs first.

use std::ops::Range;

use crate::{MlxError, Result};

/// Epsilon of the optional q/k L2 normalisation: `x / sqrt(Σ x² + 1e-6)`.
///
/// The epsilon is added to the sum of squares (not the mean) inside the
/// square root, as in FLA's `l2norm` and the Qwen3-Next reference code.
pub const GDN_L2_NORM_EPS: f32 = 1e-6;

/// Sizes of one Gated DeltaNet call.
///
/// Layouts (row-major): q, k `[batch, seq_len, num_key_heads, key_dim]`;
/// v and o `[batch, seq_len, num_value_heads, value_dim]`; g and β
/// `[batch, seq_len, num_value_heads]`; states
/// `[num_sequences, num_value_heads, value_dim, key_dim]`.
/// For a packed variable-length batch, `batch` is 1 and `seq_len` is the
/// total number of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GdnShape {
    pub batch: usize,
    pub seq_len: usize,
    pub num_key_heads: usize,
    pub num_value_heads: usize,
    pub key_dim: usize,
    pub value_dim: usize,
}

impl GdnShape {
    /// Tokens over the whole batch (`batch · seq_len`).
    pub fn num_tokens(&self) -> usize {
        self.batch * self.seq_len
    }

    /// The key/query head that value head `value_head` reads (grouped heads).
    pub fn key_head_of(&self, value_head: usize) -> usize {
        value_head / (self.num_value_heads / self.num_key_heads)
    }

    /// Elements of one recurrent state `[value_dim, key_dim]`.
    pub fn state_len(&self) -> usize {
        self.value_dim * self.key_dim
    }
}

/// Options of a Gated DeltaNet call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GdnConfig {
    /// Output scale; [`GdnConfig::new`] sets `1 / sqrt(key_dim)`.
    pub scale: f32,
    /// L2-normalise q and k over `key_dim` (epsilon [`GDN_L2_NORM_EPS`]).
    pub l2_normalize_qk: bool,
}

impl GdnConfig {
    /// Default options: scale `1 / sqrt(key_dim)`, no q/k normalisation.
    pub fn new(key_dim: usize) -> Self {
        GdnConfig {
            scale: 1.0 / (key_dim.max(1) as f32).sqrt(),
            l2_normalize_qk: false,
        }
    }
}

/// Inputs of a Gated DeltaNet call (layouts in [`GdnShape`]).
#[derive(Debug, Clone, Copy)]
pub struct GdnInputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    /// Log-decay per token and value head, `g ≤ 0`.
    pub g: &'a [f32],
    /// Write strength per token and value head, in (0, 1).
    pub beta: &'a [f32],
    /// One state per sequence, or `None` for zero states.
    pub initial_state: Option<&'a [f32]>,
    /// Packed variable-length batch: token offsets `[0, t1, t1+t2, …, seq_len]`
    /// (requires `batch == 1`). `None`: every batch row is one sequence.
    pub cu_seqlens: Option<&'a [usize]>,
}

/// Outputs of a Gated DeltaNet call.
#[derive(Debug)]
pub struct GdnOutputs<'a> {
    /// `[batch, seq_len, num_value_heads, value_dim]`.
    pub o: &'a mut [f32],
    /// One state per sequence after its last token, or `None` to skip it.
    pub final_state: Option<&'a mut [f32]>,
}

pub(crate) fn check_len(op: &'static str, what: &str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(MlxError::shape(
            op,
            format!("{what} has {got} elements, expected {expected}"),
        ))
    }
}

/// The token ranges of the independent sequences of a call: one per batch
/// row, or one per `cu_seqlens` segment.
pub(crate) fn sequence_ranges(
    op: &'static str,
    shape: &GdnShape,
    cu_seqlens: Option<&[usize]>,
) -> Result<Vec<Range<usize>>> {
    if shape.batch == 0 || shape.num_key_heads == 0 || shape.key_dim == 0 || shape.value_dim == 0 {
        return Err(MlxError::invalid(
            op,
            format!("batch, key heads, key_dim and value_dim must be positive, got {shape:?}"),
        ));
    }
    if shape.num_value_heads == 0 || shape.num_value_heads % shape.num_key_heads != 0 {
        return Err(MlxError::invalid(
            op,
            format!(
                "num_value_heads ({}) must be a positive multiple of num_key_heads ({})",
                shape.num_value_heads, shape.num_key_heads
            ),
        ));
    }
    let Some(offsets) = cu_seqlens else {
        let t = shape.seq_len;
        return Ok((0..shape.batch).map(|b| b * t..(b + 1) * t).collect());
    };
    if shape.batch != 1 {
        return Err(MlxError::invalid(
            op,
            format!("cu_seqlens requires batch 1, got batch {}", shape.batch),
        ));
    }
    if offsets.len() < 2 || offsets[0] != 0 || offsets[offsets.len() - 1] != shape.seq_len {
        return Err(MlxError::invalid(
            op,
            format!(
                "cu_seqlens must start at 0 and end at seq_len ({}), got {offsets:?}",
                shape.seq_len
            ),
        ));
    }
    if offsets.windows(2).any(|w| w[1] < w[0]) {
        return Err(MlxError::invalid(
            op,
            format!("cu_seqlens must be non-decreasing, got {offsets:?}"),
        ));
    }
    Ok(offsets.windows(2).map(|w| w[0]..w[1]).collect())
}

/// Checks every input and output length of a call; returns its sequences.
pub(crate) fn validate_call(
    op: &'static str,
    shape: &GdnShape,
    inputs: &GdnInputs<'_>,
    outputs: &GdnOutputs<'_>,
) -> Result<Vec<Range<usize>>> {
    let sequences = sequence_ranges(op, shape, inputs.cu_seqlens)?;
    let tokens = shape.num_tokens();
    let states = sequences.len() * shape.num_value_heads * shape.state_len();
    let qk_len = tokens * shape.num_key_heads * shape.key_dim;
    let v_len = tokens * shape.num_value_heads * shape.value_dim;
    let gate_len = tokens * shape.num_value_heads;
    check_len(op, "q", inputs.q.len(), qk_len)?;
    check_len(op, "k", inputs.k.len(), qk_len)?;
    check_len(op, "v", inputs.v.len(), v_len)?;
    check_len(op, "g", inputs.g.len(), gate_len)?;
    check_len(op, "beta", inputs.beta.len(), gate_len)?;
    if let Some(state) = inputs.initial_state {
        check_len(op, "initial_state", state.len(), states)?;
    }
    check_len(op, "o", outputs.o.len(), v_len)?;
    if let Some(state) = outputs.final_state.as_deref() {
        check_len(op, "final_state", state.len(), states)?;
    }
    Ok(sequences)
}

/// One chunk: a run of at most `chunk_size` tokens of one sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the sequence the chunk belongs to.
    pub sequence: usize,
    /// First token (global index into the packed token axis).
    pub start: usize,
    /// Tokens in the chunk, `1..=chunk_size` (only a sequence's last chunk is short).
    pub len: usize,
}

/// How the tokens of a call split into sequences and chunks.
///
/// Chunks restart at every sequence start, never span two sequences, and
/// tile the token axis in order. Per-chunk tensors (state snapshots) are laid
/// out `[num_chunks, …]` in this order, which for an unpacked batch equals
/// `[batch, ceil(seq_len / chunk_size), …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLayout {
    shape: GdnShape,
    chunk_size: usize,
    sequences: Vec<Range<usize>>,
    chunks: Vec<Chunk>,
    /// Range of chunk indices belonging to each sequence.
    sequence_chunks: Vec<Range<usize>>,
}

impl ChunkLayout {
    pub fn new(shape: &GdnShape, cu_seqlens: Option<&[usize]>, chunk_size: usize) -> Result<Self> {
        const OP: &str = "gdn_chunk_layout";
        if chunk_size == 0 {
            return Err(MlxError::invalid(OP, "chunk_size must be positive"));
        }
        let sequences = sequence_ranges(OP, shape, cu_seqlens)?;
        let mut chunks = Vec::new();
        let mut sequence_chunks = Vec::with_capacity(sequences.len());
        for (sequence, tokens) in sequences.iter().enumerate() {
            let first = chunks.len();
            for start in tokens.clone().step_by(chunk_size) {
                let len = chunk_size.min(tokens.end - start);
                chunks.push(Chunk {
                    sequence,
                    start,
                    len,
                });
            }
            sequence_chunks.push(first..chunks.len());
        }
        Ok(ChunkLayout {
            shape: *shape,
            chunk_size,
            sequences,
            chunks,
            sequence_chunks,
        })
    }

    pub fn shape(&self) -> &GdnShape {
        &self.shape
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Token range of each sequence.
    pub fn sequences(&self) -> &[Range<usize>] {
        &self.sequences
    }

    /// Chunk indices of sequence `sequence`, in token order.
    pub fn chunks_of_sequence(&self, sequence: usize) -> Range<usize> {
        self.sequence_chunks.get(sequence).cloned().unwrap_or(0..0)
    }

    /// Splits a token-major tensor `[tokens, row_len]` into one mutable piece
    /// per chunk, so chunks can be processed in parallel.
    pub(crate) fn split_by_chunk<'a>(
        &self,
        data: &'a mut [f32],
        row_len: usize,
    ) -> Vec<&'a mut [f32]> {
        let mut rest = data;
        let mut pieces = Vec::with_capacity(self.chunks.len());
        for chunk in &self.chunks {
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(chunk.len * row_len);
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }
}
