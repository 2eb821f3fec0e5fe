//! The parts of a Gated DeltaNet layer around the recurrence (Qwen3-Next /
//! Qwen3.5): the short causal convolution in front of q/k/v, the gates g
//! and β, and the gated RMS norm of the output. The math is the CPU
//! reference in [`crate::ops::gdn::reference`] (which the CPU backend runs);
//! this module adds batches, dtypes and the CUDA kernels.
//!
//! - [`ssm_conv`]: depthwise causal conv1d of width `W ≥ 2` with SiLU over
//!   `x: [B, T, C]`, `y[b, t, c] = silu(bias[c] + Σ_{i<W} weight[c, i] ·
//!   x̃_b[t + i, c])`, where `x̃_b` is sequence `b`'s carried state (its
//!   previous `W − 1` inputs, oldest first) followed by its tokens. The
//!   updated state is the last `W − 1` rows of `x̃_b`. [`ssm_conv_decode`]
//!   is the one-token form that updates the state in place.
//! - [`gdn_gates`]: `g = −exp(A_log[h]) · softplus(a + dt_bias[h])`,
//!   `β = sigmoid(b)` per token and value head, with the reference's
//!   softplus threshold ([`SOFTPLUS_THRESHOLD`](crate::ops::gdn::reference::SOFTPLUS_THRESHOLD)).
//! - [`rms_norm_gated`]: per row of `D` elements,
//!   `y = o / sqrt(mean(o²) + eps) · weight · silu(z)`.
//!
//! Activations (x, out, conv state, a, b, o, z) are F32, F16 or BF16 and are
//! computed in f32 on the GPU (f64 in the CPU reference); weights, biases,
//! `A_log`, `dt_bias` and the gates g, β are F32.

mod cpu;
pub(crate) mod cuda;

use crate::ops::validate;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

pub use crate::ops::gdn::reference::SSM_CONV_DEFAULT_WIDTH;

const FLOATS: &[DType] = &[DType::F32, DType::F16, DType::BF16];

/// Shape of a short convolution over a batch of sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsmConvParams {
    /// Sequences, each with its own conv state.
    pub batch: usize,
    /// Tokens per sequence (1 for [`ssm_conv_decode`]).
    pub seq_len: usize,
    /// Channels `C` (q, k and v concatenated in a GDN layer).
    pub channels: usize,
    /// `W ≥ 2`; the conv state holds `W − 1` rows per sequence.
    pub kernel_width: usize,
}

impl SsmConvParams {
    /// `batch` sequences of `seq_len` tokens, width [`SSM_CONV_DEFAULT_WIDTH`].
    pub fn new(batch: usize, seq_len: usize, channels: usize) -> SsmConvParams {
        SsmConvParams {
            batch,
            seq_len,
            channels,
            kernel_width: SSM_CONV_DEFAULT_WIDTH,
        }
    }

    fn state_elements(&self) -> usize {
        self.batch * (self.kernel_width - 1) * self.channels
    }
}

/// Causal conv1d + SiLU over `x: [B, T, C]` into `out` (same shape and dtype).
///
/// - `weight: [C, W]` and `bias: [C]` are F32 (`weight[c, W − 1]` multiplies
///   the current token);
/// - `conv_state_in: [B, W − 1, C]` in x's dtype holds each sequence's
///   previous inputs, oldest first; `None` means zeros (a fresh sequence);
/// - `conv_state_out` (same layout) receives the updated state when given;
///   it may be the very same view as `conv_state_in` (in place), but no other
///   output may overlap an input.
#[allow(clippy::too_many_arguments)] // the layer's buffers, each optional or not
pub fn ssm_conv(
    enc: &mut CommandEncoder,
    x: &MlxBuffer,
    weight: &MlxBuffer,
    bias: Option<&MlxBuffer>,
    conv_state_in: Option<&MlxBuffer>,
    out: &MlxBuffer,
    conv_state_out: Option<&MlxBuffer>,
    params: &SsmConvParams,
) -> Result<()> {
    const OP: &str = "ssm_conv";
    let p = *params;
    check_conv_params(OP, &p)?;
    check_conv_weights(OP, enc, x, weight, bias, &p)?;
    let tokens = p.batch * p.seq_len * p.channels;
    validate::same_device(OP, enc, &[("x", x), ("out", out)])?;
    validate::element_count(OP, "x", x, tokens)?;
    check_like(OP, "out", out, x, tokens)?;
    let mut inputs = vec![("x", x), ("weight", weight)];
    inputs.extend(bias.map(|b| ("bias", b)));
    if let Some(s) = conv_state_in {
        validate::same_device(OP, enc, &[("conv_state_in", s)])?;
        check_like(OP, "conv_state_in", s, x, p.state_elements())?;
        inputs.push(("conv_state_in", s));
    }
    if let Some(s) = conv_state_out {
        validate::same_device(OP, enc, &[("conv_state_out", s)])?;
        check_like(OP, "conv_state_out", s, x, p.state_elements())?;
        if s.overlaps(out) {
            return Err(MlxError::invalid(OP, "conv_state_out overlaps out"));
        }
    }
    for (name, input) in &inputs {
        if out.overlaps(input) {
            return Err(MlxError::invalid(OP, format!("out overlaps {name}")));
        }
        if let Some(s) = conv_state_out {
            let in_place = conv_state_in
                .is_some_and(|i| i.same_allocation(s) && i.byte_offset() == s.byte_offset())
                && *name == "conv_state_in";
            if s.overlaps(input) && !in_place {
                return Err(MlxError::invalid(
                    OP,
                    format!("conv_state_out overlaps {name} (only conv_state_in, exactly, may be updated in place)"),
                ));
            }
        }
    }
    enc.encode_op(
        OP,
        || cpu::ssm_conv(x, weight, bias, conv_state_in, out, conv_state_out, &p),
        |enc| cuda::ssm_conv(enc, x, weight, bias, conv_state_in, out, conv_state_out, &p),
    )
}

/// One token per sequence: `x` and `out` are `[B, C]` (`params.seq_len`
/// must be 1), `conv_state: [B, W − 1, C]` in x's dtype is read and then
/// shifted by one row in place, with `x` appended as its newest row.
/// `weight` and `bias` as in [`ssm_conv`].
pub fn ssm_conv_decode(
    enc: &mut CommandEncoder,
    x: &MlxBuffer,
    weight: &MlxBuffer,
    bias: Option<&MlxBuffer>,
    conv_state: &MlxBuffer,
    out: &MlxBuffer,
    params: &SsmConvParams,
) -> Result<()> {
    const OP: &str = "ssm_conv_decode";
    let p = *params;
    check_conv_params(OP, &p)?;
    if p.seq_len != 1 {
        return Err(MlxError::invalid(
            OP,
            format!(
                "decode takes one token per sequence; seq_len = {}",
                p.seq_len
            ),
        ));
    }
    check_conv_weights(OP, enc, x, weight, bias, &p)?;
    validate::same_device(
        OP,
        enc,
        &[("x", x), ("conv_state", conv_state), ("out", out)],
    )?;
    validate::element_count(OP, "x", x, p.batch * p.channels)?;
    check_like(OP, "out", out, x, p.batch * p.channels)?;
    check_like(OP, "conv_state", conv_state, x, p.state_elements())?;
    let mut others = vec![("x", x), ("weight", weight)];
    others.extend(bias.map(|b| ("bias", b)));
    for (name, input) in &others {
        if out.overlaps(input) || conv_state.overlaps(input) {
            return Err(MlxError::invalid(
                OP,
                format!("an output (out or conv_state) overlaps {name}"),
            ));
        }
    }
    if out.overlaps(conv_state) {
        return Err(MlxError::invalid(OP, "out overlaps conv_state"));
    }
    enc.encode_op(
        OP,
        || cpu::ssm_conv_decode(x, weight, bias, conv_state, out, &p),
        |enc| cuda::ssm_conv_decode(enc, x, weight, bias, conv_state, out, &p),
    )
}

fn check_conv_params(op: &'static str, p: &SsmConvParams) -> Result<()> {
    if p.batch == 0 || p.seq_len == 0 || p.channels == 0 {
        return Err(MlxError::shape(
            op,
            format!("batch, seq_len and channels must be positive; got {p:?}"),
        ));
    }
    if p.kernel_width < 2 {
        return Err(MlxError::invalid(
            op,
            format!("kernel_width must be at least 2; got {}", p.kernel_width),
        ));
    }
    // Kernels index with u32 within a row and u64 across rows.
    let fits = p
        .batch
        .checked_mul(p.seq_len.max(p.kernel_width))
        .and_then(|n| n.checked_mul(p.channels))
        .is_some_and(|n| n <= i64::MAX as usize)
        && u32::try_from(p.batch * p.seq_len).is_ok()
        && u32::try_from(p.channels * p.kernel_width).is_ok();
    if !fits {
        return Err(MlxError::shape(op, format!("{p:?} is too large")));
    }
    Ok(())
}

fn check_conv_weights(
    op: &'static str,
    enc: &CommandEncoder,
    x: &MlxBuffer,
    weight: &MlxBuffer,
    bias: Option<&MlxBuffer>,
    p: &SsmConvParams,
) -> Result<()> {
    validate::dtype_in(op, "x", x, FLOATS)?;
    validate::same_device(op, enc, &[("weight", weight)])?;
    validate::dtype_is(op, "weight", weight, DType::F32)?;
    validate::element_count(op, "weight", weight, p.channels * p.kernel_width)?;
    if let Some(b) = bias {
        validate::same_device(op, enc, &[("bias", b)])?;
        validate::dtype_is(op, "bias", b, DType::F32)?;
        validate::element_count(op, "bias", b, p.channels)?;
    }
    Ok(())
}

/// `buffer` has `like`'s dtype and `n` elements.
fn check_like(
    op: &'static str,
    what: &str,
    buffer: &MlxBuffer,
    like: &MlxBuffer,
    n: usize,
) -> Result<()> {
    validate::dtype_is(op, what, buffer, like.dtype())?;
    validate::element_count(op, what, buffer, n)
}

/// Shape of [`gdn_gates`]: `rows` tokens (all sequences) × `num_value_heads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GdnGatesParams {
    /// Tokens of all sequences together (`B · T`).
    pub rows: usize,
    pub num_value_heads: usize,
}

/// `g = −exp(a_log[h]) · softplus(a + dt_bias[h])`, `β = sigmoid(b)`.
///
/// `a`, `b`: `[rows, H_v]`, both F32, F16 or BF16 (one dtype); `a_log`,
/// `dt_bias`: `[H_v]` F32; `g_out`, `beta_out`: `[rows, H_v]` F32, which
/// must overlap no input and not each other.
#[allow(clippy::too_many_arguments)] // two inputs, two parameters, two outputs
pub fn gdn_gates(
    enc: &mut CommandEncoder,
    a: &MlxBuffer,
    b: &MlxBuffer,
    a_log: &MlxBuffer,
    dt_bias: &MlxBuffer,
    g_out: &MlxBuffer,
    beta_out: &MlxBuffer,
    params: &GdnGatesParams,
) -> Result<()> {
    const OP: &str = "gdn_gates";
    let p = *params;
    let buffers = [
        ("a", a),
        ("b", b),
        ("a_log", a_log),
        ("dt_bias", dt_bias),
        ("g_out", g_out),
        ("beta_out", beta_out),
    ];
    validate::same_device(OP, enc, &buffers)?;
    if p.rows == 0 || p.num_value_heads == 0 {
        return Err(MlxError::shape(
            OP,
            format!("rows and num_value_heads must be positive; got {p:?}"),
        ));
    }
    let n = p
        .rows
        .checked_mul(p.num_value_heads)
        .filter(|&n| n <= i64::MAX as usize && u32::try_from(p.num_value_heads).is_ok())
        .ok_or_else(|| MlxError::shape(OP, format!("{p:?} is too large")))?;
    validate::dtype_in(OP, "a", a, FLOATS)?;
    check_like(OP, "b", b, a, n)?;
    validate::element_count(OP, "a", a, n)?;
    for (what, buf, len) in [
        ("a_log", a_log, p.num_value_heads),
        ("dt_bias", dt_bias, p.num_value_heads),
        ("g_out", g_out, n),
        ("beta_out", beta_out, n),
    ] {
        validate::dtype_is(OP, what, buf, DType::F32)?;
        validate::element_count(OP, what, buf, len)?;
    }
    for (out_name, output) in [("g_out", g_out), ("beta_out", beta_out)] {
        for (name, other) in &buffers {
            if *name != out_name && output.overlaps(other) {
                return Err(MlxError::invalid(OP, format!("{out_name} overlaps {name}")));
            }
        }
    }
    enc.encode_op(
        OP,
        || cpu::gdn_gates(a, b, a_log, dt_bias, g_out, beta_out, &p),
        |enc| cuda::gdn_gates(enc, a, b, a_log, dt_bias, g_out, beta_out, &p),
    )
}

/// Parameters of [`rms_norm_gated`]; the row length `D` is `weight`'s
/// element count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsNormGatedParams {
    /// Added to the mean of squares; ≥ 0 (Qwen3.5 uses 1e-6).
    pub eps: f32,
}

/// `out = o / sqrt(mean(o²) + eps) · weight · silu(z)` over every row of
/// `D = weight.len()` elements (e.g. `[tokens, H_v, V]` with `weight: [V]`).
///
/// `o`, `z`, `out`: one dtype of F32, F16, BF16, equal element counts (a
/// multiple of `D`); `weight` F32. `out` may be the very same view as `o`
/// or `z` (in place) but must not partly overlap either.
pub fn rms_norm_gated(
    enc: &mut CommandEncoder,
    o: &MlxBuffer,
    z: &MlxBuffer,
    weight: &MlxBuffer,
    out: &MlxBuffer,
    params: &RmsNormGatedParams,
) -> Result<()> {
    const OP: &str = "rms_norm_gated";
    let p = *params;
    validate::same_device(
        OP,
        enc,
        &[("o", o), ("z", z), ("weight", weight), ("out", out)],
    )?;
    validate::dtype_in(OP, "o", o, FLOATS)?;
    validate::dtype_is(OP, "weight", weight, DType::F32)?;
    let (n, dim) = (o.element_count(), weight.element_count());
    if dim == 0 || n % dim != 0 || u32::try_from(dim).is_err() {
        return Err(MlxError::shape(
            OP,
            format!("o has {n} elements, not a multiple of the weight length {dim}"),
        ));
    }
    check_like(OP, "z", z, o, n)?;
    check_like(OP, "out", out, o, n)?;
    if p.eps.is_nan() || p.eps < 0.0 || p.eps.is_infinite() {
        return Err(MlxError::invalid(
            OP,
            format!("eps must be finite and ≥ 0; got {}", p.eps),
        ));
    }
    validate::no_partial_overlap(OP, out, o)?;
    validate::no_partial_overlap(OP, out, z)?;
    if out.overlaps(weight) {
        return Err(MlxError::invalid(OP, "out overlaps weight"));
    }
    enc.encode_op(
        OP,
        || cpu::rms_norm_gated(o, z, weight, out, &p),
        |enc| cuda::rms_norm_gated(enc, o, z, weight, out, &p),
    )
}
