//! `gated_delta_net_decode`: the token recurrence for a few tokens per
//! sequence, with the state updated in place (math in
//! [`reference`](super::reference)).
//!
//! The CUDA kernel gives each warp four state rows held in registers across
//! the tokens, so the state is read and written once per call: a memory
//! bound op. The CPU path is the f64 recurrence.

mod cpu;
pub(crate) mod cuda;

use super::params::{check_call, check_state_overlaps, GdnDecodeParams, GdnTensors};
use crate::{CommandEncoder, MlxBuffer, Result};

const OP: &str = "gated_delta_net_decode";

/// Advances each sequence's state over its tokens and writes their outputs.
///
/// q, k `[B, T, H_k, K]`, v and o `[B, T, H_v, V]` (BF16 or F32, the same),
/// g and beta F32 `[B, T, H_v]`, `state` F32 `[B, H_v, V, K]`, read and
/// overwritten. T is the number of new tokens per sequence (usually 1).
/// K, V ∈ {64, 128, 256}; H_v a multiple of H_k.
#[allow(clippy::too_many_arguments)]
pub fn gated_delta_net_decode(
    enc: &mut CommandEncoder,
    q: &MlxBuffer,
    k: &MlxBuffer,
    v: &MlxBuffer,
    g: &MlxBuffer,
    beta: &MlxBuffer,
    state: &MlxBuffer,
    o: &MlxBuffer,
    params: &GdnDecodeParams,
) -> Result<()> {
    let tensors = GdnTensors {
        q,
        k,
        v,
        g,
        beta,
        o,
    };
    let call = check_call(OP, enc, &tensors, &[("state", state)], params.scale, None)?;
    check_state_overlaps(OP, &tensors, &[state])?;
    enc.encode_op(
        OP,
        || cpu::decode(&call, params, &tensors, state),
        |enc| cuda::decode(enc, &call, params, &tensors, state),
    )
}
