//! Benchmarks of the runtime core: bandwidth, dispatch cost, parallel
//! encoding and kernel-registry latency.

use std::time::Instant;

use mlx_native::ops::copy::copy;
use mlx_native::ops::fill::fill;
use mlx_native::ops::quantized_matmul::{quantized_matmul_ggml, GgmlQuantizedMatmulParams};
use mlx_native::{
    CommandEncoder, DType, EncoderWorker, GgmlType, GraphExecutor, KernelArg, KernelRegistry,
    LaunchConfig, MlxBuffer, MlxDevice, Result,
};

use super::limits::{copy_gbs, gb_per_s, read_only_us, register_bench_kernels};
use super::{progress, time_ms, wall_ms, Row};

/// Device copy bandwidth (read + write) through the driver's copy, our copy
/// kernel against it, and read-only bandwidth.
pub fn copy_bandwidth(device: &MlxDevice, quick: bool) -> Result<Vec<Row>> {
    let gib = 1usize << 30;
    let bytes = match (device.is_cuda(), quick) {
        (true, false) => 4 * gib,
        (true, true) => gib,
        (false, false) => gib / 4,
        (false, true) => gib / 16,
    };
    progress(&format!("copy bandwidth over {} MiB", bytes >> 20));
    let (limit, limit_name) = copy_gbs(device, bytes, if quick { 5 } else { 20 })?;
    let src = MlxBuffer::zeros(device, DType::U8, &[bytes])?;
    let dst = MlxBuffer::zeros(device, DType::U8, &[bytes])?;
    let mut enc = device.command_encoder()?;
    fill(&mut enc, &src, 90.0)?;
    let size = format!("{} MiB", bytes >> 20);
    let reps = if quick { 5 } else { 20 };
    let moved = 2.0 * bytes as f64;
    let ours_ms = time_ms(&mut enc, 2, reps, |e, _| copy(e, &src, &dst))?;
    let mut rows = vec![
        Row::new(format!("limit: {limit_name}, {size}"), limit, "GB/s"),
        Row::new(
            format!("copy kernel (read+write), {size}"),
            gb_per_s(moved, ours_ms),
            "GB/s",
        )
        .against(limit_name, limit),
    ];
    let read_gbs = if device.is_cuda() {
        let us = read_only_us(device, std::slice::from_ref(&src), 1, reps)?;
        gb_per_s(bytes as f64, us * 1e-3)
    } else {
        let ms = wall_ms(reps, || {
            let s = src.as_slice::<u8>()?;
            let words: &[u64] = bytemuck::cast_slice(&s);
            std::hint::black_box(words.iter().fold(0u64, |a, &w| a ^ w));
            Ok(())
        })?;
        gb_per_s(bytes as f64, ms)
    };
    rows.push(
        Row::new(
            format!("limit: read-only bandwidth, {size}"),
            read_gbs,
            "GB/s",
        )
        .against(limit_name, limit),
    );
    Ok(rows)
}

/// Host time to encode and launch one small kernel with five arguments.
pub fn launch_overhead(device: &MlxDevice, quick: bool) -> Result<Vec<Row>> {
    let n = if quick { 2_000 } else { 20_000 };
    progress(&format!("dispatch overhead over {n} dispatches"));
    let target_us = 3.0;
    let mut enc = device.command_encoder()?;
    if !device.is_cuda() {
        let b = MlxBuffer::zeros(device, DType::F32, &[16])?;
        let ms = wall_ms(1, || (0..n).try_for_each(|_| fill(&mut enc, &b, 1.0)))?;
        return Ok(vec![Row::new(
            "CPU op `fill` of 16 elements, per call",
            ms * 1e3 / n as f64,
            "us",
        )
        .lower_is_better()
        .against("target", target_us)]);
    }
    register_bench_kernels(device)?;
    let pipeline = device.registry().get_pipeline("bench_tiny5")?;
    let a = MlxBuffer::zeros(device, DType::F32, &[32])?;
    let b = MlxBuffer::zeros(device, DType::F32, &[32])?;
    let c = MlxBuffer::zeros(device, DType::F32, &[32])?;
    let (len, x) = (32u64, 1.5f32);
    let args = [
        KernelArg::Buffer(&a),
        KernelArg::Buffer(&b),
        KernelArg::Buffer(&c),
        KernelArg::pod(&len),
        KernelArg::pod(&x),
    ];
    let cfg = LaunchConfig::linear(1, 32);
    for _ in 0..200 {
        enc.dispatch(&pipeline, cfg, &args)?;
    }
    enc.commit_and_wait()?;
    // Batches well inside the driver's launch queue, so the time is the
    // host's encoding cost and not back-pressure from a full queue; the
    // drain row shows the GPU's own rate for back-to-back tiny kernels.
    let batch = 256;
    let mut per_dispatch = Vec::new();
    let mut per_named = Vec::new();
    let mut per_small = Vec::new();
    for _ in 0..n / batch {
        let t = Instant::now();
        for _ in 0..16 {
            enc.dispatch(&pipeline, cfg, &args)?;
        }
        per_small.push(t.elapsed().as_secs_f64() * 1e6 / 16.0);
        enc.commit_and_wait()?;
        let t = Instant::now();
        for _ in 0..batch {
            enc.dispatch(&pipeline, cfg, &args)?;
        }
        per_dispatch.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
        enc.commit_and_wait()?;
        let t = Instant::now();
        for _ in 0..batch {
            enc.dispatch_kernel("bench_tiny5", cfg, &args)?;
        }
        per_named.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
        enc.commit_and_wait()?;
    }
    let mut per_raw = Vec::new();
    for _ in 0..n / batch {
        let t = Instant::now();
        for _ in 0..batch {
            enc.dispatch_raw_for_benchmark(&pipeline, cfg, &args)?;
        }
        per_raw.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
        enc.commit_and_wait()?;
    }
    let t = Instant::now();
    for _ in 0..n {
        enc.dispatch(&pipeline, cfg, &args)?;
    }
    enc.commit_and_wait()?;
    let mut drained = vec![t.elapsed().as_secs_f64() * 1e6 / n as f64];

    // The same kernels recorded once as a graph and replayed: one launch
    // call for the whole batch.
    let (pipe, ga, gb, gc) = (pipeline.clone(), a.clone(), b.clone(), c.clone());
    let mut graph_enc = device.command_encoder_on_new_stream()?;
    let mut graph = GraphExecutor::capture(&mut graph_enc, move |e| {
        let args = [
            KernelArg::Buffer(&ga),
            KernelArg::Buffer(&gb),
            KernelArg::Buffer(&gc),
            KernelArg::pod(&len),
            KernelArg::pod(&x),
        ];
        (0..batch).try_for_each(|_| e.dispatch(&pipe, cfg, &args))
    })?;
    graph.replay(&mut graph_enc)?;
    graph_enc.commit_and_wait()?;
    let mut per_replayed = Vec::new();
    for _ in 0..n / batch {
        let t = Instant::now();
        graph.replay(&mut graph_enc)?;
        per_replayed.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
        graph_enc.commit_and_wait()?;
    }
    let t = Instant::now();
    for _ in 0..n / batch {
        graph.replay(&mut graph_enc)?;
    }
    graph_enc.commit_and_wait()?;
    let mut graph_drained = vec![t.elapsed().as_secs_f64() * 1e6 / (n / batch * batch) as f64];
    Ok(vec![
        Row::new(
            format!("dispatch, 5 args, host time per launch ({batch}/batch)"),
            super::median(&mut per_dispatch),
            "us",
        )
        .lower_is_better()
        .against("target (issue)", target_us),
        Row::new(
            "dispatch, 5 args, host time per launch (16/batch)",
            super::median(&mut per_small),
            "us",
        )
        .lower_is_better()
        .against("target (issue)", target_us),
        Row::new(
            "raw cuLaunchKernel, same kernel and args (256/batch)",
            super::median(&mut per_raw),
            "us",
        )
        .note("the driver's own cost: the floor under dispatch"),
        Row::new(
            "dispatch_kernel by name, host time per launch",
            super::median(&mut per_named),
            "us",
        )
        .lower_is_better()
        .against("target (issue)", target_us),
        Row::new(
            format!("{n} tiny kernels back to back, per kernel"),
            super::median(&mut drained),
            "us",
        )
        .note("host and GPU together"),
        Row::new(
            format!("GraphExecutor replay of {batch} kernels, host time per kernel"),
            super::median(&mut per_replayed),
            "us",
        )
        .lower_is_better()
        .against("target (issue)", target_us),
        Row::new(
            format!("{n} tiny kernels as graph replays, per kernel"),
            super::median(&mut graph_drained),
            "us",
        )
        .lower_is_better()
        .against(
            "same kernels launched one by one",
            super::median(&mut drained),
        )
        .note("host and GPU together; ratio = one by one / replayed"),
    ])
}

/// 60 independent Q6_K mat-vecs (m = 1, n = k = 2816) encoded on one
/// thread, versus split between the main thread and an `EncoderWorker` on
/// two streams.
pub fn encode_serial_vs_worker(device: &MlxDevice, quick: bool) -> Result<Vec<Row>> {
    let kernels = 60;
    let side = if device.is_cuda() { 2816 } else { 256 };
    let ty = GgmlType::Q6_K;
    progress(&format!(
        "encoding {kernels} independent Q6_K mat-vecs (n = k = {side}), serial vs worker"
    ));
    let p = GgmlQuantizedMatmulParams {
        m: 1,
        n: side,
        k: side,
        ggml_type: ty,
    };
    let row_bytes = ty.row_bytes(side as u64)?;
    // Zero bytes are valid Q6_K blocks (all scales 0): the time does not
    // depend on the values.
    let products: Vec<[MlxBuffer; 3]> = (0..kernels)
        .map(|_| {
            Ok([
                MlxBuffer::zeros(device, DType::F32, &[1, side])?,
                MlxBuffer::zeros(device, DType::U8, &[side, row_bytes])?,
                MlxBuffer::zeros(device, DType::F32, &[1, side])?,
            ])
        })
        .collect::<Result<_>>()?;
    let mut enc = device.command_encoder()?;
    for [x, _, _] in &products {
        fill(&mut enc, x, 1.0)?;
    }
    enc.commit_and_wait()?;
    let run = move |e: &mut CommandEncoder, [x, w, out]: &[MlxBuffer; 3]| {
        quantized_matmul_ggml(e, x, w, out, &p)
    };
    let reps = if quick { 5 } else { 30 };
    let serial = wall_ms(reps, || {
        for prod in &products {
            run(&mut enc, prod)?;
        }
        enc.commit_and_wait()
    })?;
    let worker = EncoderWorker::spawn(device)?;
    let half = kernels / 2;
    let split = wall_ms(reps, || {
        let theirs: Vec<[MlxBuffer; 3]> = products[half..].to_vec();
        worker.submit(move |e| theirs.iter().try_for_each(|prod| run(e, prod)))?;
        for prod in &products[..half] {
            run(&mut enc, prod)?;
        }
        let done = worker.flush()?;
        enc.wait_event(&done)?;
        enc.commit_and_wait()
    })?;
    worker.wait()?;
    Ok(vec![
        Row::new(
            format!("{kernels} Q6_K mat-vecs encoded serially (wall)"),
            serial,
            "ms",
        )
        .lower_is_better(),
        Row::new(
            format!("{kernels} Q6_K mat-vecs, main + EncoderWorker (wall)"),
            split,
            "ms",
        )
        .lower_is_better()
        .against("serial, same run", serial)
        .note("ratio = serial / split"),
    ])
}

/// Cold compile, disk-cache load and warm lookup of a kernel.
pub fn registry_times(device: &MlxDevice) -> Result<Vec<Row>> {
    progress("kernel registry: cold compile, disk cache, warm lookup");
    let dir = std::env::temp_dir().join(format!("mlxn-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let name = "copy_contiguous_v16";
    let cold = KernelRegistry::new(device, Some(dir.clone()))?;
    let t = Instant::now();
    cold.get_pipeline(name)?;
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    let disk = KernelRegistry::new(device, Some(dir.clone()))?;
    let t = Instant::now();
    disk.get_pipeline(name)?;
    let disk_ms = t.elapsed().as_secs_f64() * 1e3;
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(disk.get_pipeline(name)?);
    }
    let warm_ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(vec![
        Row::new("get_pipeline, cold (NVRTC compile)", cold_ms, "ms").lower_is_better(),
        Row::new("get_pipeline, disk cache", disk_ms, "ms")
            .lower_is_better()
            .against("cold compile", cold_ms),
        Row::new("get_pipeline, warm (in memory)", warm_ns, "ns")
            .lower_is_better()
            .against("cold compile (ns)", cold_ms * 1e6),
    ])
}
