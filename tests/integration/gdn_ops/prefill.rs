//! `gated_delta_net_prefill` against the f64 recurrence.

use std::time::Instant;

use mlx_native::ops::fill::fill;
use mlx_native::ops::gdn::reference::{gdn_chunked, GdnOutputs};
use mlx_native::ops::gdn::{gated_delta_net_prefill, GdnPrefillParams, GDN_CHUNK};
use mlx_native::{DType, GraphExecutor, MlxBuffer, MlxDevice};

use super::common::{
    check, round_to, run_prefill, run_recurrent, state_shape, tolerance, upload, Decay,
};
use crate::gdn_reference::common::Case;
use crate::harness::{float_buffer, read_f32};

fn check_case(dev: &MlxDevice, case: &Case, dtype: DType, own_scratch: bool) {
    let started = Instant::now();
    let mut data = case.data();
    round_to(&mut data, dtype);
    let reference = run_recurrent(case, &data);
    let got = run_prefill(dev, case, &data, dtype, own_scratch, None);
    let (tol_o, tol_s) = tolerance(dev, dtype);
    let what = format!(
        "{dtype} B={} T={} H={}/{} K={} V={} l2={} init={} {:?} ({:.1?})",
        case.batch,
        case.seq_len,
        case.key_heads,
        case.value_heads,
        case.key_dim,
        case.value_dim,
        case.l2_norm,
        case.initial_state,
        case.decay,
        started.elapsed()
    );
    check(&format!("{what} o"), &got.o, &reference.o, tol_o);
    check(
        &format!("{what} state"),
        &got.final_state,
        &reference.final_state,
        tol_s,
    );
}

backend_tests! {
    prefill_matches_recurrence => prefill_matches_recurrence,
    prefill_packed_sequences_and_chunk_states => prefill_packed_sequences_and_chunk_states,
    prefill_packed_sequences_stay_apart => prefill_packed_sequences_stay_apart,
    prefill_views_at_offsets_and_state_in_place => prefill_views_at_offsets_and_state_in_place,
    prefill_recorded_in_a_graph => prefill_recorded_in_a_graph,
}

/// Lengths around the chunk size, every K and V, group ratios 1–3, with and
/// without L2 norm and initial state, both decay ranges. The CPU runs a
/// debug-sized subset; CUDA the whole list in both dtypes.
fn prefill_matches_recurrence(dev: &MlxDevice) {
    // (T, B, (H_k, H_v), (K, V), l2, init, decay)
    let cpu_cases = [
        (1, 2, (1, 1), (64, 64), false, true, Decay::Full),
        (65, 1, (1, 2), (64, 128), true, true, Decay::Full),
        (130, 1, (1, 3), (128, 64), false, false, Decay::Slow),
    ];
    let cuda_cases = [
        (1, 2, (1, 3), (128, 64), true, true, Decay::Full),
        (2, 1, (2, 4), (64, 128), false, true, Decay::Full),
        (63, 2, (1, 1), (256, 64), true, false, Decay::Full),
        (64, 1, (2, 6), (64, 256), false, true, Decay::Slow),
        (65, 2, (1, 2), (128, 128), true, true, Decay::Full),
        (200, 1, (1, 2), (256, 256), false, true, Decay::Slow),
        (200, 3, (2, 2), (128, 64), true, false, Decay::Full),
        (4096, 1, (1, 2), (128, 128), true, true, Decay::Slow),
        (4096, 1, (1, 1), (64, 256), false, true, Decay::Full),
        (1000, 1, (1, 3), (256, 128), true, true, Decay::Slow),
        (4096, 1, (1, 1), (128, 128), true, true, Decay::Full),
        (3000, 2, (1, 1), (64, 64), true, true, Decay::Full),
    ];
    let cases: &[_] = if dev.is_cuda() {
        &cuda_cases
    } else {
        &cpu_cases
    };
    for (i, &(t, b, heads, dims, l2, init, decay)) in cases.iter().enumerate() {
        let case = Case {
            l2_norm: l2,
            initial_state: init,
            decay,
            seed: 500 + i as u64,
            ..Case::new(b, t, heads, dims)
        };
        let dtypes: &[DType] = if dev.is_cuda() {
            &[DType::BF16, DType::F32]
        } else if i % 2 == 0 {
            &[DType::F32]
        } else {
            &[DType::BF16]
        };
        for &dtype in dtypes {
            check_case(dev, &case, dtype, i % 2 == 0);
        }
    }
}

/// Mixed lengths packed with cu_seqlens (an empty sequence, chunk-boundary
/// and one-token ones), each with its own state, and the per-chunk state
/// snapshots against the chunked reference's.
fn prefill_packed_sequences_and_chunk_states(dev: &MlxDevice) {
    let lengths: &[usize] = if dev.is_cuda() {
        &[37, 64, 0, 1, 130, 65, 300]
    } else {
        &[5, 64, 0, 1, 70]
    };
    let mut offsets = vec![0usize];
    for len in lengths {
        offsets.push(offsets[offsets.len() - 1] + len);
    }
    let total = offsets[offsets.len() - 1];
    let num_chunks: usize = lengths.iter().map(|l| l.div_ceil(GDN_CHUNK)).sum();
    let dims = if dev.is_cuda() { (128, 128) } else { (64, 64) };
    for (i, dtype) in [DType::F32, DType::BF16].into_iter().enumerate() {
        let case = Case {
            l2_norm: true,
            initial_state: i == 0,
            cu_seqlens: Some(offsets.clone()),
            seed: 600 + i as u64,
            ..Case::new(1, total, (1, 2), dims)
        };
        let mut data = case.data();
        round_to(&mut data, dtype);
        let reference = run_recurrent(&case, &data);
        let got = run_prefill(dev, &case, &data, dtype, true, Some(num_chunks));
        let (tol_o, tol_s) = tolerance(dev, dtype);
        check(&format!("packed {dtype} o"), &got.o, &reference.o, tol_o);
        check(
            &format!("packed {dtype} state"),
            &got.final_state,
            &reference.final_state,
            tol_s,
        );

        let mut o = vec![0.0; reference.o.len()];
        let per_chunk = case.value_heads * case.value_dim * case.key_dim;
        let mut chunk_states = vec![f32::NAN; num_chunks * per_chunk];
        gdn_chunked(
            &case.shape(),
            &case.config(),
            &data.inputs(&case),
            GDN_CHUNK,
            GdnOutputs {
                o: &mut o,
                final_state: None,
            },
            Some(&mut chunk_states),
        )
        .unwrap();
        let got_chunks = got.chunk_states.unwrap();
        check(
            &format!("packed {dtype} chunk states"),
            &got_chunks,
            &chunk_states,
            tol_s.max(2e-5),
        );
    }
}

/// A sequence ending inside a chunk shares that chunk's rows with the next
/// sequence: NaN inputs in the second must not reach the first's output or
/// state.
fn prefill_packed_sequences_stay_apart(dev: &MlxDevice) {
    let (first, total) = (37, 128);
    let dims = if dev.is_cuda() { (128, 128) } else { (64, 64) };
    for (i, dtype) in [DType::F32, DType::BF16].into_iter().enumerate() {
        let case = Case {
            l2_norm: i == 0,
            initial_state: true,
            cu_seqlens: Some(vec![0, first, total]),
            seed: 650 + i as u64,
            ..Case::new(1, total, (1, 2), dims)
        };
        let mut data = case.data();
        round_to(&mut data, dtype);
        let reference = run_recurrent(&case, &data);
        let (hk, hv) = (case.key_heads, case.value_heads);
        let poison = |x: &mut Vec<f32>, per_token: usize| {
            x[first * per_token..]
                .iter_mut()
                .for_each(|v| *v = f32::NAN);
        };
        poison(&mut data.q, hk * case.key_dim);
        poison(&mut data.k, hk * case.key_dim);
        poison(&mut data.v, hv * case.value_dim);
        poison(&mut data.g, hv);
        poison(&mut data.beta, hv);
        let got = run_prefill(dev, &case, &data, dtype, false, None);
        let (tol_o, tol_s) = tolerance(dev, dtype);
        let o_len = first * hv * case.value_dim;
        check(
            &format!("{dtype} first sequence o"),
            &got.o[..o_len],
            &reference.o[..o_len],
            tol_o,
        );
        let state_len = hv * case.value_dim * case.key_dim;
        check(
            &format!("{dtype} first sequence state"),
            &got.final_state[..state_len],
            &reference.final_state[..state_len],
            tol_s,
        );
    }
}

/// `values` as a `dtype` view at byte offset 32 of a larger allocation whose
/// other bytes are 0xFF; returns the view and the whole allocation.
fn view_at_offset(
    dev: &MlxDevice,
    values: &[f32],
    dtype: DType,
    shape: &[usize],
) -> (MlxBuffer, MlxBuffer) {
    const LEAD: usize = 32;
    let body = float_buffer(&MlxDevice::cpu(), values, dtype, &[values.len()])
        .read_bytes()
        .unwrap();
    let mut bytes = vec![0xFF; LEAD];
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&[0xFF; 48]);
    let whole =
        MlxBuffer::from_bytes(dev, &bytes, dtype, &[bytes.len() / dtype.size_of()]).unwrap();
    let view = whole
        .slice_view(LEAD, values.len())
        .unwrap()
        .with_shape(shape)
        .unwrap();
    (view, whole)
}

/// Every tensor a view at a 16-byte-aligned offset inside a larger
/// allocation, and the final state written over the initial one: the result
/// matches the recurrence and nothing outside the views changes.
fn prefill_views_at_offsets_and_state_in_place(dev: &MlxDevice) {
    let dims = if dev.is_cuda() { (128, 128) } else { (64, 64) };
    for dtype in [DType::BF16, DType::F32] {
        let case = Case {
            l2_norm: true,
            initial_state: true,
            seed: 700,
            ..Case::new(2, 70, (1, 2), dims)
        };
        let mut data = case.data();
        round_to(&mut data, dtype);
        let reference = run_recurrent(&case, &data);
        let (b, t, hk, hv) = (case.batch, case.seq_len, case.key_heads, case.value_heads);
        let (kd, vd) = (case.key_dim, case.value_dim);
        let (q, _) = view_at_offset(dev, &data.q, dtype, &[b, t, hk, kd]);
        let (k, _) = view_at_offset(dev, &data.k, dtype, &[b, t, hk, kd]);
        let (v, _) = view_at_offset(dev, &data.v, dtype, &[b, t, hv, vd]);
        let (g, _) = view_at_offset(dev, &data.g, DType::F32, &[b, t, hv]);
        let (beta, _) = view_at_offset(dev, &data.beta, DType::F32, &[b, t, hv]);
        let initial = data.initial_state.as_ref().unwrap();
        let (state, state_all) = view_at_offset(dev, initial, DType::F32, &state_shape(&case));
        let poison = vec![f32::NAN; b * t * hv * vd];
        let (o, o_all) = view_at_offset(dev, &poison, dtype, &[b, t, hv, vd]);
        let mut enc = dev.command_encoder().unwrap();
        let params = GdnPrefillParams {
            l2_normalize_qk: true,
            ..GdnPrefillParams::default()
        };
        gated_delta_net_prefill(
            &mut enc,
            &q,
            &k,
            &v,
            &g,
            &beta,
            Some(&state),
            &o,
            Some(&state),
            &params,
        )
        .unwrap();
        enc.commit_and_wait().unwrap();
        let (tol_o, tol_s) = tolerance(dev, dtype);
        check(
            &format!("views {dtype} o"),
            &read_f32(&o),
            &reference.o,
            tol_o,
        );
        check(
            &format!("views {dtype} state in place"),
            &read_f32(&state),
            &reference.final_state,
            tol_s,
        );
        for (what, whole, view) in [("o", &o_all, &o), ("state", &state_all, &state)] {
            let bytes = whole.read_bytes().unwrap();
            let (start, end) = (view.byte_offset(), view.byte_offset() + view.byte_len());
            assert!(
                bytes[..start]
                    .iter()
                    .chain(&bytes[end..])
                    .all(|&x| x == 0xFF),
                "{dtype}: the prefill wrote outside the {what} view"
            );
        }
    }
}

/// A prefill without caller scratch takes the encoder's stream-ordered
/// scratch, which a graph may record: each replay gives what a direct call
/// gives, bit for bit.
fn prefill_recorded_in_a_graph(dev: &MlxDevice) {
    let case = Case {
        l2_norm: true,
        initial_state: true,
        seed: 77,
        ..Case::new(1, 130, (1, 2), (64, 64))
    };
    let dtype = DType::BF16;
    let mut data = case.data();
    round_to(&mut data, dtype);
    let direct = run_prefill(dev, &case, &data, dtype, false, None);

    let inputs = upload(dev, &case, &data, dtype);
    let o = MlxBuffer::zeros(dev, dtype, &[1, 130, 2, 64]).unwrap();
    let state = MlxBuffer::zeros(dev, DType::F32, &state_shape(&case)).unwrap();
    let (o_rec, state_rec) = (o.clone(), state.clone());
    let mut enc = dev.command_encoder_on_new_stream().unwrap();
    let mut graph = GraphExecutor::capture(&mut enc, move |e| {
        let params = GdnPrefillParams {
            l2_normalize_qk: true,
            ..GdnPrefillParams::default()
        };
        let i = &inputs;
        let init = i.initial_state.as_ref();
        gated_delta_net_prefill(
            e,
            &i.q,
            &i.k,
            &i.v,
            &i.g,
            &i.beta,
            init,
            &o_rec,
            Some(&state_rec),
            &params,
        )
    })
    .unwrap();
    for replay in 0..2 {
        fill(&mut enc, &o, f64::NAN).unwrap();
        fill(&mut enc, &state, f64::NAN).unwrap();
        graph.replay(&mut enc).unwrap();
        enc.commit_and_wait().unwrap();
        assert_eq!(read_f32(&o), direct.o, "replay {replay}: o");
        assert_eq!(
            read_f32(&state),
            direct.final_state,
            "replay {replay}: state"
        );
    }
}
