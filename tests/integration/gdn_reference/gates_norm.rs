//! Gates and norms against closed forms on hand-checked values.

use mlx_native::ops::gdn::reference::{
    gdn_gates, l2_normalize_rows, rms_norm_gated, softplus, SOFTPLUS_THRESHOLD,
};

use super::common::{poisoned, rel_err, Rng};

fn assert_close(got: &[f32], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(err <= rel * w.abs(), "element {i}: got {g:e}, want {w:e}");
    }
}

/// g = −exp(A_log) · softplus(a + dt_bias), β = sigmoid(b), two tokens × two heads:
/// softplus(0) = ln 2; 25 is above the threshold, so softplus(25) = 25;
/// softplus(−30) = log1p(e^−30) = 9.3576e-14 (must not round to 0);
/// sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(−40) = 4.2484e-18, sigmoid(40) = 1.
#[test]
fn gates_match_closed_forms() {
    let ln2 = std::f64::consts::LN_2;
    let a_log = [0.0f32, ln2 as f32];
    let dt_bias = [0.5f32, 5.0];
    let a = [-0.5f32, 20.0, -30.5, -5.0];
    let b = [0.0f32, 3f32.ln(), -40.0, 40.0];
    let (mut g, mut beta) = (poisoned(4), poisoned(4));
    gdn_gates(2, &a_log, &dt_bias, &a, &b, &mut g, &mut beta).expect("gates");
    assert_close(&g, &[-ln2, -50.0, -9.357622968839737e-14, -2.0 * ln2], 1e-6);
    assert_close(&beta, &[0.5, 0.75, 4.248354255291589e-18, 1.0], 1e-6);
}

#[test]
fn softplus_is_continuous_at_the_threshold() {
    let below = softplus(SOFTPLUS_THRESHOLD - 1e-9);
    let above = softplus(SOFTPLUS_THRESHOLD + 1e-9);
    assert!((above - below).abs() < 1e-8, "{below} vs {above}");
    assert!((softplus(-745.0)).abs() < 1e-300 && softplus(-745.0) >= 0.0);
    assert!((softplus(1.0) - (1.0f64 + 1f64.exp()).ln()).abs() < 1e-15);
}

/// x = [3, 4]: mean(x²) = 12.5; z = [ln 3, −ln 3]: silu = [¾ ln 3, −¼ ln 3]; w = [1, 2], eps 0.
/// x = [1, 1], eps = 2: rms = √3; z = [ln 3, ln 3].
#[test]
fn rms_norm_gated_matches_closed_form() {
    let ln3 = 3f32.ln();
    let x = [3.0f32, 4.0];
    let z = [ln3, -ln3];
    let w = [1.0f32, 2.0];
    let mut y = poisoned(2);
    rms_norm_gated(&x, &z, &w, 0.0, &mut y).expect("norm");
    assert_close(&y, &[0.699152579290884, -0.6214689593696746], 1e-6);
    rms_norm_gated(&[1.0, 1.0], &[ln3, ln3], &w, 2.0, &mut y).expect("norm with eps");
    assert_close(&y, &[0.4757130754481731, 0.9514261508963462], 1e-6);
}

/// Random rows of an odd head size against the formula written out in f64.
#[test]
fn rms_norm_gated_matches_direct_formula() {
    let (rows, dim, eps) = (5, 65, 1e-6f32);
    let mut rng = Rng::new(1400);
    let x = rng.vec(rows * dim, -3.0, 3.0);
    let z = rng.vec(rows * dim, -4.0, 4.0);
    let w = rng.vec(dim, 0.5, 1.5);
    let mut y = poisoned(x.len());
    rms_norm_gated(&x, &z, &w, eps, &mut y).expect("norm");
    let mut want = vec![0.0f32; x.len()];
    for r in 0..rows {
        let row = &x[r * dim..(r + 1) * dim];
        let mean_sq = row.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>() / dim as f64;
        for i in 0..dim {
            let zi = f64::from(z[r * dim + i]);
            let silu = zi / (1.0 + (-zi).exp());
            want[r * dim + i] = (f64::from(row[i]) / (mean_sq + f64::from(eps)).sqrt()
                * f64::from(w[i])
                * silu) as f32;
        }
    }
    assert!(rel_err(&y, &want) < 1e-6);
}

#[test]
fn l2_normalize_rows_matches_closed_form() {
    let mut y = poisoned(4);
    l2_normalize_rows(&[3.0, 4.0, 0.0, 0.0], 2, 0.0, &mut y).expect("l2 norm");
    assert_close(&y[..2], &[0.6, 0.8], 1e-6);
    // eps keeps an all-zero row finite.
    l2_normalize_rows(&[3.0, 4.0, 0.0, 0.0], 2, 1e-6, &mut y).expect("l2 norm");
    assert_eq!(&y[2..], &[0.0, 0.0]);
    assert_close(
        &y[..2],
        &[3.0 / (25.0f64 + 1e-6).sqrt(), 4.0 / (25.0f64 + 1e-6).sqrt()],
        1e-6,
    );
}
