//! CPU reference math of Gated DeltaNet (Yang, Kautz, Hatamizadeh, "Gated
//! Delta Networks: Improving Mamba2 with Delta Rule", arXiv 2412.06464), as
//! pure functions over slices.
//!
//! # Recurrence
//!
//! Per sequence and value head `h` (reading key/query head
//! `h / (H_v / H_k)`), with state `S ∈ ℝ^{V×K}` and per token `t`:
//!
//! ```text
//! S ← exp(g_t) · S                     g_t ≤ 0, the log-decay
//! δ = β_t · (v_t − S k_t)              β_t ∈ (0, 1), the write strength
//! S ← S + δ k_tᵀ
//! o_t = scale · S q_t                  scale = 1/√K by default
//! ```
//!
//! q and k are optionally L2-normalised over K first:
//! `x / sqrt(Σ x² + 1e-6)` ([`GDN_L2_NORM_EPS`]).
//! [`gdn_recurrent_f64`] runs this literally in f64 and is the reference.
//!
//! # Chunked form
//!
//! [`gdn_chunked`] splits each sequence into chunks of `L ≤ C` tokens
//! (positions `i, j ∈ 0..L`; the last chunk may be short). With `H` the
//! state at the chunk start and `G_i = Σ_{m≤i} g_m` the cumulative
//! log-decay inside the chunk, unrolling the recurrence gives
//! `S_i = e^{G_i} H + Σ_{j≤i} e^{G_i−G_j} δ_j k_jᵀ`. Substituting the state
//! before token `i`, `e^{g_i} S_{i−1}`, into `δ_i = β_i (v_i − e^{g_i} S_{i−1} k_i)`:
//!
//! ```text
//! δ_i + Σ_{j<i} A_ij δ_j = β_i v_i − β_i e^{G_i} H k_i,   A_ij = β_i e^{G_i−G_j} k_i·k_j  (j < i)
//! ```
//!
//! so with `T = (I + A)⁻¹` (unit lower triangular) the deltas of the whole
//! chunk are, row-wise:
//!
//! ```text
//! W = T · diag(β e^G) K        (L×K)     U = T · diag(β) V    (L×V)
//! V_new = U − W Hᵀ             (row i is δ_i)
//! O  = scale · ( diag(e^G) Q Hᵀ + (M ∘ Q Kᵀ ∘ E) V_new ),  E_ij = e^{G_i−G_j},  M_ij = [j ≤ i]
//! H' = e^{G_{L−1}} H + V_newᵀ diag(e^{G_{L−1}−G_j}) K
//! ```
//!
//! Only `H → V_new → H'` is sequential across chunks; `A`, `T`, `W`, `U` are
//! chunk-local and the output needs only the chunk-start state. Every
//! exponent above is ≤ 0 (`g ≤ 0`), so nothing overflows; a strongly
//! decayed token makes `e^{G}` underflow to 0, which is the right limit.
//! The stages are separate public functions (`gdn_chunk_*`) so a GPU
//! implementation can be checked stage by stage; this is the structure of
//! FLA's `chunk_gated_delta_rule`.
//!
//! Accuracy of the f32 chunked form: `G_i − G_j` is a difference of sums
//! that can reach `|G| ≈ C · max|g|`, so the decay ratios carry an absolute
//! exponent error of a few ulp of `|G|`, and the triangular solve and the
//! state accumulate f32 rounding; see the tests for measured errors.
//!
//! # Around the recurrence
//!
//! [`gdn_gates`] computes g and β from the projections, [`ssm_conv`] /
//! [`ssm_conv_decode`] the short causal convolution in front of q/k/v, and
//! [`rms_norm_gated`] the gated output norm.

mod chunk_stages;
mod chunked;
mod conv;
mod gates;
mod layout;
mod norm;
mod recurrent;

pub use chunk_stages::{
    gdn_chunk_cumsum, gdn_chunk_output, gdn_chunk_scaled_kkt, gdn_chunk_solve_tril,
    gdn_chunk_state_recurrence, gdn_chunk_wy,
};
pub use chunked::{gdn_chunked, GDN_DEFAULT_CHUNK_SIZE};
pub use conv::{ssm_conv, ssm_conv_decode, SsmConvShape, SSM_CONV_DEFAULT_WIDTH};
pub use gates::{gdn_gates, sigmoid, softplus, SOFTPLUS_THRESHOLD};
pub(crate) use layout::sequence_ranges;
pub use layout::{Chunk, ChunkLayout, GdnConfig, GdnInputs, GdnOutputs, GdnShape, GDN_L2_NORM_EPS};
pub use norm::{l2_normalize_rows, rms_norm_gated};
pub use recurrent::gdn_recurrent_f64;
