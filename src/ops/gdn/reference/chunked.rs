//! The chunk-parallel Gated DeltaNet, composed from the stages in
//! [`chunk_stages`](super::chunk_stages) in the order a GPU runs them.

use std::borrow::Cow;

use super::chunk_stages::{
    gdn_chunk_cumsum, gdn_chunk_output, gdn_chunk_scaled_kkt, gdn_chunk_solve_tril,
    gdn_chunk_state_recurrence, gdn_chunk_wy,
};
use super::layout::{
    check_len, validate_call, ChunkLayout, GdnConfig, GdnInputs, GdnOutputs, GdnShape,
    GDN_L2_NORM_EPS,
};
use super::norm::l2_normalize_rows;
use crate::Result;

/// Chunk size of the GPU implementation (and FLA's `chunk_gated_delta_rule`).
pub const GDN_DEFAULT_CHUNK_SIZE: usize = 64;

/// Same result as [`gdn_recurrent_f64`](super::gdn_recurrent_f64), computed
/// chunk by chunk in f32. `chunk_states`, when given, receives the state at
/// the start of every chunk, `[num_chunks, H_v, V, K]` in
/// [`ChunkLayout`] order (`[batch, ceil(seq_len / chunk_size), H_v, V, K]`
/// for an unpacked batch).
pub fn gdn_chunked(
    shape: &GdnShape,
    config: &GdnConfig,
    inputs: &GdnInputs<'_>,
    chunk_size: usize,
    outputs: GdnOutputs<'_>,
    chunk_states: Option<&mut [f32]>,
) -> Result<()> {
    const OP: &str = "gdn_chunked";
    let sequences = validate_call(OP, shape, inputs, &outputs)?;
    let layout = ChunkLayout::new(shape, inputs.cu_seqlens, chunk_size)?;
    let heads = shape.num_value_heads;
    let state_len = shape.state_len();
    let chunk_states_len = layout.num_chunks() * heads * state_len;
    if let Some(states) = chunk_states.as_deref() {
        check_len(OP, "chunk_states", states.len(), chunk_states_len)?;
    }

    let (q, k) = if config.l2_normalize_qk {
        let mut q = vec![0.0; inputs.q.len()];
        let mut k = vec![0.0; inputs.k.len()];
        l2_normalize_rows(inputs.q, shape.key_dim, GDN_L2_NORM_EPS, &mut q)?;
        l2_normalize_rows(inputs.k, shape.key_dim, GDN_L2_NORM_EPS, &mut k)?;
        (Cow::Owned(q), Cow::Owned(k))
    } else {
        (Cow::Borrowed(inputs.q), Cow::Borrowed(inputs.k))
    };

    let tokens = shape.num_tokens();
    let mut g_cum = vec![0.0; tokens * heads];
    gdn_chunk_cumsum(&layout, inputs.g, &mut g_cum)?;

    let mut a = vec![0.0; tokens * heads * chunk_size];
    gdn_chunk_scaled_kkt(&layout, &k, inputs.beta, &g_cum, &mut a)?;
    let mut t_inv = vec![0.0; a.len()];
    gdn_chunk_solve_tril(&layout, &a, &mut t_inv)?;
    drop(a);

    let mut w = vec![0.0; tokens * heads * shape.key_dim];
    let mut u = vec![0.0; tokens * heads * shape.value_dim];
    gdn_chunk_wy(
        &layout,
        &t_inv,
        &k,
        inputs.v,
        inputs.beta,
        &g_cum,
        &mut w,
        &mut u,
    )?;
    drop(t_inv);

    let mut own_chunk_states = Vec::new();
    let chunk_states = match chunk_states {
        Some(states) => states,
        None => {
            own_chunk_states.resize(chunk_states_len, 0.0);
            &mut own_chunk_states[..]
        }
    };
    let GdnOutputs { o, final_state } = outputs;
    let mut own_final_state = Vec::new();
    let final_state = match final_state {
        Some(state) => state,
        None => {
            own_final_state.resize(sequences.len() * heads * state_len, 0.0);
            &mut own_final_state[..]
        }
    };
    let mut v_new = vec![0.0; u.len()];
    gdn_chunk_state_recurrence(
        &layout,
        &k,
        &w,
        &u,
        &g_cum,
        inputs.initial_state,
        chunk_states,
        &mut v_new,
        final_state,
    )?;
    gdn_chunk_output(
        &layout,
        config.scale,
        &q,
        &k,
        &v_new,
        chunk_states,
        &g_cum,
        o,
    )
}
