//! The stages of the chunked Gated DeltaNet, one function each, with the
//! tensors a GPU implementation passes between its kernels (equations in the
//! parent module doc). All are f32, as on the GPU.
//!
//! Token-major tensors cover the packed token axis `N = batch · seq_len`:
//! `g_cum [N, H_v]`, `a` and `t_inv [N, H_v, C]` (row of the token's
//! position in its chunk, C = chunk size, columns past the chunk's length
//! zero), `w [N, H_v, K]`, `u` and `v_new [N, H_v, V]`. Chunk-start states
//! are `[num_chunks, H_v, V, K]`. q and k are read as given: normalise them
//! first if the call asks for it.

use rayon::prelude::*;

use super::layout::{check_len, Chunk, ChunkLayout};
use crate::{MlxError, Result};

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a += scale · b`
fn axpy(a: &mut [f32], scale: f32, b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += scale * y);
}

/// Row `index` of width `len` of a row-major tensor.
fn row(data: &[f32], index: usize, len: usize) -> &[f32] {
    &data[index * len..(index + 1) * len]
}

/// Lengths every stage checks against, for one layout.
struct Dims {
    tokens: usize,
    heads: usize,
    key_heads: usize,
    k: usize,
    v: usize,
    c: usize,
}

impl Dims {
    fn of(layout: &ChunkLayout) -> Self {
        let shape = layout.shape();
        Dims {
            tokens: shape.num_tokens(),
            heads: shape.num_value_heads,
            key_heads: shape.num_key_heads,
            k: shape.key_dim,
            v: shape.value_dim,
            c: layout.chunk_size(),
        }
    }
}

/// Stage 1: `g_cum[t, h] = Σ g[s..=t, h]` over the token's chunk, s its start.
pub fn gdn_chunk_cumsum(layout: &ChunkLayout, g: &[f32], g_cum: &mut [f32]) -> Result<()> {
    const OP: &str = "gdn_chunk_cumsum";
    let d = Dims::of(layout);
    check_len(OP, "g", g.len(), d.tokens * d.heads)?;
    check_len(OP, "g_cum", g_cum.len(), d.tokens * d.heads)?;
    for chunk in layout.chunks() {
        let mut running = vec![0.0f32; d.heads];
        for t in chunk.start..chunk.start + chunk.len {
            for (h, acc) in running.iter_mut().enumerate() {
                *acc += g[t * d.heads + h];
                g_cum[t * d.heads + h] = *acc;
            }
        }
    }
    Ok(())
}

/// Stage 2: `a[t, h, j] = β_t · exp(G_t − G_j) · k_t·k_j` for chunk positions
/// `j` before the token's own, zero elsewhere (strictly lower triangular).
pub fn gdn_chunk_scaled_kkt(
    layout: &ChunkLayout,
    k: &[f32],
    beta: &[f32],
    g_cum: &[f32],
    a: &mut [f32],
) -> Result<()> {
    const OP: &str = "gdn_chunk_scaled_kkt";
    let d = Dims::of(layout);
    check_len(OP, "k", k.len(), d.tokens * d.key_heads * d.k)?;
    check_len(OP, "beta", beta.len(), d.tokens * d.heads)?;
    check_len(OP, "g_cum", g_cum.len(), d.tokens * d.heads)?;
    check_len(OP, "a", a.len(), d.tokens * d.heads * d.c)?;
    let shape = layout.shape();
    let pieces = layout.split_by_chunk(a, d.heads * d.c);
    pieces
        .into_par_iter()
        .zip(layout.chunks().par_iter())
        .for_each(|(a_chunk, chunk)| {
            a_chunk.fill(0.0);
            for i in 0..chunk.len {
                let t = chunk.start + i;
                for h in 0..d.heads {
                    let kh = shape.key_head_of(h);
                    let k_t = row(k, t * d.key_heads + kh, d.k);
                    let a_row = &mut a_chunk[(i * d.heads + h) * d.c..][..i];
                    for (j, entry) in a_row.iter_mut().enumerate() {
                        let s = chunk.start + j;
                        let decay = (g_cum[t * d.heads + h] - g_cum[s * d.heads + h]).exp();
                        *entry = beta[t * d.heads + h]
                            * decay
                            * dot(k_t, row(k, s * d.key_heads + kh, d.k));
                    }
                }
            }
        });
    Ok(())
}

/// Stage 3: `t_inv = (I + a)⁻¹` per chunk and head, by forward substitution:
/// row i is `e_i − Σ_{m<i} a[i, m] · row m` (unit lower triangular).
pub fn gdn_chunk_solve_tril(layout: &ChunkLayout, a: &[f32], t_inv: &mut [f32]) -> Result<()> {
    const OP: &str = "gdn_chunk_solve_tril";
    let d = Dims::of(layout);
    check_len(OP, "a", a.len(), d.tokens * d.heads * d.c)?;
    check_len(OP, "t_inv", t_inv.len(), d.tokens * d.heads * d.c)?;
    let row_len = d.heads * d.c;
    let pieces = layout.split_by_chunk(t_inv, row_len);
    pieces
        .into_par_iter()
        .zip(layout.chunks().par_iter())
        .for_each(|(t_chunk, chunk)| {
            let a_chunk = &a[chunk.start * row_len..(chunk.start + chunk.len) * row_len];
            t_chunk.fill(0.0);
            for i in 0..chunk.len {
                for h in 0..d.heads {
                    let at = (i * d.heads + h) * d.c;
                    let (earlier, current) = t_chunk.split_at_mut(at);
                    let t_row = &mut current[..d.c];
                    t_row[i] = 1.0;
                    for m in 0..i {
                        let coef = a_chunk[at + m];
                        let m_row = &earlier[(m * d.heads + h) * d.c..][..=m];
                        axpy(&mut t_row[..=m], -coef, m_row);
                    }
                }
            }
        });
    Ok(())
}

/// Stage 4, the WY representation: `w[t] = Σ_{j≤t} t_inv[t, j] · β_j e^{G_j} k_j`
/// and `u[t] = Σ_{j≤t} t_inv[t, j] · β_j v_j` (j over the token's chunk).
#[allow(clippy::too_many_arguments)]
pub fn gdn_chunk_wy(
    layout: &ChunkLayout,
    t_inv: &[f32],
    k: &[f32],
    v: &[f32],
    beta: &[f32],
    g_cum: &[f32],
    w: &mut [f32],
    u: &mut [f32],
) -> Result<()> {
    const OP: &str = "gdn_chunk_wy";
    let d = Dims::of(layout);
    check_len(OP, "t_inv", t_inv.len(), d.tokens * d.heads * d.c)?;
    check_len(OP, "k", k.len(), d.tokens * d.key_heads * d.k)?;
    check_len(OP, "v", v.len(), d.tokens * d.heads * d.v)?;
    check_len(OP, "beta", beta.len(), d.tokens * d.heads)?;
    check_len(OP, "g_cum", g_cum.len(), d.tokens * d.heads)?;
    check_len(OP, "w", w.len(), d.tokens * d.heads * d.k)?;
    check_len(OP, "u", u.len(), d.tokens * d.heads * d.v)?;
    let shape = layout.shape();
    let w_pieces = layout.split_by_chunk(w, d.heads * d.k);
    let u_pieces = layout.split_by_chunk(u, d.heads * d.v);
    w_pieces
        .into_par_iter()
        .zip(u_pieces.into_par_iter())
        .zip(layout.chunks().par_iter())
        .for_each(|((w_chunk, u_chunk), chunk)| {
            w_chunk.fill(0.0);
            u_chunk.fill(0.0);
            for i in 0..chunk.len {
                let t = chunk.start + i;
                for h in 0..d.heads {
                    let kh = shape.key_head_of(h);
                    let t_row = row(t_inv, t * d.heads + h, d.c);
                    let w_row = &mut w_chunk[(i * d.heads + h) * d.k..][..d.k];
                    for (j, &t_ij) in t_row[..=i].iter().enumerate() {
                        let s = chunk.start + j;
                        let b = beta[s * d.heads + h];
                        let weight = t_ij * b * g_cum[s * d.heads + h].exp();
                        axpy(w_row, weight, row(k, s * d.key_heads + kh, d.k));
                    }
                    let u_row = &mut u_chunk[(i * d.heads + h) * d.v..][..d.v];
                    for (j, &t_ij) in t_row[..=i].iter().enumerate() {
                        let s = chunk.start + j;
                        let b = beta[s * d.heads + h];
                        axpy(u_row, t_ij * b, row(v, s * d.heads + h, d.v));
                    }
                }
            }
        });
    Ok(())
}

/// Chunk-start states, new values and final state of one (sequence, head).
struct HeadStates {
    chunk_states: Vec<f32>,
    v_new: Vec<f32>,
    final_state: Vec<f32>,
}

/// Stage 5, sequential over the chunks of each sequence: store the
/// chunk-start state `h_c`, then `v_new[t] = u[t] − h_c w[t]` and
/// `h_{c+1} = e^{G_last} h_c + Σ_j exp(G_last − G_j) v_new[j] k_jᵀ`.
/// Sequences and heads run in parallel.
#[allow(clippy::too_many_arguments)]
pub fn gdn_chunk_state_recurrence(
    layout: &ChunkLayout,
    k: &[f32],
    w: &[f32],
    u: &[f32],
    g_cum: &[f32],
    initial_state: Option<&[f32]>,
    chunk_states: &mut [f32],
    v_new: &mut [f32],
    final_state: &mut [f32],
) -> Result<()> {
    const OP: &str = "gdn_chunk_state_recurrence";
    let d = Dims::of(layout);
    let state_len = d.v * d.k;
    let num_sequences = layout.sequences().len();
    check_len(OP, "k", k.len(), d.tokens * d.key_heads * d.k)?;
    check_len(OP, "w", w.len(), d.tokens * d.heads * d.k)?;
    check_len(OP, "u", u.len(), d.tokens * d.heads * d.v)?;
    check_len(OP, "g_cum", g_cum.len(), d.tokens * d.heads)?;
    if let Some(init) = initial_state {
        check_len(
            OP,
            "initial_state",
            init.len(),
            num_sequences * d.heads * state_len,
        )?;
    }
    check_len(
        OP,
        "chunk_states",
        chunk_states.len(),
        layout.num_chunks() * d.heads * state_len,
    )?;
    check_len(OP, "v_new", v_new.len(), d.tokens * d.heads * d.v)?;
    check_len(
        OP,
        "final_state",
        final_state.len(),
        num_sequences * d.heads * state_len,
    )?;

    let jobs: Vec<(usize, usize)> = (0..num_sequences)
        .flat_map(|n| (0..d.heads).map(move |h| (n, h)))
        .collect();
    let results: Vec<HeadStates> = jobs
        .par_iter()
        .map(|&(n, h)| {
            let init = initial_state.map(|s| row(s, n * d.heads + h, state_len));
            let chunks = &layout.chunks()[layout.chunks_of_sequence(n)];
            recur_head(layout, &d, k, w, u, g_cum, init, chunks, h)
        })
        .collect();

    for (&(n, h), result) in jobs.iter().zip(&results) {
        for (local, c) in layout.chunks_of_sequence(n).enumerate() {
            let dst = (c * d.heads + h) * state_len;
            chunk_states[dst..dst + state_len].copy_from_slice(row(
                &result.chunk_states,
                local,
                state_len,
            ));
        }
        for (local, t) in layout.sequences()[n].clone().enumerate() {
            let dst = (t * d.heads + h) * d.v;
            v_new[dst..dst + d.v].copy_from_slice(row(&result.v_new, local, d.v));
        }
        let dst = (n * d.heads + h) * state_len;
        final_state[dst..dst + state_len].copy_from_slice(&result.final_state);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn recur_head(
    layout: &ChunkLayout,
    d: &Dims,
    k: &[f32],
    w: &[f32],
    u: &[f32],
    g_cum: &[f32],
    initial_state: Option<&[f32]>,
    chunks: &[Chunk],
    h: usize,
) -> HeadStates {
    let kh = layout.shape().key_head_of(h);
    let mut state = initial_state.map_or_else(|| vec![0.0f32; d.v * d.k], <[f32]>::to_vec);
    let mut chunk_states = Vec::with_capacity(chunks.len() * d.v * d.k);
    let tokens: usize = chunks.iter().map(|c| c.len).sum();
    let mut v_new = Vec::with_capacity(tokens * d.v);
    for chunk in chunks {
        chunk_states.extend_from_slice(&state);
        let first_new = v_new.len() / d.v;
        for t in chunk.start..chunk.start + chunk.len {
            let w_t = row(w, t * d.heads + h, d.k);
            let u_t = row(u, t * d.heads + h, d.v);
            for (state_row, &u_tv) in state.chunks_exact(d.k).zip(u_t) {
                v_new.push(u_tv - dot(state_row, w_t));
            }
        }
        let g_last = g_cum[(chunk.start + chunk.len - 1) * d.heads + h];
        let chunk_decay = g_last.exp();
        state.iter_mut().for_each(|s| *s *= chunk_decay);
        for i in 0..chunk.len {
            let t = chunk.start + i;
            let decay_to_end = (g_last - g_cum[t * d.heads + h]).exp();
            let k_t = row(k, t * d.key_heads + kh, d.k);
            let v_new_t = row(&v_new, first_new + i, d.v);
            for (state_row, &nv) in state.chunks_exact_mut(d.k).zip(v_new_t) {
                axpy(state_row, decay_to_end * nv, k_t);
            }
        }
    }
    HeadStates {
        chunk_states,
        v_new,
        final_state: state,
    }
}

/// Stage 6: `o[t] = scale · (e^{G_t} h_c q_t + Σ_{j≤t} exp(G_t − G_j) (q_t·k_j) v_new[j])`,
/// j over the token's chunk c.
#[allow(clippy::too_many_arguments)]
pub fn gdn_chunk_output(
    layout: &ChunkLayout,
    scale: f32,
    q: &[f32],
    k: &[f32],
    v_new: &[f32],
    chunk_states: &[f32],
    g_cum: &[f32],
    o: &mut [f32],
) -> Result<()> {
    const OP: &str = "gdn_chunk_output";
    let d = Dims::of(layout);
    let state_len = d.v * d.k;
    check_len(OP, "q", q.len(), d.tokens * d.key_heads * d.k)?;
    check_len(OP, "k", k.len(), d.tokens * d.key_heads * d.k)?;
    check_len(OP, "v_new", v_new.len(), d.tokens * d.heads * d.v)?;
    check_len(
        OP,
        "chunk_states",
        chunk_states.len(),
        layout.num_chunks() * d.heads * state_len,
    )?;
    check_len(OP, "g_cum", g_cum.len(), d.tokens * d.heads)?;
    check_len(OP, "o", o.len(), d.tokens * d.heads * d.v)?;
    if !scale.is_finite() {
        return Err(MlxError::invalid(
            OP,
            format!("scale must be finite, got {scale}"),
        ));
    }
    let shape = layout.shape();
    let pieces = layout.split_by_chunk(o, d.heads * d.v);
    pieces
        .into_par_iter()
        .zip(layout.chunks().par_iter())
        .enumerate()
        .for_each(|(c, (o_chunk, chunk))| {
            for i in 0..chunk.len {
                let t = chunk.start + i;
                for h in 0..d.heads {
                    let kh = shape.key_head_of(h);
                    let q_t = row(q, t * d.key_heads + kh, d.k);
                    let g_t = g_cum[t * d.heads + h];
                    let o_row = &mut o_chunk[(i * d.heads + h) * d.v..][..d.v];
                    // Inter-chunk part: the decayed chunk-start state read at q.
                    let state = row(chunk_states, c * d.heads + h, state_len);
                    let start_decay = g_t.exp();
                    for (o_v, state_row) in o_row.iter_mut().zip(state.chunks_exact(d.k)) {
                        *o_v = start_decay * dot(state_row, q_t);
                    }
                    // Intra-chunk part: causal attention over the new values.
                    for j in 0..=i {
                        let s = chunk.start + j;
                        let weight = (g_t - g_cum[s * d.heads + h]).exp()
                            * dot(q_t, row(k, s * d.key_heads + kh, d.k));
                        axpy(o_row, weight, row(v_new, s * d.heads + h, d.v));
                    }
                    o_row.iter_mut().for_each(|x| *x *= scale);
                }
            }
        });
    Ok(())
}
