//! Norms around Gated DeltaNet: the q/k L2 normalisation, and the gated RMS
//! norm applied to the output before the output projection.

use rayon::prelude::*;

use super::layout::check_len;
use crate::{MlxError, Result};

/// `x / sqrt(Σ x² + eps)` over each row of `dim` elements; f32 throughout,
/// as the chunked path and a GPU kernel compute it.
pub fn l2_normalize_rows(x: &[f32], dim: usize, eps: f32, out: &mut [f32]) -> Result<()> {
    const OP: &str = "l2_normalize_rows";
    if dim == 0 || x.len() % dim != 0 {
        return Err(MlxError::shape(
            OP,
            format!("x has {} elements, not a multiple of dim {dim}", x.len()),
        ));
    }
    check_len(OP, "out", out.len(), x.len())?;
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(out_row, x_row)| {
            let sum_sq: f32 = x_row.iter().map(|v| v * v).sum();
            let inv = 1.0 / (sum_sq + eps).sqrt();
            for (o, v) in out_row.iter_mut().zip(x_row) {
                *o = v * inv;
            }
        });
    Ok(())
}

/// `silu(x) = x · sigmoid(x)`, written to stay finite for large |x|.
pub(crate) fn silu_f64(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// Gated RMS norm over each head: with `D = weight.len()`, for every row `x`
/// of `D` elements and its gate row `z`,
/// `y = x / sqrt(mean(x²) + eps) · weight · silu(z)`.
///
/// `x`, `gate` and `out` are `[rows, D]` (e.g. `[tokens, heads, value_dim]`).
/// Accumulates in f64. This is Qwen3-Next's `RMSNormGated` (norm, weight,
/// then the SiLU gate), whose epsilon averages the squares before adding.
pub fn rms_norm_gated(
    x: &[f32],
    gate: &[f32],
    weight: &[f32],
    eps: f32,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "rms_norm_gated";
    let dim = weight.len();
    if dim == 0 || x.len() % dim != 0 {
        return Err(MlxError::shape(
            OP,
            format!(
                "x has {} elements, not a multiple of weight length {dim}",
                x.len()
            ),
        ));
    }
    if eps.is_nan() || eps < 0.0 {
        return Err(MlxError::invalid(OP, format!("eps must be ≥ 0, got {eps}")));
    }
    check_len(OP, "gate", gate.len(), x.len())?;
    check_len(OP, "out", out.len(), x.len())?;
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim).zip(gate.par_chunks(dim)))
        .for_each(|(out_row, (x_row, z_row))| {
            let mean_sq = x_row
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                / dim as f64;
            let inv_rms = 1.0 / (mean_sq + f64::from(eps)).sqrt();
            for (((o, &v), &w), &z) in out_row.iter_mut().zip(x_row).zip(weight).zip(z_row) {
                *o = (f64::from(v) * inv_rms * f64::from(w) * silu_f64(f64::from(z))) as f32;
            }
        });
    Ok(())
}
