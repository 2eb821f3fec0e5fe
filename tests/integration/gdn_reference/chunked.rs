//! The chunked form against the f64 recurrence.
//!
//! Bound: ‖Δ‖/‖ref‖ ≤ 2e-5 for o and the final state. The chunked form is
//! f32: dot products over K ≤ 256 and chunk sums over C = 64 terms (a few
//! 1e-7 each), the state carried in f32 across chunks, and decay ratios
//! e^{G_i − G_j} whose exponent is a difference of cumulative sums with an
//! absolute error of a few ulp of |G| (up to C · 20 = 1280). Measured errors
//! are printed (`--nocapture`): 5e-8…6e-6, the largest with the full
//! decay range, where the cumulative sums are large.

use std::time::Instant;

use mlx_native::ops::gdn::reference::{
    gdn_chunk_cumsum, gdn_chunk_scaled_kkt, gdn_chunk_solve_tril, gdn_chunked, ChunkLayout,
    GdnOutputs, GDN_DEFAULT_CHUNK_SIZE,
};

use super::common::{
    poisoned, rel_err, run_chunked, run_recurrent, Case, CaseData, Decay, RunResult,
};

const CHUNKED_TOLERANCE: f64 = 2e-5;

fn check_against_recurrent(case: &Case, chunk_size: usize) {
    let started = Instant::now();
    let data = case.data();
    let reference = run_recurrent(case, &data);
    let chunked = run_chunked(case, &data, chunk_size);
    let err_o = rel_err(&chunked.o, &reference.o);
    let err_state = rel_err(&chunked.final_state, &reference.final_state);
    println!(
        "C={chunk_size} B={} T={} H={}/{} K={} V={} l2={} init={} {:?} varlen={}: \
         o {err_o:.2e} state {err_state:.2e} ({:.2?})",
        case.batch,
        case.seq_len,
        case.key_heads,
        case.value_heads,
        case.key_dim,
        case.value_dim,
        case.l2_norm,
        case.initial_state,
        case.decay,
        case.cu_seqlens.is_some(),
        started.elapsed()
    );
    assert!(
        err_o <= CHUNKED_TOLERANCE,
        "o relative error {err_o:.3e} for {case:?}"
    );
    assert!(
        err_state <= CHUNKED_TOLERANCE,
        "state relative error {err_state:.3e} for {case:?}"
    );
}

/// One case per length; the sizes, group ratios and options rotate so each
/// K, V ∈ {64, 128, 256} and H_v/H_k ∈ {1, 2, 3} appear, with and without
/// L2 norm and initial state, within a debug-build budget.
#[test]
fn chunked_matches_recurrent_across_lengths() {
    let configs = [
        // (T, B, (H_k, H_v), (K, V), l2, init, decay)
        (1, 2, (1, 3), (128, 64), true, true, Decay::Full),
        (2, 1, (2, 4), (64, 128), false, true, Decay::Full),
        (63, 2, (1, 1), (256, 64), true, false, Decay::Full),
        (64, 1, (2, 6), (64, 256), false, true, Decay::Slow),
        (65, 2, (1, 2), (128, 128), true, true, Decay::Full),
        (200, 1, (1, 2), (128, 128), false, true, Decay::Slow),
        (1000, 1, (1, 1), (128, 128), true, true, Decay::Slow),
        (1000, 1, (1, 3), (64, 64), false, false, Decay::Full),
    ];
    for (i, &(t, b, heads, dims, l2, init, decay)) in configs.iter().enumerate() {
        let case = Case {
            l2_norm: l2,
            initial_state: init,
            decay,
            seed: 100 + i as u64,
            ..Case::new(b, t, heads, dims)
        };
        check_against_recurrent(&case, GDN_DEFAULT_CHUNK_SIZE);
    }
}

#[test]
fn chunked_with_chunk_size_16_matches_recurrent() {
    for (i, &(t, heads, dims)) in [
        (15, (1, 2), (64, 128)),
        (16, (2, 2), (128, 64)),
        (83, (1, 3), (64, 64)),
    ]
    .iter()
    .enumerate()
    {
        let case = Case {
            l2_norm: i % 2 == 0,
            initial_state: true,
            seed: 200 + i as u64,
            ..Case::new(2, t, heads, dims)
        };
        check_against_recurrent(&case, 16);
    }
}

/// 4096 tokens of one small head: the longest state accumulation.
#[test]
fn chunked_matches_recurrent_4096_tokens() {
    let case = Case {
        l2_norm: true,
        initial_state: true,
        decay: Decay::Slow,
        seed: 300,
        ..Case::new(1, 4096, (1, 1), (64, 64))
    };
    check_against_recurrent(&case, GDN_DEFAULT_CHUNK_SIZE);
}

/// Mixed lengths (including an empty sequence and chunk-boundary lengths)
/// packed with cu_seqlens: each sequence's output and final state must be
/// exactly those of running it alone, and the chunked form must match the
/// recurrence.
#[test]
fn varlen_batch_equals_each_sequence_alone() {
    let lengths = [37usize, 64, 0, 1, 130, 65];
    let mut offsets = vec![0usize];
    for len in lengths {
        offsets.push(offsets[offsets.len() - 1] + len);
    }
    let total = offsets[offsets.len() - 1];
    let packed = Case {
        l2_norm: true,
        initial_state: true,
        cu_seqlens: Some(offsets.clone()),
        seed: 400,
        ..Case::new(1, total, (1, 2), (64, 128))
    };
    let data = packed.data();
    let packed_ref = run_recurrent(&packed, &data);
    let packed_chunked = run_chunked(&packed, &data, GDN_DEFAULT_CHUNK_SIZE);
    check_against_recurrent(&packed, GDN_DEFAULT_CHUNK_SIZE);

    let (hv, hk, k, v) = (
        packed.value_heads,
        packed.key_heads,
        packed.key_dim,
        packed.value_dim,
    );
    let state_len = hv * v * k;
    for (n, window) in offsets.windows(2).enumerate() {
        let (start, end) = (window[0], window[1]);
        let alone = Case {
            cu_seqlens: None,
            ..Case::new(1, end - start, (hk, hv), (k, v))
        };
        let mut alone_data = packed.data();
        alone_data.q = data.q[start * hk * k..end * hk * k].to_vec();
        alone_data.k = data.k[start * hk * k..end * hk * k].to_vec();
        alone_data.v = data.v[start * hv * v..end * hv * v].to_vec();
        alone_data.g = data.g[start * hv..end * hv].to_vec();
        alone_data.beta = data.beta[start * hv..end * hv].to_vec();
        alone_data.initial_state = data
            .initial_state
            .as_ref()
            .map(|s| s[n * state_len..(n + 1) * state_len].to_vec());
        let alone = Case {
            l2_norm: true,
            initial_state: true,
            ..alone
        };
        let alone_ref = run_recurrent(&alone, &alone_data);
        let alone_chunked = run_chunked(&alone, &alone_data, GDN_DEFAULT_CHUNK_SIZE);
        let o_range = start * hv * v..end * hv * v;
        let state_range = n * state_len..(n + 1) * state_len;
        assert_eq!(
            alone_ref.o,
            packed_ref.o[o_range.clone()],
            "recurrent o, sequence {n}"
        );
        assert_eq!(
            alone_ref.final_state,
            packed_ref.final_state[state_range.clone()]
        );
        assert_eq!(
            alone_chunked.o, packed_chunked.o[o_range],
            "chunked o, sequence {n}"
        );
        assert_eq!(
            alone_chunked.final_state,
            packed_chunked.final_state[state_range]
        );
    }
}

/// Running the first part, then the rest from its final state, equals one
/// run over the whole sequence (split off a chunk boundary, batch 2, GQA).
#[test]
fn prefill_then_continue_equals_one_run() {
    let (t, split) = (150usize, 97usize);
    let whole = Case {
        l2_norm: true,
        initial_state: true,
        decay: Decay::Slow,
        seed: 500,
        ..Case::new(2, t, (1, 3), (64, 64))
    };
    let data = whole.data();
    let reference = run_recurrent(&whole, &data);
    let (hk, hv, k, v) = (
        whole.key_heads,
        whole.value_heads,
        whole.key_dim,
        whole.value_dim,
    );

    // Token range [from, to) of every batch row.
    let part = |x: &[f32], per_token: usize, from: usize, to: usize| -> Vec<f32> {
        (0..whole.batch)
            .flat_map(|b| {
                x[(b * t + from) * per_token..(b * t + to) * per_token]
                    .iter()
                    .copied()
            })
            .collect()
    };
    let part_data = |from: usize, to: usize, init: Vec<f32>| {
        let mut d = whole.data();
        d.q = part(&data.q, hk * k, from, to);
        d.k = part(&data.k, hk * k, from, to);
        d.v = part(&data.v, hv * v, from, to);
        d.g = part(&data.g, hv, from, to);
        d.beta = part(&data.beta, hv, from, to);
        d.initial_state = Some(init);
        d
    };
    let first = Case {
        seq_len: split,
        ..whole.clone()
    };
    let second = Case {
        seq_len: t - split,
        ..whole.clone()
    };
    let init = data.initial_state.clone().unwrap_or_default();

    for chunked in [false, true] {
        let run = |case: &Case, d: &CaseData| -> RunResult {
            if chunked {
                run_chunked(case, d, GDN_DEFAULT_CHUNK_SIZE)
            } else {
                run_recurrent(case, d)
            }
        };
        let a = run(&first, &part_data(0, split, init.clone()));
        let b = run(&second, &part_data(split, t, a.final_state.clone()));
        let o: Vec<f32> = (0..whole.batch)
            .flat_map(|bi| {
                let first_rows = &a.o[bi * split * hv * v..(bi + 1) * split * hv * v];
                let second_rows = &b.o[bi * (t - split) * hv * v..(bi + 1) * (t - split) * hv * v];
                first_rows
                    .iter()
                    .chain(second_rows)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect();
        let err_o = rel_err(&o, &reference.o);
        let err_state = rel_err(&b.final_state, &reference.final_state);
        println!("prefill+continue chunked={chunked}: o {err_o:.2e} state {err_state:.2e}");
        // The recurrent split only adds the f32 rounding of the handed-over state.
        let bound = if chunked { CHUNKED_TOLERANCE } else { 1e-6 };
        assert!(
            err_o <= bound && err_state <= bound,
            "chunked={chunked}: {err_o:.3e} {err_state:.3e}"
        );
    }
}

/// The chunk-start states the chunked form reports are the recurrent
/// states after 0, C, 2C, … tokens.
#[test]
fn chunk_states_equal_recurrent_prefix_states() {
    let chunk = 16;
    let full = Case {
        initial_state: true,
        decay: Decay::Slow,
        seed: 600,
        ..Case::new(1, 53, (1, 2), (64, 64))
    };
    let data = full.data();
    let layout = ChunkLayout::new(&full.shape(), None, chunk).expect("layout");
    let state_len = full.value_heads * full.value_dim * full.key_dim;
    let mut states = poisoned(layout.num_chunks() * state_len);
    let mut o = poisoned(data.v.len());
    gdn_chunked(
        &full.shape(),
        &full.config(),
        &data.inputs(&full),
        chunk,
        GdnOutputs {
            o: &mut o,
            final_state: None,
        },
        Some(&mut states),
    )
    .expect("chunked");
    let (hk, hv) = (full.key_heads, full.value_heads);
    for c in 0..layout.num_chunks() {
        let got = &states[c * state_len..(c + 1) * state_len];
        let reference: Vec<f32> = if c == 0 {
            data.initial_state.clone().unwrap_or_default()
        } else {
            let prefix = Case {
                seq_len: c * chunk,
                ..full.clone()
            };
            let mut d = full.data();
            d.q.truncate(c * chunk * hk * full.key_dim);
            d.k.truncate(c * chunk * hk * full.key_dim);
            d.v.truncate(c * chunk * hv * full.value_dim);
            d.g.truncate(c * chunk * hv);
            d.beta.truncate(c * chunk * hv);
            run_recurrent(&prefix, &d).final_state
        };
        let err = rel_err(got, &reference);
        assert!(err <= CHUNKED_TOLERANCE, "chunk {c}: state error {err:.3e}");
    }
}

/// Stage 3 alone: (I + A) · T = I for every chunk and head.
#[test]
fn solve_tril_inverts_unit_lower_triangular() {
    let case = Case {
        l2_norm: false,
        seed: 700,
        ..Case::new(1, 45, (1, 2), (64, 64))
    };
    let data = case.data();
    let chunk = 16;
    let layout = ChunkLayout::new(&case.shape(), None, chunk).expect("layout");
    let heads = case.value_heads;
    let tokens = case.seq_len;
    let mut g_cum = poisoned(tokens * heads);
    gdn_chunk_cumsum(&layout, &data.g, &mut g_cum).expect("cumsum");
    let mut a = poisoned(tokens * heads * chunk);
    gdn_chunk_scaled_kkt(&layout, &data.k, &data.beta, &g_cum, &mut a).expect("kkt");
    let mut t_inv = poisoned(a.len());
    gdn_chunk_solve_tril(&layout, &a, &mut t_inv).expect("solve");
    let entry = |m: &[f32], t: usize, h: usize, j: usize| f64::from(m[(t * heads + h) * chunk + j]);
    let mut worst = 0.0f64;
    let mut off_diagonal = 0.0f64;
    for ch in layout.chunks() {
        for h in 0..heads {
            for i in 0..ch.len {
                for j in 0..ch.len {
                    // ((I + A) T)_ij = T_ij + Σ_m A_im T_mj
                    let mut x = entry(&t_inv, ch.start + i, h, j);
                    for m in 0..ch.len {
                        x += entry(&a, ch.start + i, h, m) * entry(&t_inv, ch.start + m, h, j);
                    }
                    let expected = if i == j { 1.0 } else { 0.0 };
                    worst = worst.max((x - expected).abs());
                    if j < i {
                        off_diagonal = off_diagonal.max(entry(&a, ch.start + i, h, j).abs());
                    }
                }
            }
        }
    }
    assert!(
        off_diagonal > 1e-3,
        "A is nearly zero: the test could not fail"
    );
    assert!(worst < 1e-5, "(I + A) T deviates from I by {worst:.3e}");
}
