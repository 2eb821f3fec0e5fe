//! The gates g, β and the gated RMS norm.

use mlx_native::ops::gdn::reference;
use mlx_native::ops::gdn_layer::{gdn_gates, rms_norm_gated, GdnGatesParams, RmsNormGatedParams};
use mlx_native::{DType, MlxBuffer, MlxDevice};

use super::{assert_untouched, expect_err, f64s, random_buffer, tol, view_in_poison, wait};
use crate::harness::{assert_close, poisoned, read_f32, Rng};

pub fn check_gates(dev: &MlxDevice) {
    let mut rng = Rng::new(4400);
    let mut enc = dev.command_encoder().unwrap();
    // 37 × 5 (no multiple of 4: one element per access), 64 × 32 (the
    // Qwen3.5 head count), 3 × 48 viewed at an odd offset.
    let mut shapes = vec![(37, 5, 0), (64, 32, 0), (3, 48, 1), (300, 12, 4)];
    if dev.is_cuda() {
        shapes.push((4096, 32, 0));
    }
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for &(rows, heads, offset) in &shapes {
            let what = format!("{dtype} {rows}×{heads} offset {offset}");
            let n = rows * heads;
            // a + dt_bias spans the softplus threshold (20) and far below it;
            // b spans saturated sigmoids.
            let (lo, hi) = if dtype == DType::F16 {
                (-30.0, 30.0)
            } else {
                (-40.0, 40.0)
            };
            let a_all = random_buffer(dev, &mut rng, dtype, offset + n, lo, hi);
            let b_all = random_buffer(dev, &mut rng, dtype, offset + n, lo, hi);
            let a = a_all.slice_view(offset * dtype.size_of(), n).unwrap();
            let b = b_all.slice_view(offset * dtype.size_of(), n).unwrap();
            let a_log_v = rng.vec(heads, -3.0, 2.0);
            let dt_v = rng.vec(heads, -3.0, 3.0);
            let a_log = MlxBuffer::from_slice(dev, &a_log_v, &[heads]).unwrap();
            let dt_bias = MlxBuffer::from_slice(dev, &dt_v, &[heads]).unwrap();
            let (g_all, g) = view_in_poison(dev, DType::F32, offset, n, 3);
            let (beta_all, beta) = view_in_poison(dev, DType::F32, offset, n, 3);
            let p = GdnGatesParams {
                rows,
                num_value_heads: heads,
            };
            gdn_gates(&mut enc, &a, &b, &a_log, &dt_bias, &g, &beta, &p).unwrap();
            wait(&mut enc);
            let (mut want_g, mut want_beta) = (vec![0.0; n], vec![0.0; n]);
            reference::gdn_gates(
                heads,
                &a_log_v,
                &dt_v,
                &read_f32(&a),
                &read_f32(&b),
                &mut want_g,
                &mut want_beta,
            )
            .unwrap();
            // f32 on the GPU: a + dt_bias rounds once (relative error of
            // softplus ≤ |a + dt_bias| · 2^-24 ≤ 3e-6 here), exp and log1p
            // add a few ulps. Sigmoids below 1e-30 may flush to 0.
            assert_close(
                &format!("g {what}"),
                &read_f32(&g),
                &f64s(&want_g),
                1e-5,
                1e-30,
            );
            assert_close(
                &format!("β {what}"),
                &read_f32(&beta),
                &f64s(&want_beta),
                1e-5,
                1e-30,
            );
            assert_untouched(&what, &g_all, offset, n);
            assert_untouched(&what, &beta_all, offset, n);
        }
    }
}

pub fn check_norm(dev: &MlxDevice) {
    let mut rng = Rng::new(4500);
    let mut enc = dev.command_encoder().unwrap();
    // Head dims: 128 (Qwen3.5: 16-byte accesses, several rows per warp),
    // 37 (odd), 256 at an 8-byte offset, 512 (several 16-byte chunks per
    // lane), 600 (longer than the register kernels take), 8 at an odd
    // offset.
    let mut cases = vec![
        (128, 37, 0),
        (37, 20, 0),
        (256, 9, 4),
        (512, 7, 8),
        (600, 5, 0),
        (8, 30, 3),
    ];
    if dev.is_cuda() {
        cases.push((128, 32 * 300, 0));
    }
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for &(dim, rows, offset) in &cases {
            for in_place in [false, true] {
                let what =
                    format!("{dtype} D {dim} rows {rows} offset {offset} in place {in_place}");
                let n = dim * rows;
                let o_all = random_buffer(dev, &mut rng, dtype, offset + n, -3.0, 3.0);
                let o = o_all.slice_view(offset * dtype.size_of(), n).unwrap();
                let z = random_buffer(dev, &mut rng, dtype, n, -6.0, 6.0);
                let w = rng.vec(dim, -2.0, 2.0);
                let weight = MlxBuffer::from_slice(dev, &w, &[dim]).unwrap();
                let eps = 1e-6;
                let mut want = vec![0.0; n];
                reference::rms_norm_gated(&read_f32(&o), &read_f32(&z), &w, eps, &mut want)
                    .unwrap();
                let (out_all, out) = view_in_poison(dev, dtype, offset, n, 5);
                let target = if in_place { &o } else { &out };
                rms_norm_gated(
                    &mut enc,
                    &o,
                    &z,
                    &weight,
                    target,
                    &RmsNormGatedParams { eps },
                )
                .unwrap();
                wait(&mut enc);
                let (rtol, atol) = tol(dtype);
                assert_close(&what, &read_f32(target), &f64s(&want), rtol, atol);
                if !in_place {
                    assert_untouched(&what, &out_all, offset, n);
                }
            }
        }
    }
}

pub fn check_gates_norm_errors(dev: &MlxDevice) {
    let mut enc = dev.command_encoder().unwrap();
    let f = |dtype, n: usize| poisoned(dev, dtype, &[n]);
    let p = GdnGatesParams {
        rows: 3,
        num_value_heads: 4,
    };
    let (a, b) = (f(DType::BF16, 12), f(DType::BF16, 12));
    let (hl, hd) = (f(DType::F32, 4), f(DType::F32, 4));
    let (g, beta) = (f(DType::F32, 12), f(DType::F32, 12));
    let op = "gdn_gates";
    let zero = GdnGatesParams { rows: 0, ..p };
    expect_err(
        "no rows",
        op,
        gdn_gates(&mut enc, &a, &b, &hl, &hd, &g, &beta, &zero),
    );
    expect_err(
        "b dtype",
        op,
        gdn_gates(&mut enc, &a, &f(DType::F32, 12), &hl, &hd, &g, &beta, &p),
    );
    expect_err(
        "a length",
        op,
        gdn_gates(&mut enc, &f(DType::BF16, 13), &b, &hl, &hd, &g, &beta, &p),
    );
    expect_err(
        "a_log length",
        op,
        gdn_gates(&mut enc, &a, &b, &f(DType::F32, 3), &hd, &g, &beta, &p),
    );
    expect_err(
        "dt_bias dtype",
        op,
        gdn_gates(&mut enc, &a, &b, &hl, &f(DType::BF16, 4), &g, &beta, &p),
    );
    expect_err(
        "bf16 g",
        op,
        gdn_gates(&mut enc, &a, &b, &hl, &hd, &f(DType::BF16, 12), &beta, &p),
    );
    expect_err(
        "g is beta",
        op,
        gdn_gates(&mut enc, &a, &b, &hl, &hd, &g, &g, &p),
    );
    let af = f(DType::F32, 12);
    expect_err(
        "g over a",
        op,
        gdn_gates(&mut enc, &af, &af, &hl, &hd, &af, &beta, &p),
    );
    let op = "rms_norm_gated";
    let (o, z, w, out) = (
        f(DType::BF16, 24),
        f(DType::BF16, 24),
        f(DType::F32, 8),
        f(DType::BF16, 24),
    );
    let eps = RmsNormGatedParams { eps: 1e-6 };
    expect_err(
        "row length",
        op,
        rms_norm_gated(&mut enc, &o, &z, &f(DType::F32, 7), &out, &eps),
    );
    expect_err(
        "z dtype",
        op,
        rms_norm_gated(&mut enc, &o, &f(DType::F16, 24), &w, &out, &eps),
    );
    expect_err(
        "out length",
        op,
        rms_norm_gated(&mut enc, &o, &z, &w, &f(DType::BF16, 16), &eps),
    );
    expect_err(
        "bf16 weight",
        op,
        rms_norm_gated(&mut enc, &o, &z, &f(DType::BF16, 8), &out, &eps),
    );
    expect_err(
        "negative eps",
        op,
        rms_norm_gated(
            &mut enc,
            &o,
            &z,
            &w,
            &out,
            &RmsNormGatedParams { eps: -1.0 },
        ),
    );
    expect_err(
        "NaN eps",
        op,
        rms_norm_gated(
            &mut enc,
            &o,
            &z,
            &w,
            &out,
            &RmsNormGatedParams { eps: f32::NAN },
        ),
    );
    let big = f(DType::BF16, 30);
    let (v0, v2) = (
        big.slice_view(0, 24).unwrap(),
        big.slice_view(4, 24).unwrap(),
    );
    expect_err(
        "out shifted over o",
        op,
        rms_norm_gated(&mut enc, &v0, &z, &w, &v2, &eps),
    );
}
