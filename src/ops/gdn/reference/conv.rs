//! Depthwise causal conv1d with SiLU, the short convolution in front of
//! Gated DeltaNet's q/k/v (Qwen3-Next `causal_conv1d`, width 4).
//!
//! With `W` the kernel width, `x̃` the concatenation of the carried state
//! (the previous `W − 1` inputs, oldest first) and the new tokens:
//! `y[t, c] = silu(bias[c] + Σ_{i<W} weight[c, i] · x̃[t + i, c])`,
//! so `weight[c, W − 1]` multiplies the current token. The updated state is
//! the last `W − 1` rows of `x̃`.

use rayon::prelude::*;

use super::layout::check_len;
use super::norm::silu_f64;
use crate::{MlxError, Result};

/// Kernel width of the Qwen3-Next / Qwen3.5 short convolution.
pub const SSM_CONV_DEFAULT_WIDTH: usize = 4;

/// Channels and kernel width of a short convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsmConvShape {
    pub channels: usize,
    /// `W ≥ 2`; the state holds `W − 1` rows.
    pub kernel_width: usize,
}

impl SsmConvShape {
    fn validate(
        &self,
        op: &'static str,
        weight: &[f32],
        bias: Option<&[f32]>,
        conv_state: &[f32],
    ) -> Result<()> {
        if self.kernel_width < 2 || self.channels == 0 {
            return Err(MlxError::invalid(
                op,
                format!("need kernel_width ≥ 2 and channels > 0, got {self:?}"),
            ));
        }
        check_len(
            op,
            "weight",
            weight.len(),
            self.channels * self.kernel_width,
        )?;
        if let Some(bias) = bias {
            check_len(op, "bias", bias.len(), self.channels)?;
        }
        check_len(
            op,
            "conv_state",
            conv_state.len(),
            (self.kernel_width - 1) * self.channels,
        )
    }
}

/// One output row: `silu(bias + Σ_i weight[c, i] · window_row(i)[c])`, with
/// `window_row(i)` the i-th of the `W` input rows ending at the current token.
fn conv_row<'a>(
    shape: &SsmConvShape,
    weight: &[f32],
    bias: Option<&[f32]>,
    window_row: impl Fn(usize) -> &'a [f32],
    out: &mut [f32],
) {
    let width = shape.kernel_width;
    for (c, y) in out.iter_mut().enumerate() {
        let mut acc = bias.map_or(0.0, |b| f64::from(b[c]));
        for i in 0..width {
            acc += f64::from(weight[c * width + i]) * f64::from(window_row(i)[c]);
        }
        *y = silu_f64(acc) as f32;
    }
}

/// Prefill form over `x: [tokens, channels]`; `weight: [channels, W]`,
/// optional `bias: [channels]`, `conv_state: [W − 1, channels]` (read as the
/// previous inputs, then overwritten with the updated state), `out` like `x`.
/// Accumulates in f64.
pub fn ssm_conv(
    shape: &SsmConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    conv_state: &mut [f32],
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "ssm_conv";
    shape.validate(OP, weight, bias, conv_state)?;
    let channels = shape.channels;
    if x.len() % channels != 0 {
        return Err(MlxError::shape(
            OP,
            format!(
                "x has {} elements, not a multiple of channels {channels}",
                x.len()
            ),
        ));
    }
    check_len(OP, "out", out.len(), x.len())?;
    let tokens = x.len() / channels;
    let carried = shape.kernel_width - 1;
    let state: &[f32] = conv_state;
    // Row r of x̃ = [state; x]: the state for r < W − 1, else token r − (W − 1).
    let extended_row = |r: usize| -> &[f32] {
        if r < carried {
            &state[r * channels..(r + 1) * channels]
        } else {
            &x[(r - carried) * channels..(r - carried + 1) * channels]
        }
    };
    out.par_chunks_mut(channels)
        .enumerate()
        .for_each(|(t, out_row)| conv_row(shape, weight, bias, |i| extended_row(t + i), out_row));
    // New state: rows tokens .. tokens + W − 1 of x̃.
    let new_state: Vec<f32> = (tokens..tokens + carried)
        .flat_map(|r| extended_row(r).iter().copied())
        .collect();
    conv_state.copy_from_slice(&new_state);
    Ok(())
}

/// Single-token decode form: `x` and `out` are `[channels]`; the state is
/// shifted by one row in place and `x` appended as its newest row.
pub fn ssm_conv_decode(
    shape: &SsmConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    conv_state: &mut [f32],
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "ssm_conv_decode";
    shape.validate(OP, weight, bias, conv_state)?;
    let channels = shape.channels;
    check_len(OP, "x", x.len(), channels)?;
    check_len(OP, "out", out.len(), channels)?;
    let carried = shape.kernel_width - 1;
    {
        let state: &[f32] = conv_state;
        let window_row = |i: usize| -> &[f32] {
            if i < carried {
                &state[i * channels..(i + 1) * channels]
            } else {
                x
            }
        };
        conv_row(shape, weight, bias, window_row, out);
    }
    conv_state.copy_within(channels.., 0);
    conv_state[(carried - 1) * channels..].copy_from_slice(x);
    Ok(())
}
