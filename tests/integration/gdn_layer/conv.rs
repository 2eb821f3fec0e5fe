//! The short causal convolution, prefill and decode.

use mlx_native::ops::gdn::reference::{self, SsmConvShape};
use mlx_native::ops::gdn_layer::{ssm_conv, ssm_conv_decode, SsmConvParams};
use mlx_native::{DType, MlxBuffer, MlxDevice};

use super::{assert_untouched, expect_err, f64s, random_buffer, tol, view_in_poison, wait};
use crate::harness::{assert_close, float_buffer, poisoned, read_f32, Rng};

/// The expected conv output and new state of every sequence, by the
/// reference, from the values the buffers hold.
fn expected_conv(
    p: &SsmConvParams,
    x: &MlxBuffer,
    weight: &[f32],
    bias: Option<&[f32]>,
    state: Option<&MlxBuffer>,
) -> (Vec<f32>, Vec<f32>) {
    let shape = SsmConvShape {
        channels: p.channels,
        kernel_width: p.kernel_width,
    };
    let xs = read_f32(x);
    let state_len = (p.kernel_width - 1) * p.channels;
    let mut st = state.map_or(vec![0.0; p.batch * state_len], read_f32);
    let mut y = vec![0.0f32; xs.len()];
    let seq = p.seq_len * p.channels;
    for ((xb, yb), sb) in xs
        .chunks(seq)
        .zip(y.chunks_mut(seq))
        .zip(st.chunks_mut(state_len))
    {
        reference::ssm_conv(&shape, xb, weight, bias, sb, yb).unwrap();
    }
    (y, st)
}

struct ConvCase {
    batch: usize,
    seq_len: usize,
    channels: usize,
    width: usize,
    bias: bool,
    state: bool,
}

pub fn check_ssm_conv(dev: &MlxDevice) {
    let c = |batch, seq_len, channels, width, bias, state| ConvCase {
        batch,
        seq_len,
        channels,
        width,
        bias,
        state,
    };
    // Channels 37 (rows not whole 16-byte pieces: the any-width kernel), 40
    // and 64 (the tile kernel on CUDA); widths 2 and 3 (padded window), 4,
    // and 6 (the any-width kernel).
    let mut cases = vec![
        c(1, 1, 37, 4, false, true),
        c(2, 2, 64, 4, true, true),
        c(2, 3, 37, 4, true, false),
        c(3, 17, 64, 4, false, true),
        c(1, 17, 40, 2, true, true),
        c(2, 17, 37, 3, false, true),
        c(2, 33, 64, 3, true, true),
        c(2, 300, 37, 4, true, true),
        c(1, 300, 64, 4, false, false),
        c(2, 17, 37, 6, true, true),
        c(1, 2, 64, 6, false, true),
        c(1, 300, 24, 5, true, true),
    ];
    if dev.is_cuda() {
        cases.push(c(3, 300, 4104, 4, true, true));
        cases.push(c(2, 300, 4097, 4, false, true));
        cases.push(c(2, 1000, 1032, 4, true, true));
        // Tiles of 512 channels cut short (4104, 1032); more tiles than
        // resident blocks, across sequences.
        cases.push(c(4, 2000, 2048, 4, true, true));
        cases.push(c(2, 3000, 4001, 6, true, true));
    }
    let mut rng = Rng::new(4100);
    let mut enc = dev.command_encoder().unwrap();
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for case in &cases {
            let p = SsmConvParams {
                batch: case.batch,
                seq_len: case.seq_len,
                channels: case.channels,
                kernel_width: case.width,
            };
            let what = format!("{dtype} {p:?} bias {} state {}", case.bias, case.state);
            let n = p.batch * p.seq_len * p.channels;
            let state_n = p.batch * (p.kernel_width - 1) * p.channels;
            let x = random_buffer(dev, &mut rng, dtype, n, -2.0, 2.0);
            let w = rng.vec(p.channels * p.kernel_width, -1.0, 1.0);
            let b = rng.vec(p.channels, -0.5, 0.5);
            let weight = MlxBuffer::from_slice(dev, &w, &[p.channels, p.kernel_width]).unwrap();
            let bias = MlxBuffer::from_slice(dev, &b, &[p.channels]).unwrap();
            let state = random_buffer(dev, &mut rng, dtype, state_n, -2.0, 2.0);
            let state_in = case.state.then_some(&state);
            let bias_in = case.bias.then_some(&bias);
            let out = poisoned(dev, dtype, &[n]);
            let state_out = poisoned(dev, dtype, &[state_n]);
            ssm_conv(
                &mut enc,
                &x,
                &weight,
                bias_in,
                state_in,
                &out,
                Some(&state_out),
                &p,
            )
            .unwrap();
            wait(&mut enc);
            let (want_y, want_state) =
                expected_conv(&p, &x, &w, case.bias.then_some(&b[..]), state_in);
            let (rtol, atol) = tol(dtype);
            assert_close(&what, &read_f32(&out), &f64s(&want_y), rtol, atol);
            assert_eq!(read_f32(&state_out), want_state, "{what}: new state");
        }
    }
}

/// Inputs, weights and outputs as views at offsets (16-byte aligned and
/// not), the state updated in place, and no state output at all.
pub fn check_ssm_conv_views(dev: &MlxDevice) {
    let mut rng = Rng::new(4200);
    let mut enc = dev.command_encoder().unwrap();
    for (dtype, offset, channels, seq_len) in [
        (DType::BF16, 8, 64, 17),
        (DType::BF16, 3, 64, 2),
        (DType::F32, 4, 48, 300),
        (DType::F32, 1, 37, 3),
        (DType::F16, 5, 40, 1),
    ] {
        let p = SsmConvParams::new(2, seq_len, channels);
        let what = format!("{dtype} offset {offset} {p:?}");
        let n = p.batch * p.seq_len * p.channels;
        let state_n = p.batch * 3 * p.channels;
        let x_all = random_buffer(dev, &mut rng, dtype, offset + n, -2.0, 2.0);
        let x = x_all.slice_view(offset * dtype.size_of(), n).unwrap();
        // The weights one element further on: never 16-byte aligned, so
        // the tile kernel (x aligned) reads its taps one by one.
        let w = rng.vec(p.channels * 4, -1.0, 1.0);
        let w_offset = offset + 1;
        let w_all: Vec<f32> = vec![f32::NAN; w_offset]
            .into_iter()
            .chain(w.clone())
            .collect();
        let weight_all = MlxBuffer::from_slice(dev, &w_all, &[w_all.len()]).unwrap();
        let weight = weight_all.slice_view(w_offset * 4, w.len()).unwrap();
        let state_all = random_buffer(dev, &mut rng, dtype, offset + state_n + 5, -2.0, 2.0);
        let state = state_all
            .slice_view(offset * dtype.size_of(), state_n)
            .unwrap();
        let (want_y, want_state) = expected_conv(&p, &x, &w, None, Some(&state));
        let state_before = read_f32(&state_all);
        let (out_all, out) = view_in_poison(dev, dtype, offset, n, 7);
        ssm_conv(
            &mut enc,
            &x,
            &weight,
            None,
            Some(&state),
            &out,
            Some(&state),
            &p,
        )
        .unwrap();
        wait(&mut enc);
        let (rtol, atol) = tol(dtype);
        assert_close(&what, &read_f32(&out), &f64s(&want_y), rtol, atol);
        assert_untouched(&what, &out_all, offset, n);
        assert_eq!(read_f32(&state), want_state, "{what}: state in place");
        let state_after = read_f32(&state_all);
        let around = |v: &[f32]| -> Vec<u32> {
            v[..offset]
                .iter()
                .chain(&v[offset + state_n..])
                .map(|x| x.to_bits())
                .collect()
        };
        assert_eq!(
            around(&state_after),
            around(&state_before),
            "{what}: around the state"
        );
        // Without a state output the state is left alone.
        let out2 = poisoned(dev, dtype, &[n]);
        ssm_conv(&mut enc, &x, &weight, None, None, &out2, None, &p).unwrap();
        wait(&mut enc);
        let (want_fresh, _) = expected_conv(&p, &x, &w, None, None);
        assert_close(&what, &read_f32(&out2), &f64s(&want_fresh), rtol, atol);
        assert_eq!(read_f32(&state), want_state, "{what}: state untouched");
    }
}

/// Prefill in two parts (state carried in place), then token by token with
/// the decode op, equals one conv over the whole sequence.
pub fn check_conv_chain(dev: &MlxDevice) {
    let mut rng = Rng::new(4300);
    let mut enc = dev.command_encoder().unwrap();
    for (dtype, channels, width, first, second, decoded) in [
        (DType::BF16, 64, 4, 17, 2, 5),
        (DType::F32, 37, 4, 1, 300, 3),
        (DType::F16, 40, 3, 2, 1, 4),
        (DType::F32, 24, 6, 3, 17, 6),
    ] {
        let batch = 3;
        let total = first + second + decoded;
        let what = format!("{dtype} C {channels} W {width} {first}+{second}+{decoded}");
        let x_seq: Vec<f32> = rng.vec(batch * total * channels, -2.0, 2.0);
        let w = rng.vec(channels * width, -1.0, 1.0);
        let b = rng.vec(channels, -0.5, 0.5);
        let weight = MlxBuffer::from_slice(dev, &w, &[channels * width]).unwrap();
        let bias = MlxBuffer::from_slice(dev, &b, &[channels]).unwrap();
        let state_n = batch * (width - 1) * channels;
        let init = random_buffer(dev, &mut rng, dtype, state_n, -2.0, 2.0);
        let params = |seq_len| SsmConvParams {
            batch,
            seq_len,
            channels,
            kernel_width: width,
        };
        // Tokens start..end of every sequence, as [batch, end − start, C].
        let tokens = |start: usize, end: usize| -> MlxBuffer {
            let v: Vec<f32> = (0..batch)
                .flat_map(|s| &x_seq[(s * total + start) * channels..(s * total + end) * channels])
                .copied()
                .collect();
            float_buffer(dev, &v, dtype, &[v.len()])
        };
        let whole = tokens(0, total);
        let want = poisoned(dev, dtype, &[batch * total * channels]);
        let want_state = poisoned(dev, dtype, &[state_n]);
        let p_all = params(total);
        ssm_conv(
            &mut enc,
            &whole,
            &weight,
            Some(&bias),
            Some(&init),
            &want,
            Some(&want_state),
            &p_all,
        )
        .unwrap();
        let state = MlxBuffer::zeros(dev, dtype, &[state_n]).unwrap();
        enc.copy_buffer(&init, &state).unwrap();
        let mut got: Vec<Vec<f32>> = Vec::new();
        for (start, end) in [(0, first), (first, first + second)] {
            let out = poisoned(dev, dtype, &[batch * (end - start) * channels]);
            let p = params(end - start);
            ssm_conv(
                &mut enc,
                &tokens(start, end),
                &weight,
                Some(&bias),
                Some(&state),
                &out,
                Some(&state),
                &p,
            )
            .unwrap();
            wait(&mut enc);
            got.push(read_f32(&out));
        }
        for t in first + second..total {
            let out = poisoned(dev, dtype, &[batch * channels]);
            ssm_conv_decode(
                &mut enc,
                &tokens(t, t + 1),
                &weight,
                Some(&bias),
                &state,
                &out,
                &params(1),
            )
            .unwrap();
            wait(&mut enc);
            got.push(read_f32(&out));
        }
        // Reassemble [batch, total, C] from the pieces.
        let lens = [first, second]
            .into_iter()
            .chain(std::iter::repeat_n(1, decoded));
        let mut joined = vec![f32::NAN; batch * total * channels];
        let mut start = 0;
        for (piece, len) in got.iter().zip(lens) {
            for s in 0..batch {
                let dst = (s * total + start) * channels;
                joined[dst..dst + len * channels]
                    .copy_from_slice(&piece[s * len * channels..(s + 1) * len * channels]);
            }
            start += len;
        }
        let (rtol, atol) = tol(dtype);
        assert_close(&what, &joined, &f64s(&read_f32(&want)), rtol, atol);
        assert_eq!(
            read_f32(&state),
            read_f32(&want_state),
            "{what}: final state"
        );
    }
}

pub fn check_conv_errors(dev: &MlxDevice) {
    let mut enc = dev.command_encoder().unwrap();
    let p = SsmConvParams::new(2, 5, 8);
    let f = |dtype, n: usize| poisoned(dev, dtype, &[n]);
    let x = f(DType::BF16, 80);
    let weight = f(DType::F32, 32);
    let out = f(DType::BF16, 80);
    let state = f(DType::BF16, 48);
    let mut conv = |x: &MlxBuffer,
                    weight: &MlxBuffer,
                    bias: Option<&MlxBuffer>,
                    state_in: Option<&MlxBuffer>,
                    out: &MlxBuffer,
                    state_out: Option<&MlxBuffer>,
                    p: &SsmConvParams| {
        ssm_conv(&mut enc, x, weight, bias, state_in, out, state_out, p)
    };
    let op = "ssm_conv";
    let narrow = SsmConvParams {
        kernel_width: 1,
        ..p
    };
    expect_err(
        "width 1",
        op,
        conv(&x, &f(DType::F32, 8), None, None, &out, None, &narrow),
    );
    let empty = SsmConvParams { seq_len: 0, ..p };
    expect_err(
        "no tokens",
        op,
        conv(&x, &weight, None, None, &out, None, &empty),
    );
    expect_err(
        "bf16 weight",
        op,
        conv(&x, &f(DType::BF16, 32), None, None, &out, None, &p),
    );
    expect_err(
        "short weight",
        op,
        conv(&x, &f(DType::F32, 31), None, None, &out, None, &p),
    );
    expect_err(
        "bias length",
        op,
        conv(&x, &weight, Some(&f(DType::F32, 7)), None, &out, None, &p),
    );
    expect_err(
        "x length",
        op,
        conv(&f(DType::BF16, 81), &weight, None, None, &out, None, &p),
    );
    expect_err(
        "int x",
        op,
        conv(
            &f(DType::I32, 80),
            &weight,
            None,
            None,
            &f(DType::I32, 80),
            None,
            &p,
        ),
    );
    expect_err(
        "out dtype",
        op,
        conv(&x, &weight, None, None, &f(DType::F32, 80), None, &p),
    );
    expect_err(
        "state dtype",
        op,
        conv(&x, &weight, None, Some(&f(DType::F32, 48)), &out, None, &p),
    );
    expect_err(
        "state length",
        op,
        conv(&x, &weight, None, Some(&f(DType::BF16, 40)), &out, None, &p),
    );
    expect_err("out is x", op, conv(&x, &weight, None, None, &x, None, &p));
    let big = f(DType::BF16, 100);
    let (s1, s2) = (
        big.slice_view(0, 48).unwrap(),
        big.slice_view(2, 48).unwrap(),
    );
    expect_err(
        "state shifted in place",
        op,
        conv(&x, &weight, None, Some(&s1), &out, Some(&s2), &p),
    );
    expect_err(
        "state out over x",
        op,
        conv(
            &x,
            &weight,
            None,
            Some(&state),
            &out,
            Some(&x.slice_view(0, 48).unwrap()),
            &p,
        ),
    );
    expect_err(
        "state out over out",
        op,
        conv(
            &x,
            &weight,
            None,
            None,
            &out,
            Some(&out.slice_view(0, 48).unwrap()),
            &p,
        ),
    );
    assert!(
        conv(&x, &weight, None, Some(&s1), &out, Some(&s1), &p).is_ok(),
        "exact in place is allowed"
    );
    let op = "ssm_conv_decode";
    let p1 = SsmConvParams::new(2, 1, 8);
    let (x1, out1) = (f(DType::BF16, 16), f(DType::BF16, 16));
    expect_err(
        "decode seq_len 2",
        op,
        ssm_conv_decode(&mut enc, &x1, &weight, None, &state, &out1, &p),
    );
    expect_err(
        "decode x length",
        op,
        ssm_conv_decode(&mut enc, &x, &weight, None, &state, &out1, &p1),
    );
    expect_err(
        "decode state dtype",
        op,
        ssm_conv_decode(&mut enc, &x1, &weight, None, &f(DType::F16, 48), &out1, &p1),
    );
    expect_err(
        "decode out is state",
        op,
        ssm_conv_decode(
            &mut enc,
            &x1,
            &weight,
            None,
            &state,
            &state.slice_view(0, 16).unwrap(),
            &p1,
        ),
    );
    assert!(ssm_conv_decode(&mut enc, &x1, &weight, None, &state, &out1, &p1).is_ok());
    if dev.is_cuda() {
        let cpu = MlxDevice::cpu();
        let foreign = poisoned(&cpu, DType::F32, &[32]);
        expect_err(
            "weight on another device",
            "ssm_conv_decode",
            ssm_conv_decode(&mut enc, &x1, &foreign, None, &state, &out1, &p1),
        );
    }
}
