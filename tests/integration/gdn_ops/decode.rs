//! `gated_delta_net_decode` against the f64 recurrence, and prefill
//! followed by decode against one longer prefill.

use mlx_native::ops::gdn::{gated_delta_net_decode, GdnDecodeParams};
use mlx_native::{DType, MlxDevice};

use super::common::{
    check, round_to, run_prefill, run_recurrent, state_shape, tokens_of, tolerance, upload,
};
use crate::gdn_reference::common::{Case, CaseData};
use crate::harness::{float_buffer, poisoned, read_f32};

backend_tests! {
    decode_matches_recurrence => decode_matches_recurrence,
    prefill_then_decode_equals_longer_prefill => prefill_then_decode_equals_longer_prefill,
}

/// Runs decode on `case` (its tokens are the new ones); returns (o, state).
fn run_decode(dev: &MlxDevice, case: &Case, data: &CaseData, dtype: DType) -> (Vec<f32>, Vec<f32>) {
    let inputs = upload(dev, case, data, dtype);
    let state = match &inputs.initial_state {
        Some(s) => s.clone(),
        None => float_buffer(
            dev,
            &vec![0.0; case.state_len()],
            DType::F32,
            &state_shape(case),
        ),
    };
    let o = poisoned(
        dev,
        dtype,
        &[case.batch, case.seq_len, case.value_heads, case.value_dim],
    );
    let params = GdnDecodeParams {
        scale: None,
        l2_normalize_qk: case.l2_norm,
    };
    let mut enc = dev.command_encoder().unwrap();
    gated_delta_net_decode(
        &mut enc,
        &inputs.q,
        &inputs.k,
        &inputs.v,
        &inputs.g,
        &inputs.beta,
        &state,
        &o,
        &params,
    )
    .unwrap();
    enc.commit_and_wait().unwrap();
    (read_f32(&o), read_f32(&state))
}

/// One and a few tokens, every K and V, group ratios 1–3, batch up to 5.
fn decode_matches_recurrence(dev: &MlxDevice) {
    // (T, B, (H_k, H_v), (K, V), l2)
    let cases = [
        (1, 1, (1, 1), (64, 64), true),
        (1, 5, (2, 6), (128, 128), true),
        (2, 3, (1, 2), (256, 64), false),
        (3, 2, (1, 3), (64, 256), true),
        (1, 4, (2, 4), (256, 256), false),
        (1, 2, (1, 1), (128, 64), false),
    ];
    for (i, &(t, b, heads, dims, l2)) in cases.iter().enumerate() {
        let case = Case {
            l2_norm: l2,
            initial_state: true,
            seed: 700 + i as u64,
            ..Case::new(b, t, heads, dims)
        };
        for dtype in [DType::F32, DType::BF16] {
            let mut data = case.data();
            round_to(&mut data, dtype);
            let reference = run_recurrent(&case, &data);
            let (o, state) = run_decode(dev, &case, &data, dtype);
            // Decode is the recurrence itself in f32: only the output
            // rounding of BF16 and f32 sums separate it from f64.
            let tol_o = if dtype == DType::BF16 { 4e-3 } else { 1e-5 };
            let what = format!("decode {dtype} T={t} B={b} H={heads:?} K,V={dims:?} l2={l2}");
            check(&format!("{what} o"), &o, &reference.o, tol_o);
            check(
                &format!("{what} state"),
                &state,
                &reference.final_state,
                1e-5,
            );
        }
    }
}

/// Tokens [0, t1) by prefill, then [t1, t1+1) and [t1+1, t1+3) by two
/// decode calls from its final state, equal one prefill over all t1+3
/// tokens (batch 2, grouped heads).
fn prefill_then_decode_equals_longer_prefill(dev: &MlxDevice) {
    let t1 = if dev.is_cuda() { 197 } else { 67 };
    let total = t1 + 3;
    let (hk, hv, kd, vd) = (1, 2, 64, 128);
    let b = 2;
    for dtype in [DType::F32, DType::BF16] {
        let whole = Case {
            l2_norm: true,
            initial_state: true,
            seed: 800,
            ..Case::new(b, total, (hk, hv), (kd, vd))
        };
        let mut data = whole.data();
        round_to(&mut data, dtype);
        let reference = run_recurrent(&whole, &data);
        let long = run_prefill(dev, &whole, &data, dtype, true, None);

        // Tokens [from, to) of every batch row, as a case of their own.
        let part = |from: usize, to: usize, state: Option<Vec<f32>>| {
            let case = Case {
                l2_norm: true,
                initial_state: true,
                ..Case::new(b, to - from, (hk, hv), (kd, vd))
            };
            (tokens_of(&whole, &data, from..to, state), case)
        };
        let (head_data, head_case) = part(0, t1, data.initial_state.clone());
        let head = run_prefill(dev, &head_case, &head_data, dtype, false, None);
        let (step1_data, step1_case) = part(t1, t1 + 1, Some(head.final_state.clone()));
        let (o1, state1) = run_decode(dev, &step1_case, &step1_data, dtype);
        let (step2_data, step2_case) = part(t1 + 1, total, Some(state1));
        let (o2, state2) = run_decode(dev, &step2_case, &step2_data, dtype);

        // Reassemble o in [B, T, H_v, V] order.
        let width = hv * vd;
        let mut o = Vec::with_capacity(reference.o.len());
        for r in 0..b {
            o.extend_from_slice(&head.o[r * t1 * width..(r + 1) * t1 * width]);
            o.extend_from_slice(&o1[r * width..(r + 1) * width]);
            o.extend_from_slice(&o2[r * 2 * width..(r + 1) * 2 * width]);
        }
        let (tol_o, tol_s) = tolerance(dev, dtype);
        check(&format!("split {dtype} o"), &o, &reference.o, tol_o);
        check(
            &format!("split {dtype} state"),
            &state2,
            &reference.final_state,
            tol_s,
        );
        check(
            &format!("split vs long {dtype} o"),
            &o,
            &long.o,
            2.0 * tol_o,
        );
        check(
            &format!("split vs long {dtype} state"),
            &state2,
            &long.final_state,
            2.0 * tol_s,
        );
    }
}
