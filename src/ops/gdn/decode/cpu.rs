//! The CPU decode: the f64 token recurrence.

use crate::ops::gdn::params::{GdnCall, GdnDecodeParams, GdnTensors};
use crate::ops::gdn::reference::{gdn_recurrent_f64, GdnConfig, GdnInputs, GdnOutputs};
use crate::ops::host::{read_f32, write_f32};
use crate::{MlxBuffer, Result};

pub(super) fn decode(
    call: &GdnCall,
    params: &GdnDecodeParams,
    t: &GdnTensors<'_>,
    state: &MlxBuffer,
) -> Result<()> {
    let (q, k, v) = (read_f32(t.q)?, read_f32(t.k)?, read_f32(t.v)?);
    let (g, beta) = (read_f32(t.g)?, read_f32(t.beta)?);
    let initial = read_f32(state)?;
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
        initial_state: Some(&initial),
        cu_seqlens: None,
    };
    let mut o = vec![0.0f32; t.o.element_count()];
    let mut updated = vec![0.0f32; initial.len()];
    gdn_recurrent_f64(
        &call.shape,
        &config,
        &inputs,
        GdnOutputs {
            o: &mut o,
            final_state: Some(&mut updated),
        },
    )?;
    write_f32(t.o, &o)?;
    write_f32(state, &updated)
}
