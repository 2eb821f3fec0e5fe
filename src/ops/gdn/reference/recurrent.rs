//! The token-by-token Gated DeltaNet recurrence in f64: the reference every
//! other form (chunked, GPU) is checked against.

use std::ops::Range;

use rayon::prelude::*;

use super::layout::{validate_call, GdnConfig, GdnInputs, GdnOutputs, GdnShape, GDN_L2_NORM_EPS};
use crate::Result;

/// Runs `S ← exp(g)·S; δ = β(v − S k); S ← S + δ kᵀ; o = scale·S q` for every
/// token of every sequence and value head, accumulating in f64 (inputs are
/// widened once, outputs rounded once).
///
/// Sequences and heads are independent and run in parallel.
pub fn gdn_recurrent_f64(
    shape: &GdnShape,
    config: &GdnConfig,
    inputs: &GdnInputs<'_>,
    outputs: GdnOutputs<'_>,
) -> Result<()> {
    let sequences = validate_call("gdn_recurrent_f64", shape, inputs, &outputs)?;
    let heads = shape.num_value_heads;
    let jobs: Vec<(usize, usize)> = (0..sequences.len())
        .flat_map(|n| (0..heads).map(move |h| (n, h)))
        .collect();
    let results: Vec<HeadResult> = jobs
        .par_iter()
        .map(|&(n, h)| run_head(shape, config, inputs, n, sequences[n].clone(), h))
        .collect();

    let (value_dim, state_len) = (shape.value_dim, shape.state_len());
    let GdnOutputs { o, mut final_state } = outputs;
    for (&(n, h), result) in jobs.iter().zip(&results) {
        for (i, t) in sequences[n].clone().enumerate() {
            let dst = (t * heads + h) * value_dim;
            o[dst..dst + value_dim].copy_from_slice(&result.o[i * value_dim..(i + 1) * value_dim]);
        }
        if let Some(final_state) = final_state.as_deref_mut() {
            let dst = (n * heads + h) * state_len;
            for (d, &s) in final_state[dst..dst + state_len]
                .iter_mut()
                .zip(&result.state)
            {
                *d = s as f32;
            }
        }
    }
    Ok(())
}

/// Outputs of one (sequence, value head): o rows `[len, V]`, final state `[V, K]`.
struct HeadResult {
    o: Vec<f32>,
    state: Vec<f64>,
}

fn widen_normalized(x: &[f32], normalize: bool) -> Vec<f64> {
    let mut wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    if normalize {
        let inv =
            1.0 / (wide.iter().map(|v| v * v).sum::<f64>() + f64::from(GDN_L2_NORM_EPS)).sqrt();
        wide.iter_mut().for_each(|v| *v *= inv);
    }
    wide
}

fn run_head(
    shape: &GdnShape,
    config: &GdnConfig,
    inputs: &GdnInputs<'_>,
    sequence: usize,
    tokens: Range<usize>,
    head: usize,
) -> HeadResult {
    let (k_dim, v_dim) = (shape.key_dim, shape.value_dim);
    let (heads, key_heads) = (shape.num_value_heads, shape.num_key_heads);
    let key_head = shape.key_head_of(head);
    let state_len = shape.state_len();
    let mut state: Vec<f64> = match inputs.initial_state {
        Some(init) => {
            let src = (sequence * heads + head) * state_len;
            init[src..src + state_len]
                .iter()
                .map(|&s| f64::from(s))
                .collect()
        }
        None => vec![0.0; state_len],
    };
    let scale = f64::from(config.scale);
    let mut o = Vec::with_capacity(tokens.len() * v_dim);
    let mut delta = vec![0.0f64; v_dim];
    for t in tokens {
        let qk_at = (t * key_heads + key_head) * k_dim;
        let q = widen_normalized(&inputs.q[qk_at..qk_at + k_dim], config.l2_normalize_qk);
        let k = widen_normalized(&inputs.k[qk_at..qk_at + k_dim], config.l2_normalize_qk);
        let v_at = (t * heads + head) * v_dim;
        let v = &inputs.v[v_at..v_at + v_dim];
        let decay = f64::from(inputs.g[t * heads + head]).exp();
        let beta = f64::from(inputs.beta[t * heads + head]);

        // Decay the state and read it at k in one pass: δ = β(v − S k).
        for ((row, d), &v_i) in state.chunks_exact_mut(k_dim).zip(&mut delta).zip(v) {
            let mut s_k = 0.0;
            for (s, &k_j) in row.iter_mut().zip(&k) {
                *s *= decay;
                s_k += *s * k_j;
            }
            *d = beta * (f64::from(v_i) - s_k);
        }
        // Write δ kᵀ and read the new state at q.
        for (row, &d) in state.chunks_exact_mut(k_dim).zip(&delta) {
            let mut s_q = 0.0;
            for ((s, &k_j), &q_j) in row.iter_mut().zip(&k).zip(&q) {
                *s += d * k_j;
                s_q += *s * q_j;
            }
            o.push((scale * s_q) as f32);
        }
    }
    HeadResult { o, state }
}
