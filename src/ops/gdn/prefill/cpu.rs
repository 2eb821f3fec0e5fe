//! The CPU prefill: the f32 chunked reference, chunk size 64.

use super::cuda::PrefillIo;
use crate::ops::gdn::params::{GdnCall, GdnPrefillParams, GDN_CHUNK};
use crate::ops::gdn::reference::{gdn_chunked, GdnConfig, GdnInputs, GdnOutputs};
use crate::ops::host::{read_f32, write_f32};
use crate::Result;

pub(super) fn prefill(
    call: &GdnCall,
    params: &GdnPrefillParams<'_>,
    io: &PrefillIo<'_>,
) -> Result<()> {
    let (q, k, v) = (read_f32(io.q)?, read_f32(io.k)?, read_f32(io.v)?);
    let (g, beta) = (read_f32(io.g)?, read_f32(io.beta)?);
    let initial_state = io.initial_state.map(read_f32).transpose()?;
    let config = GdnConfig {
        scale: call.scale,
        l2_normalize_qk: params.l2_normalize_qk,
    };
    let inputs = GdnInputs {
        q: &q,
        k: &k,
        v: &v,
        g: &g,
        beta: &beta,
        initial_state: initial_state.as_deref(),
        cu_seqlens: params.cu_seqlens,
    };
    let mut o = vec![0.0f32; io.o.element_count()];
    let mut final_state = io.final_state.map(|_| vec![0.0f32; call.state_elements()]);
    let mut chunk_states = io.chunk_states.map(|b| vec![0.0f32; b.element_count()]);
    gdn_chunked(
        &call.shape,
        &config,
        &inputs,
        GDN_CHUNK,
        GdnOutputs {
            o: &mut o,
            final_state: final_state.as_deref_mut(),
        },
        chunk_states.as_deref_mut(),
    )?;
    write_f32(io.o, &o)?;
    if let (Some(buffer), Some(values)) = (io.final_state, &final_state) {
        write_f32(buffer, values)?;
    }
    if let (Some(buffer), Some(values)) = (io.chunk_states, &chunk_states) {
        write_f32(buffer, values)?;
    }
    Ok(())
}
