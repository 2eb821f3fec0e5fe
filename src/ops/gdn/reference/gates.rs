//! The per-token gates of Gated DeltaNet, from the projections `a`, `b`.

use super::layout::check_len;
use crate::{MlxError, Result};

/// Above this input `softplus(x)` returns `x`, as PyTorch's `F.softplus`
/// (threshold 20) does; the difference `log1p(exp(−x)) < 2.1e-9` is far below
/// f32 resolution at x = 20.
pub const SOFTPLUS_THRESHOLD: f64 = 20.0;

/// `log(1 + exp(x))`: `x` above [`SOFTPLUS_THRESHOLD`], else `log1p(exp(x))`
/// (no overflow there, and exact for very negative x where exp underflows).
pub fn softplus(x: f64) -> f64 {
    if x > SOFTPLUS_THRESHOLD {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// `1 / (1 + exp(−x))`; finite for every x (exp overflow gives 0).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Decay and write strength per token and value head:
/// `g = −exp(a_log[h]) · softplus(a + dt_bias[h])`, `β = sigmoid(b)`.
///
/// `a`, `b`, `g`, `beta` are `[tokens, num_value_heads]`; `a_log` and
/// `dt_bias` are `[num_value_heads]`. Computed in f64, rounded once.
pub fn gdn_gates(
    num_value_heads: usize,
    a_log: &[f32],
    dt_bias: &[f32],
    a: &[f32],
    b: &[f32],
    g: &mut [f32],
    beta: &mut [f32],
) -> Result<()> {
    const OP: &str = "gdn_gates";
    if num_value_heads == 0 || a.len() % num_value_heads != 0 {
        return Err(MlxError::shape(
            OP,
            format!(
                "a has {} elements, not a multiple of num_value_heads {num_value_heads}",
                a.len()
            ),
        ));
    }
    check_len(OP, "a_log", a_log.len(), num_value_heads)?;
    check_len(OP, "dt_bias", dt_bias.len(), num_value_heads)?;
    check_len(OP, "b", b.len(), a.len())?;
    check_len(OP, "g", g.len(), a.len())?;
    check_len(OP, "beta", beta.len(), a.len())?;
    for (i, (g_out, beta_out)) in g.iter_mut().zip(beta.iter_mut()).enumerate() {
        let h = i % num_value_heads;
        let rate = f64::from(a_log[h]).exp();
        *g_out = (-rate * softplus(f64::from(a[i]) + f64::from(dt_bias[h]))) as f32;
        *beta_out = sigmoid(f64::from(b[i])) as f32;
    }
    Ok(())
}
