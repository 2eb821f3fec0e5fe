//! The CPU backend: the reference math of `ops::gdn::reference`, applied
//! per sequence, with the buffers read as f32 and written back rounded to
//! their dtype.

use super::{GdnGatesParams, RmsNormGatedParams, SsmConvParams};
use crate::ops::gdn::reference::{self, SsmConvShape};
use crate::ops::host::{read_f32, write_f32};
use crate::{MlxBuffer, Result};

fn conv_shape(p: &SsmConvParams) -> SsmConvShape {
    SsmConvShape {
        channels: p.channels,
        kernel_width: p.kernel_width,
    }
}

pub(super) fn ssm_conv(
    x: &MlxBuffer,
    weight: &MlxBuffer,
    bias: Option<&MlxBuffer>,
    conv_state_in: Option<&MlxBuffer>,
    out: &MlxBuffer,
    conv_state_out: Option<&MlxBuffer>,
    p: &SsmConvParams,
) -> Result<()> {
    let shape = conv_shape(p);
    let xs = read_f32(x)?;
    let w = read_f32(weight)?;
    let b = bias.map(read_f32).transpose()?;
    let mut state = match conv_state_in {
        Some(s) => read_f32(s)?,
        None => vec![0.0; p.state_elements()],
    };
    let mut y = vec![0.0f32; xs.len()];
    let seq = p.seq_len * p.channels;
    let state_len = (p.kernel_width - 1) * p.channels;
    for ((x_b, y_b), s_b) in xs
        .chunks(seq)
        .zip(y.chunks_mut(seq))
        .zip(state.chunks_mut(state_len))
    {
        reference::ssm_conv(&shape, x_b, &w, b.as_deref(), s_b, y_b)?;
    }
    write_f32(out, &y)?;
    match conv_state_out {
        Some(s) => write_f32(s, &state),
        None => Ok(()),
    }
}

pub(super) fn ssm_conv_decode(
    x: &MlxBuffer,
    weight: &MlxBuffer,
    bias: Option<&MlxBuffer>,
    conv_state: &MlxBuffer,
    out: &MlxBuffer,
    p: &SsmConvParams,
) -> Result<()> {
    let shape = conv_shape(p);
    let xs = read_f32(x)?;
    let w = read_f32(weight)?;
    let b = bias.map(read_f32).transpose()?;
    let mut state = read_f32(conv_state)?;
    let mut y = vec![0.0f32; xs.len()];
    let state_len = (p.kernel_width - 1) * p.channels;
    for ((x_b, y_b), s_b) in xs
        .chunks(p.channels)
        .zip(y.chunks_mut(p.channels))
        .zip(state.chunks_mut(state_len))
    {
        reference::ssm_conv_decode(&shape, x_b, &w, b.as_deref(), s_b, y_b)?;
    }
    write_f32(out, &y)?;
    write_f32(conv_state, &state)
}

pub(super) fn gdn_gates(
    a: &MlxBuffer,
    b: &MlxBuffer,
    a_log: &MlxBuffer,
    dt_bias: &MlxBuffer,
    g_out: &MlxBuffer,
    beta_out: &MlxBuffer,
    p: &GdnGatesParams,
) -> Result<()> {
    let (av, bv) = (read_f32(a)?, read_f32(b)?);
    let mut g = vec![0.0f32; av.len()];
    let mut beta = vec![0.0f32; av.len()];
    reference::gdn_gates(
        p.num_value_heads,
        &read_f32(a_log)?,
        &read_f32(dt_bias)?,
        &av,
        &bv,
        &mut g,
        &mut beta,
    )?;
    write_f32(g_out, &g)?;
    write_f32(beta_out, &beta)
}

pub(super) fn rms_norm_gated(
    o: &MlxBuffer,
    z: &MlxBuffer,
    weight: &MlxBuffer,
    out: &MlxBuffer,
    p: &RmsNormGatedParams,
) -> Result<()> {
    let (ov, zv) = (read_f32(o)?, read_f32(z)?);
    let mut y = vec![0.0f32; ov.len()];
    reference::rms_norm_gated(&ov, &zv, &read_f32(weight)?, p.eps, &mut y)?;
    write_f32(out, &y)
}
