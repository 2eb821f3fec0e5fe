//! The short causal convolution against a direct formula, and its decode form.

use mlx_native::ops::gdn::reference::{
    ssm_conv, ssm_conv_decode, SsmConvShape, SSM_CONV_DEFAULT_WIDTH,
};

use super::common::{poisoned, rel_err, Rng};

/// `silu(bias + Σ_i w[c, i] · x̃[t + i])` with `x̃ = [state; x]`, in f64.
fn naive_conv(
    shape: &SsmConvShape,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    state: &[f32],
) -> Vec<f32> {
    let (c_n, width) = (shape.channels, shape.kernel_width);
    let extended: Vec<f32> = state.iter().chain(x).copied().collect();
    let tokens = x.len() / c_n;
    let mut y = vec![0.0f32; x.len()];
    for t in 0..tokens {
        for c in 0..c_n {
            let mut acc = bias.map_or(0.0, |b| f64::from(b[c]));
            for i in 0..width {
                acc += f64::from(w[c * width + i]) * f64::from(extended[(t + i) * c_n + c]);
            }
            y[t * c_n + c] = (acc / (1.0 + (-acc).exp())) as f32;
        }
    }
    y
}

struct ConvData {
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    state: Vec<f32>,
}

fn conv_data(shape: &SsmConvShape, tokens: usize, seed: u64) -> ConvData {
    let mut rng = Rng::new(seed);
    ConvData {
        x: rng.vec(tokens * shape.channels, -2.0, 2.0),
        weight: rng.vec(shape.channels * shape.kernel_width, -1.0, 1.0),
        bias: rng.vec(shape.channels, -0.5, 0.5),
        state: rng.vec((shape.kernel_width - 1) * shape.channels, -2.0, 2.0),
    }
}

#[test]
fn ssm_conv_matches_direct_formula_and_shifts_state() {
    for (seed, (width, tokens, with_bias)) in [
        (2, 11, true),
        (SSM_CONV_DEFAULT_WIDTH, 11, false),
        (SSM_CONV_DEFAULT_WIDTH, 2, true),
        (5, 1, true),
    ]
    .into_iter()
    .enumerate()
    {
        let shape = SsmConvShape {
            channels: 7,
            kernel_width: width,
        };
        let d = conv_data(&shape, tokens, 1200 + seed as u64);
        let bias = with_bias.then_some(&d.bias[..]);
        let want = naive_conv(&shape, &d.x, &d.weight, bias, &d.state);
        let mut state = d.state.clone();
        let mut y = poisoned(d.x.len());
        ssm_conv(&shape, &d.x, &d.weight, bias, &mut state, &mut y).expect("ssm_conv");
        let err = rel_err(&y, &want);
        assert!(err < 1e-6, "W={width} T={tokens}: {err:.3e}");
        // The new state is the last W − 1 rows of [old state; x].
        let extended: Vec<f32> = d.state.iter().chain(&d.x).copied().collect();
        assert_eq!(
            state,
            extended[extended.len() - (width - 1) * shape.channels..],
            "W={width} T={tokens}"
        );
    }
}

/// Prefill of a prefix, then token-by-token decode, equals one prefill of
/// the whole sequence; so does a prefill split in two.
#[test]
fn ssm_conv_prefill_then_decode_equals_one_prefill() {
    let shape = SsmConvShape {
        channels: 9,
        kernel_width: SSM_CONV_DEFAULT_WIDTH,
    };
    let (tokens, split) = (13, 5);
    let d = conv_data(&shape, tokens, 1300);
    let c_n = shape.channels;
    let mut whole_state = d.state.clone();
    let mut whole = poisoned(d.x.len());
    ssm_conv(
        &shape,
        &d.x,
        &d.weight,
        Some(&d.bias),
        &mut whole_state,
        &mut whole,
    )
    .expect("prefill");

    let mut state = d.state.clone();
    let mut y = poisoned(d.x.len());
    ssm_conv(
        &shape,
        &d.x[..split * c_n],
        &d.weight,
        Some(&d.bias),
        &mut state,
        &mut y[..split * c_n],
    )
    .expect("prefill prefix");
    for t in split..tokens {
        let row = t * c_n..(t + 1) * c_n;
        ssm_conv_decode(
            &shape,
            &d.x[row.clone()],
            &d.weight,
            Some(&d.bias),
            &mut state,
            &mut y[row],
        )
        .expect("decode");
    }
    assert_eq!(y, whole);
    assert_eq!(state, whole_state);

    let mut state = d.state.clone();
    let mut y = poisoned(d.x.len());
    let (x_a, x_b) = d.x.split_at(split * c_n);
    let (y_a, y_b) = y.split_at_mut(split * c_n);
    ssm_conv(&shape, x_a, &d.weight, Some(&d.bias), &mut state, y_a).expect("first part");
    ssm_conv(&shape, x_b, &d.weight, Some(&d.bias), &mut state, y_b).expect("second part");
    assert_eq!(y, whole);
    assert_eq!(state, whole_state);
}
