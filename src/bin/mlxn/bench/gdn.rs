//! `mlxn bench gdn`: the Gated DeltaNet prefill (both kernels, and the
//! sequential state kernel alone) and decode, BF16, K = V = 128.
//!
//! Prefill figures stand beside a memory floor: its unavoidable traffic
//! (q, k, v, g, β read once, o written once) at the in-run copy bandwidth.
//! Decode batch 64 is compared with the copy bandwidth over the state bytes
//! read and written. Targets and published figures are in the notes.

use half::bf16;
use mlx_native::ops::gdn::{
    gated_delta_net_decode, gated_delta_net_prefill, gated_delta_net_prefill_scratch_bytes,
    reference::GdnShape, GdnDecodeParams, GdnPrefillParams,
};
use mlx_native::{CommandEncoder, DType, GraphExecutor, MlxBuffer, MlxDevice, Result};

use super::data::uniform_values;
use super::limits::{copy_gbs, gb_per_s};
use super::{median, progress, time_ms, Row};

const K: usize = 128;
const V: usize = 128;

/// A buffer of `n` values cycling through a seeded pattern in [lo, hi).
fn pattern(
    device: &MlxDevice,
    n: usize,
    lo: f32,
    hi: f32,
    dtype: DType,
    seed: u64,
) -> Result<MlxBuffer> {
    let cycle = uniform_values(65_521, lo, hi, seed);
    let values = (0..n).map(|i| cycle[i % cycle.len()]);
    match dtype {
        DType::BF16 => {
            let v: Vec<bf16> = values.map(bf16::from_f32).collect();
            MlxBuffer::from_slice(device, &v, &[n])
        }
        _ => {
            let v: Vec<f32> = values.collect();
            MlxBuffer::from_slice(device, &v, &[n])
        }
    }
}

struct Prefill {
    shape: GdnShape,
    q: MlxBuffer,
    k: MlxBuffer,
    v: MlxBuffer,
    g: MlxBuffer,
    beta: MlxBuffer,
    o: MlxBuffer,
    state: MlxBuffer,
    scratch: MlxBuffer,
}

impl Prefill {
    fn new(device: &MlxDevice, t: usize, hk: usize, hv: usize) -> Result<Prefill> {
        let shape = GdnShape {
            batch: 1,
            seq_len: t,
            num_key_heads: hk,
            num_value_heads: hv,
            key_dim: K,
            value_dim: V,
        };
        let bf = DType::BF16;
        let scratch_bytes = gated_delta_net_prefill_scratch_bytes(&shape, bf, None)?;
        Ok(Prefill {
            q: pattern(device, t * hk * K, -1.0, 1.0, bf, 1)?.with_shape(&[1, t, hk, K])?,
            k: pattern(device, t * hk * K, -1.0, 1.0, bf, 2)?.with_shape(&[1, t, hk, K])?,
            v: pattern(device, t * hv * V, -1.0, 1.0, bf, 3)?.with_shape(&[1, t, hv, V])?,
            g: pattern(device, t * hv, -0.5, -0.01, DType::F32, 4)?,
            beta: pattern(device, t * hv, 0.05, 0.95, DType::F32, 5)?,
            o: MlxBuffer::zeros(device, bf, &[1, t, hv, V])?,
            state: MlxBuffer::zeros(device, DType::F32, &[1, hv, V, K])?,
            scratch: MlxBuffer::zeros(device, DType::U8, &[scratch_bytes])?,
            shape,
        })
    }

    fn run(&self, enc: &mut CommandEncoder) -> Result<()> {
        let params = GdnPrefillParams {
            l2_normalize_qk: true,
            scratch: Some(&self.scratch),
            ..GdnPrefillParams::default()
        };
        gated_delta_net_prefill(
            enc,
            &self.q,
            &self.k,
            &self.v,
            &self.g,
            &self.beta,
            None,
            &self.o,
            Some(&self.state),
            &params,
        )
    }

    /// Median milliseconds of the whole op and of its first and second kernel.
    fn time(&self, device: &MlxDevice, reps: usize) -> Result<(f64, f64, f64)> {
        let mut enc = device.command_encoder()?;
        let total = time_ms(&mut enc, 3, reps, |e, _| self.run(e))?;
        enc.enable_timing(true);
        for _ in 0..reps {
            self.run(&mut enc)?;
        }
        enc.commit_and_wait()?;
        let timings = enc.take_timings()?;
        let mut prep: Vec<f64> = timings.iter().step_by(2).map(|t| t.ms).collect();
        let mut state: Vec<f64> = timings.iter().skip(1).step_by(2).map(|t| t.ms).collect();
        Ok((total, median(&mut prep), median(&mut state)))
    }

    /// Bytes the op cannot avoid: q, k, v, g, β read, o written.
    fn floor_bytes(&self) -> f64 {
        let s = &self.shape;
        let t = s.num_tokens() as f64;
        let qk = 2.0 * t * (s.num_key_heads * K) as f64 * 2.0;
        let vo = 2.0 * t * (s.num_value_heads * V) as f64 * 2.0;
        qk + vo + 2.0 * t * s.num_value_heads as f64 * 4.0
    }

    /// FLOPs of the chunked algorithm (C = 64): per chunk and value head
    /// 2C²(3K + 2V) for K·Kᵀ, Q·Kᵀ, W, U, P·V_new and 6CKV for W·Hᵀ, Q·Hᵀ
    /// and the state update.
    fn flops(&self) -> f64 {
        let s = &self.shape;
        let c = 64.0;
        let chunks = (s.seq_len.div_ceil(64) * s.num_value_heads) as f64;
        chunks * (2.0 * c * c * (3 * K + 2 * V) as f64 + 6.0 * c * (K * V) as f64)
    }
}

pub fn rows(device: &MlxDevice, quick: bool) -> Result<Vec<Row>> {
    if !device.is_cuda() {
        progress("gdn: the CPU reference is not benchmarked at model sizes");
        return Ok(Vec::new());
    }
    let reps = if quick { 5 } else { 20 };
    let (copy, copy_name) = copy_gbs(device, 1 << 30, reps)?;
    let mut rows = vec![Row::new(format!("limit: {copy_name}, 1 GiB"), copy, "GB/s")];

    let lengths: &[(usize, f64, f64)] = if quick {
        &[(4096, 0.17, 0.25)]
    } else {
        &[(4096, 0.17, 0.25), (8192, 0.28, 0.47), (32768, 0.9, 1.89)]
    };
    for &(t, target, fla) in lengths {
        progress(&format!("gdn prefill T={t}"));
        let p = Prefill::new(device, t, 16, 32)?;
        let (total, prep, state) = p.time(device, reps)?;
        let floor = p.floor_bytes() / (copy * 1e9) * 1e3;
        rows.push(
            Row::new(format!("gdn prefill bf16 H16/32 K=V=128 T={t}"), total, "ms")
                .lower_is_better()
                .against("memory floor at copy bw", floor)
                .note(format!(
                    "prep {prep:.3} + state {state:.3} ms; {:.0} TFLOP/s; target <= {target} ms, FLA {fla} ms",
                    p.flops() / (total * 1e-3) / 1e12
                )),
        );
    }

    progress("gdn prefill state kernel, B=1 T=4096 H2/4");
    let p = Prefill::new(device, 4096, 2, 4)?;
    let (total, prep, state) = p.time(device, reps)?;
    let floor = p.floor_bytes() / (copy * 1e9) * 1e3;
    rows.push(
        Row::new("gdn prefill state kernel alone, T=4096 H2/4", state, "ms")
            .lower_is_better()
            .against("whole-op memory floor at copy bw", floor)
            .note(format!(
                "whole op {total:.3} ms, prep {prep:.3} ms; inputs fit in L2; Apple GPU bar 9.4 ms"
            )),
    );

    for (batch, target) in [
        (1usize, "target <= 3 us/step; llama.cpp 4.49 us"),
        (64, "target >= 0.8x copy"),
    ] {
        progress(&format!("gdn decode batch {batch}"));
        rows.extend(decode_rows(device, batch, reps, copy, copy_name, target)?);
    }
    Ok(rows)
}

fn decode_rows(
    device: &MlxDevice,
    batch: usize,
    reps: usize,
    copy: f64,
    copy_name: &str,
    target: &str,
) -> Result<Vec<Row>> {
    let (hk, hv) = (16, 32);
    let bf = DType::BF16;
    let state_bytes = batch * hv * V * K * 4;
    // Enough states that they are not L2-resident between steps (a model
    // reads a different layer's state each time).
    let copies = (256usize << 20).div_ceil(state_bytes).clamp(2, 64);
    let q = pattern(device, batch * hk * K, -1.0, 1.0, bf, 6)?.with_shape(&[batch, 1, hk, K])?;
    let k = pattern(device, batch * hk * K, -1.0, 1.0, bf, 7)?.with_shape(&[batch, 1, hk, K])?;
    let v = pattern(device, batch * hv * V, -1.0, 1.0, bf, 8)?.with_shape(&[batch, 1, hv, V])?;
    let g = pattern(device, batch * hv, -0.5, -0.01, DType::F32, 9)?;
    let beta = pattern(device, batch * hv, 0.05, 0.95, DType::F32, 10)?;
    let o = MlxBuffer::zeros(device, bf, &[batch, 1, hv, V])?;
    let states = (0..copies)
        .map(|i| {
            pattern(
                device,
                batch * hv * V * K,
                -0.1,
                0.1,
                DType::F32,
                11 + i as u64,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let params = GdnDecodeParams {
        l2_normalize_qk: true,
        ..GdnDecodeParams::default()
    };
    // Steps are queued back to back (as in a replayed graph) and timed per
    // dispatch with events, so host-side launch cost is not counted.
    let mut enc = device.command_encoder()?;
    let steps = reps.max(20) * 10;
    let step = |enc: &mut CommandEncoder, i: usize| {
        gated_delta_net_decode(enc, &q, &k, &v, &g, &beta, &states[i % copies], &o, &params)
    };
    for i in 0..3 {
        step(&mut enc, i)?;
    }
    enc.commit_and_wait()?;
    enc.enable_timing(true);
    let t0 = enc.timestamp()?;
    for i in 0..steps {
        step(&mut enc, i)?;
    }
    let t1 = enc.timestamp()?;
    let back_to_back = t0.elapsed_ms(&t1)? / steps as f64;
    let mut each: Vec<f64> = enc.take_timings()?.iter().map(|t| t.ms).collect();
    let ms = median(&mut each);
    let moved = 2.0 * state_bytes as f64;
    let name = format!("gdn decode bf16 H16/32 K=V=128 batch {batch}");
    if batch != 1 {
        return Ok(vec![Row::new(name, gb_per_s(moved, ms), "GB/s")
            .against(copy_name.to_string(), copy)
            .note(format!(
                "{:.1} us/step ({:.1} back to back); {target}",
                ms * 1e3,
                back_to_back * 1e3
            ))]);
    }
    // A decode step of a model is one graph replay: the steps recorded
    // once, each on its own state, and replayed without per-kernel launches.
    let recorded = copies.min(32);
    let owned = (q, k, v, g, beta, o, states[..recorded].to_vec());
    let mut genc = device.command_encoder_on_new_stream()?;
    let mut graph = GraphExecutor::capture(&mut genc, move |e| {
        let (q, k, v, g, beta, o, states) = &owned;
        states
            .iter()
            .try_for_each(|s| gated_delta_net_decode(e, q, k, v, g, beta, s, o, &params))
    })?;
    let early = genc.stats().early_launches;
    graph.replay(&mut genc)?;
    genc.commit_and_wait()?;
    let replays = reps.max(20);
    let t0 = genc.timestamp()?;
    for _ in 0..replays {
        graph.replay(&mut genc)?;
    }
    let t1 = genc.timestamp()?;
    let replayed_us = t0.elapsed_ms(&t1)? * 1e3 / (replays * recorded) as f64;
    let floor_us = moved / (copy * 1e9) * 1e6;
    Ok(vec![
        Row::new(name.clone(), ms * 1e3, "us")
            .lower_is_better()
            .against("state bytes at copy bw", floor_us)
            .note(format!(
                "{:.0} GB/s; {:.2} us/step queued back to back",
                gb_per_s(moved, ms),
                back_to_back * 1e3
            )),
        Row::new(
            format!("{name}, steps replayed as a graph"),
            replayed_us,
            "us",
        )
        .lower_is_better()
        .against("state bytes at copy bw", floor_us)
        .note(format!(
            "per step, {recorded} steps per replay, {early} launched to start early; {target}"
        )),
    ])
}
