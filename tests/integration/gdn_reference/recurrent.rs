//! The f64 recurrence against independent formulations.

use mlx_native::ops::gdn::reference::{
    gdn_chunked, gdn_recurrent_f64, GdnConfig, GdnInputs, GdnOutputs, GdnShape,
};

use super::common::{poisoned, rel_err, run_chunked, run_recurrent, Case, Decay};

/// K = V = 1, two tokens, worked by hand:
/// S = 0.5 → decay 0.5 → 0.25; δ = 0.5 (1 − 0.25·2) = 0.25; S = 0.25 + 0.25·2 = 0.75; o = 0.75·1
/// decay 0.8 → 0.6; δ = 0.25 (3 − 0.6·1) = 0.6; S = 0.6 + 0.6·1 = 1.2; o = 1.2·2.
#[test]
fn recurrent_hand_computed_scalar_case() {
    let shape = GdnShape {
        batch: 1,
        seq_len: 2,
        num_key_heads: 1,
        num_value_heads: 1,
        key_dim: 1,
        value_dim: 1,
    };
    let config = GdnConfig {
        scale: 1.0,
        l2_normalize_qk: false,
    };
    let g = [0.5f32.ln(), 0.8f32.ln()];
    let inputs = GdnInputs {
        q: &[1.0, 2.0],
        k: &[2.0, 1.0],
        v: &[1.0, 3.0],
        g: &g,
        beta: &[0.5, 0.25],
        initial_state: Some(&[0.5]),
        cu_seqlens: None,
    };
    let mut o = poisoned(2);
    let mut state = poisoned(1);
    gdn_recurrent_f64(
        &shape,
        &config,
        &inputs,
        GdnOutputs {
            o: &mut o,
            final_state: Some(&mut state),
        },
    )
    .expect("recurrent");
    for (got, want) in o.iter().chain(&state).zip([0.75f32, 2.4, 1.2]) {
        assert!((got - want).abs() < 1e-6, "got {got}, want {want}");
    }
}

/// The same recurrence written as `S ← e^g S (I − β k kᵀ) + β v kᵀ` with
/// explicit matrices, in f64, on small odd sizes with every option on.
#[test]
fn recurrent_matches_product_form() {
    let case = Case {
        l2_norm: true,
        initial_state: true,
        seed: 800,
        ..Case::new(2, 9, (2, 6), (5, 3))
    };
    let data = case.data();
    let got = run_recurrent(&case, &data);
    let (t_len, hk, hv, kd, vd) = (
        case.seq_len,
        case.key_heads,
        case.value_heads,
        case.key_dim,
        case.value_dim,
    );
    let scale = 1.0 / (kd as f64).sqrt();
    let normalized = |x: &[f32]| -> Vec<f64> {
        let norm = (x.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>() + 1e-6).sqrt();
        x.iter().map(|&a| f64::from(a) / norm).collect()
    };
    let mut want_o = vec![0.0f32; got.o.len()];
    let mut want_state = vec![0.0f32; got.final_state.len()];
    for b in 0..case.batch {
        for h in 0..hv {
            let kh = h / (hv / hk);
            let init = data.initial_state.as_ref().expect("initial state");
            let at = (b * hv + h) * vd * kd;
            let mut s: Vec<Vec<f64>> = (0..vd)
                .map(|i| (0..kd).map(|j| f64::from(init[at + i * kd + j])).collect())
                .collect();
            for t in 0..t_len {
                let tok = b * t_len + t;
                let q = normalized(&data.q[(tok * hk + kh) * kd..][..kd]);
                let k = normalized(&data.k[(tok * hk + kh) * kd..][..kd]);
                let v: Vec<f64> = data.v[(tok * hv + h) * vd..][..vd]
                    .iter()
                    .map(|&x| f64::from(x))
                    .collect();
                let alpha = f64::from(data.g[tok * hv + h]).exp();
                let beta = f64::from(data.beta[tok * hv + h]);
                // P = I − β k kᵀ
                let p: Vec<Vec<f64>> = (0..kd)
                    .map(|i| {
                        (0..kd)
                            .map(|j| f64::from(u8::from(i == j)) - beta * k[i] * k[j])
                            .collect()
                    })
                    .collect();
                s = (0..vd)
                    .map(|i| {
                        (0..kd)
                            .map(|j| {
                                alpha * (0..kd).map(|m| s[i][m] * p[m][j]).sum::<f64>()
                                    + beta * v[i] * k[j]
                            })
                            .collect()
                    })
                    .collect();
                for i in 0..vd {
                    let sq: f64 = (0..kd).map(|j| s[i][j] * q[j]).sum();
                    want_o[(tok * hv + h) * vd + i] = (scale * sq) as f32;
                }
            }
            for i in 0..vd {
                for j in 0..kd {
                    want_state[at + i * kd + j] = s[i][j] as f32;
                }
            }
        }
    }
    let (err_o, err_state) = (
        rel_err(&got.o, &want_o),
        rel_err(&got.final_state, &want_state),
    );
    assert!(
        err_o < 1e-6 && err_state < 1e-6,
        "o {err_o:.3e}, state {err_state:.3e}"
    );
}

/// Value head h reads key head h / (H_v / H_k): grouped heads give exactly
/// the result of copying each key head to its group of value heads.
#[test]
fn grouped_key_heads_equal_expanded_heads() {
    let grouped = Case {
        initial_state: true,
        decay: Decay::Slow,
        seed: 900,
        ..Case::new(2, 70, (2, 6), (64, 64))
    };
    let data = grouped.data();
    let expanded = Case {
        key_heads: 6,
        ..grouped.clone()
    };
    let mut expanded_data = grouped.data();
    let (hk, hv, kd) = (grouped.key_heads, grouped.value_heads, grouped.key_dim);
    let expand = |x: &[f32]| -> Vec<f32> {
        (0..grouped.batch * grouped.seq_len)
            .flat_map(|tok| {
                (0..hv).flat_map(move |h| x[(tok * hk + h / (hv / hk)) * kd..][..kd].to_vec())
            })
            .collect()
    };
    expanded_data.q = expand(&data.q);
    expanded_data.k = expand(&data.k);
    assert_eq!(
        run_recurrent(&grouped, &data).o,
        run_recurrent(&expanded, &expanded_data).o
    );
    let (a, b) = (
        run_chunked(&grouped, &data, 64),
        run_chunked(&expanded, &expanded_data, 64),
    );
    assert_eq!(a.o, b.o);
    assert_eq!(a.final_state, b.final_state);
}

/// The L2-norm option equals normalising q and k beforehand, in both forms.
#[test]
fn l2_norm_option_equals_prenormalized_inputs() {
    let with_norm = Case {
        l2_norm: true,
        initial_state: true,
        seed: 1000,
        ..Case::new(1, 40, (1, 2), (64, 64))
    };
    let data = with_norm.data();
    let without = Case {
        l2_norm: false,
        ..with_norm.clone()
    };
    let mut normalized = with_norm.data();
    let normalize = |x: &[f32]| -> Vec<f32> {
        x.chunks(with_norm.key_dim)
            .flat_map(|row| {
                let norm = (row.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>() + 1e-6).sqrt();
                row.iter().map(move |&a| (f64::from(a) / norm) as f32)
            })
            .collect()
    };
    normalized.q = normalize(&data.q);
    normalized.k = normalize(&data.k);
    // Bound: the only difference is rounding the normalised inputs to f32.
    let err = rel_err(
        &run_recurrent(&without, &normalized).o,
        &run_recurrent(&with_norm, &data).o,
    );
    assert!(err < 1e-6, "recurrent {err:.3e}");
    let err = rel_err(
        &run_chunked(&without, &normalized, 64).o,
        &run_chunked(&with_norm, &data, 64).o,
    );
    assert!(err < 1e-6, "chunked {err:.3e}");
}

#[test]
fn default_scale_is_inverse_sqrt_key_dim() {
    assert_eq!(GdnConfig::new(64).scale, 0.125);
    assert_eq!(GdnConfig::new(256).scale, 0.0625);
    assert!(!GdnConfig::new(128).l2_normalize_qk);
}

/// Without a final-state output both forms still write o, and the chunked
/// form matches the recurrence.
#[test]
fn final_state_output_is_optional() {
    let case = Case {
        seed: 1100,
        ..Case::new(1, 20, (1, 1), (64, 64))
    };
    let data = case.data();
    let mut o_ref = poisoned(data.v.len());
    let mut o_chunked = poisoned(data.v.len());
    let (shape, config, inputs) = (case.shape(), case.config(), data.inputs(&case));
    gdn_recurrent_f64(
        &shape,
        &config,
        &inputs,
        GdnOutputs {
            o: &mut o_ref,
            final_state: None,
        },
    )
    .expect("recurrent");
    gdn_chunked(
        &shape,
        &config,
        &inputs,
        64,
        GdnOutputs {
            o: &mut o_chunked,
            final_state: None,
        },
        None,
    )
    .expect("chunked");
    assert!(rel_err(&o_chunked, &o_ref) < 2e-5);
}
