//! The Gated DeltaNet layer ops around the recurrence (`ops::gdn_layer`),
//! each against the copy bandwidth measured in the same run over the bytes
//! it must read and write. Qwen3.5 shapes: conv over 8192 channels (q, k,
//! v of 16 key / 32 value heads of dim 128), width 4; 32 value heads of
//! dim 128; 4096 tokens. Inputs rotate among enough sets that the working
//! set exceeds the L2.

use mlx_native::ops::fill::fill;
use mlx_native::ops::gdn_layer::{
    gdn_gates, rms_norm_gated, ssm_conv, ssm_conv_decode, GdnGatesParams, RmsNormGatedParams,
    SsmConvParams,
};
use mlx_native::{CommandEncoder, DType, MlxBuffer, MlxDevice, Result};

use super::limits::{copy_gbs, gb_per_s};
use super::{progress, time_ms, Row};

/// Bytes the inputs of one call set should exceed together (the L2 is 50
/// to 60 MB on an H100/H200).
const ROTATE_BYTES: usize = 256 << 20;

/// Calls per timed repetition, back to back: the GPU time of one call then
/// excludes the host's gap between the timing event and the first launch.
const CALLS: usize = 10;

/// Median GPU milliseconds of one call of `f`, which gets the index of the
/// call (to rotate its inputs).
fn time_call(
    enc: &mut CommandEncoder,
    reps: usize,
    mut f: impl FnMut(&mut CommandEncoder, usize) -> Result<()>,
) -> Result<f64> {
    let ms = time_ms(enc, 1, reps, |e, i| {
        (0..CALLS).try_for_each(|r| f(e, i * CALLS + r))
    })?;
    Ok(ms / CALLS as f64)
}

/// How many input sets of `bytes` each make the working set exceed the L2.
fn sets_for(bytes: usize) -> usize {
    ROTATE_BYTES.div_ceil(bytes).clamp(2, 256)
}

/// A buffer of `n` elements filled with `value` (non-zero, finite data).
fn filled(device: &MlxDevice, dtype: DType, n: usize, value: f64) -> Result<MlxBuffer> {
    let b = MlxBuffer::zeros(device, dtype, &[n])?;
    let mut enc = device.command_encoder()?;
    fill(&mut enc, &b, value)?;
    enc.commit_and_wait()?;
    Ok(b)
}

pub fn rows(device: &MlxDevice, quick: bool) -> Result<Vec<Row>> {
    let cuda = device.is_cuda();
    let tokens = if cuda { 4096 } else { 256 };
    let reps = match (cuda, quick) {
        (true, false) => 30,
        (true, true) => 5,
        (false, _) => 3,
    };
    let copy_bytes = if cuda { 1 << 30 } else { 1 << 26 };
    progress("gdn layer ops: copy bandwidth limit");
    let (limit, limit_name) = copy_gbs(device, copy_bytes, 20)?;
    let mut rows = vec![Row::new(format!("limit: {limit_name}"), limit, "GB/s")];
    let mut enc = device.command_encoder()?;
    let gbs_row = |name: String, bytes: usize, ms: f64| {
        Row::new(name, gb_per_s(bytes as f64, ms), "GB/s")
            .against(limit_name, limit)
            .note(format!(
                "{:.1} us per call ({CALLS} back to back), {:.1} MB moved",
                ms * 1e3,
                bytes as f64 / 1e6
            ))
    };

    // ssm_conv prefill: read x, write out (plus weights and the small states).
    let channels = 8192;
    let width = 4;
    let p = SsmConvParams::new(1, tokens, channels);
    let weight = filled(device, DType::F32, channels * width, 0.25)?;
    for dtype in [DType::BF16, DType::F32] {
        progress(&format!("ssm_conv {tokens}×{channels} {dtype}"));
        let n = tokens * channels;
        let state_n = (width - 1) * channels;
        let io = n * dtype.size_of();
        let sets = sets_for(io);
        let xs = (0..sets)
            .map(|i| filled(device, dtype, n, 0.5 + i as f64 * 0.01))
            .collect::<Result<Vec<_>>>()?;
        let outs = (0..sets)
            .map(|_| MlxBuffer::zeros(device, dtype, &[n]))
            .collect::<Result<Vec<_>>>()?;
        let state = filled(device, dtype, state_n, 0.1)?;
        let ms = time_call(&mut enc, reps, |e, i| {
            let k = i % sets;
            ssm_conv(
                e,
                &xs[k],
                &weight,
                None,
                Some(&state),
                &outs[k],
                Some(&state),
                &p,
            )
        })?;
        let bytes = 2 * io + channels * width * 4 + 2 * state_n * dtype.size_of();
        rows.push(gbs_row(
            format!("ssm_conv {tokens}×{channels} {dtype} W={width}"),
            bytes,
            ms,
        ));
    }

    // ssm_conv decode, BF16: read the state, x and the weights; write the
    // state and out.
    for batch in [1, 64] {
        progress(&format!("ssm_conv_decode batch {batch}"));
        let dtype = DType::BF16;
        let pd = SsmConvParams::new(batch, 1, channels);
        let state_n = batch * (width - 1) * channels;
        let per_set = (2 * state_n + 2 * batch * channels) * 2;
        let sets = sets_for(per_set);
        let states = (0..sets)
            .map(|_| filled(device, dtype, state_n, 0.1))
            .collect::<Result<Vec<_>>>()?;
        let xs = (0..sets)
            .map(|_| filled(device, dtype, batch * channels, 0.3))
            .collect::<Result<Vec<_>>>()?;
        let out = MlxBuffer::zeros(device, dtype, &[batch * channels])?;
        let ms = time_call(&mut enc, reps, |e, i| {
            let k = i % sets;
            ssm_conv_decode(e, &xs[k], &weight, None, &states[k], &out, &pd)
        })?;
        rows.push(gbs_row(
            format!("ssm_conv_decode batch {batch}×{channels} bf16"),
            per_set + channels * width * 4,
            ms,
        ));
    }

    // gdn_gates: read a, b (BF16); write g, β (F32).
    let heads = 32;
    let a_log = filled(device, DType::F32, heads, -0.5)?;
    let dt_bias = filled(device, DType::F32, heads, 1.0)?;
    let big_tokens = if cuda { 65536 * 4 } else { 1024 };
    for rows_n in [tokens, big_tokens] {
        progress(&format!("gdn_gates {rows_n}×{heads}"));
        let n = rows_n * heads;
        let bytes = n * (2 + 2 + 4 + 4);
        let sets = sets_for(bytes);
        let ins = (0..sets)
            .map(|_| filled(device, DType::BF16, 2 * n, 0.7))
            .collect::<Result<Vec<_>>>()?;
        let g = MlxBuffer::zeros(device, DType::F32, &[n])?;
        let beta = MlxBuffer::zeros(device, DType::F32, &[n])?;
        let pg = GdnGatesParams {
            rows: rows_n,
            num_value_heads: heads,
        };
        let views = ins
            .iter()
            .map(|b| Ok((b.slice_view(0, n)?, b.slice_view(2 * n, n)?)))
            .collect::<Result<Vec<_>>>()?;
        let ms = time_call(&mut enc, reps, |e, i| {
            let (a, b) = &views[i % sets];
            gdn_gates(e, a, b, &a_log, &dt_bias, &g, &beta, &pg)
        })?;
        rows.push(gbs_row(
            format!("gdn_gates {rows_n}×{heads} bf16 → f32"),
            bytes,
            ms,
        ));
    }

    // rms_norm_gated: read o, z; write out (BF16), D = 128.
    let dim = 128;
    let weight_norm = filled(device, DType::F32, dim, 1.1)?;
    progress(&format!("rms_norm_gated {tokens}×{heads}×{dim}"));
    let n = tokens * heads * dim;
    let bytes = 3 * n * 2;
    let sets = sets_for(2 * n * 2);
    let os = (0..sets)
        .map(|_| filled(device, DType::BF16, n, 0.4))
        .collect::<Result<Vec<_>>>()?;
    let zs = (0..sets)
        .map(|_| filled(device, DType::BF16, n, 0.9))
        .collect::<Result<Vec<_>>>()?;
    let outs = (0..sets)
        .map(|_| MlxBuffer::zeros(device, DType::BF16, &[n]))
        .collect::<Result<Vec<_>>>()?;
    let pn = RmsNormGatedParams { eps: 1e-6 };
    let ms = time_call(&mut enc, reps, |e, i| {
        let k = i % sets;
        rms_norm_gated(e, &os[k], &zs[k], &weight_norm, &outs[k], &pn)
    })?;
    rows.push(gbs_row(
        format!("rms_norm_gated {tokens}×{heads}×{dim} bf16"),
        bytes + dim * 4,
        ms,
    ));
    Ok(rows)
}
