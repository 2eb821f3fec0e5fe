//! `mlxn bench qmatmul`: `quantized_matmul_ggml` with GGML weights.
//!
//! The decode rows (m ≤ 8) are bound by the weight stream. The m = 1 rows
//! run the vector path; over ≥ 64 MiB weights they are printed beside the
//! device copy bandwidth measured in the same run; the m = 1 rows at the
//! Llama-3-8B FFN shape beside llama.cpp's published H200 time / 1.5 (the
//! target), with the in-run floor (weight bytes / copy bandwidth) in the
//! note, and the decode path's m = 1 time beside them for comparison. Both
//! m = 1 rows also note the time a read-only kernel takes to stream the
//! same weights, launched the same way: the most any product could do at
//! that size, launch and ramp included;
//! m = 2 … 8 (decode path) beside 1.3 × the m = 1 time of the same run; m = 512 beside a cuBLAS
//! bf16 GEMM of the same shape timed in the same run. Each timed repetition
//! launches a batch of products back to back over rotating weights whose
//! total exceeds the L2, so launch gaps are those of a queued stream and no
//! weight is served from the cache.

use mlx_native::ops::quantized_matmul::{
    quantized_matmul_ggml_via, GgmlQuantizedMatmulParams, QuantizedMatmulPath,
};
use mlx_native::{DType, GgmlType, MlxBuffer, MlxDevice, Result};

use super::data::ggml_bytes;
use super::limits::{copy_gbs, gb_per_s, gemm_bf16_tflops, read_only_us};
use super::{progress, time_ms, Row};

/// The targeted types and llama.cpp's m = 1 time (µs) for n = 4096,
/// k = 14336 on an H200 (mmvq; weights not in L2).
const TYPES: [(GgmlType, f64); 5] = [
    (GgmlType::Q4_0, 14.4),
    (GgmlType::Q8_0, 23.3),
    (GgmlType::Q4_K, 16.4),
    (GgmlType::Q5_K, 19.0),
    (GgmlType::Q6_K, 28.7),
];

/// llama.cpp's m = 8 time (µs) at the same shape, where known.
fn llama_m8_us(ty: GgmlType) -> Option<f64> {
    match ty {
        GgmlType::Q4_0 => Some(33.1),
        GgmlType::Q4_K => Some(67.3),
        GgmlType::Q6_K => Some(62.6),
        _ => None,
    }
}

/// Enough copies of a weight that cycling through them reads past a
/// 50 MB L2 several times over.
const ROTATE_BYTES: usize = 400 << 20;
/// Products launched back to back per timed repetition.
const BATCH: usize = 20;

/// Median µs of one product over `weights` (rotated), `m` rows of F32.
fn time_product_us(
    device: &MlxDevice,
    weights: &[MlxBuffer],
    p: &GgmlQuantizedMatmulParams,
    path: QuantizedMatmulPath,
    reps: usize,
) -> Result<f64> {
    let x: Vec<f32> = (0..p.m * p.k)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let input = MlxBuffer::from_slice(device, &x, &[p.m, p.k])?;
    let output = MlxBuffer::zeros(device, DType::F32, &[p.m, p.n])?;
    let mut enc = device.command_encoder()?;
    let mut next = 0;
    let ms = time_ms(&mut enc, 2, reps, |e, _| {
        for _ in 0..BATCH {
            let w = &weights[next % weights.len()];
            next += 1;
            quantized_matmul_ggml_via(e, &input, w, &output, p, path)?;
        }
        Ok(())
    })?;
    Ok(ms * 1e3 / BATCH as f64)
}

fn upload(device: &MlxDevice, bytes: &[u8], copies: usize) -> Result<Vec<MlxBuffer>> {
    (0..copies)
        .map(|_| MlxBuffer::from_bytes(device, bytes, DType::U8, &[bytes.len()]))
        .collect()
}

pub fn qmatmul(device: &MlxDevice, quick: bool) -> Result<Vec<Row>> {
    if !device.is_cuda() {
        progress("qmatmul: the decode figures need a CUDA GPU; skipped");
        return Ok(Vec::new());
    }
    let reps = if quick { 5 } else { 20 };
    let (copy, copy_name) = copy_gbs(device, 1 << 30, reps)?;
    let mut rows = vec![Row::new(format!("limit: {copy_name}, 1 GiB"), copy, "GB/s")];
    let (n, k) = (4096, 14336);
    progress(&format!("cuBLAS bf16 GEMM m=512 n={n} k={k}"));
    let gemm = gemm_bf16_tflops(device, 512, n, k, reps)?;
    rows.push(Row::new(
        format!("limit: cuBLAS bf16 GEMM m=512 n={n} k={k}"),
        gemm,
        "TFLOP/s",
    ));
    for (t, (ty, llama_us)) in TYPES.into_iter().enumerate() {
        let name = ty.name();
        // Bandwidth: m = 1 over a weight of ≥ 64 MiB.
        let (bn, bk) = (16384, 8192);
        let big = GgmlQuantizedMatmulParams {
            m: 1,
            n: bn,
            k: bk,
            ggml_type: ty,
        };
        let big_bytes = bn * ty.row_bytes(bk as u64)?;
        progress(&format!(
            "qmatmul {name}: m=1 n={bn} k={bk} ({} MiB)",
            big_bytes >> 20
        ));
        let weights = upload(
            device,
            &ggml_bytes(big_bytes, 11 + t as u64),
            ROTATE_BYTES.div_ceil(big_bytes).max(2),
        )?;
        let us = time_product_us(device, &weights, &big, QuantizedMatmulPath::Vector, reps)?;
        let read_us = read_only_us(device, &weights, BATCH, reps)?;
        drop(weights);
        rows.push(
            Row::new(
                format!("{name} m=1 n={bn} k={bk}: weight GB/s"),
                gb_per_s(big_bytes as f64, us * 1e-3),
                "GB/s",
            )
            .against(copy_name, copy)
            .note(format!(
                "{us:.1} us; target ratio >= 0.90; {}",
                read_note(read_us, us)
            )),
        );

        // The Llama-3-8B FFN shape, m = 1 … 8.
        let bytes = n * ty.row_bytes(k as u64)?;
        let floor_us = bytes as f64 / (copy * 1e9) * 1e6;
        progress(&format!(
            "qmatmul {name}: n={n} k={k} ({} MiB), m=1..8",
            bytes >> 20
        ));
        let weights = upload(
            device,
            &ggml_bytes(bytes, 101 + t as u64),
            ROTATE_BYTES.div_ceil(bytes).max(2),
        )?;
        let m1 = GgmlQuantizedMatmulParams {
            m: 1,
            n,
            k,
            ggml_type: ty,
        };
        let decode_us = time_product_us(device, &weights, &m1, QuantizedMatmulPath::Decode, reps)?;
        let read_us = read_only_us(device, &weights, BATCH, reps)?;
        rows.push(
            Row::new(
                format!("{name} m=1 n={n} k={k} (decode path)"),
                decode_us,
                "us",
            )
            .lower_is_better()
            .note(format!(
                "floor {floor_us:.1} us ({:.2}x)",
                floor_us / decode_us
            )),
        );
        let mut m1_us = f64::NAN;
        for m in 1..=8 {
            let p = GgmlQuantizedMatmulParams {
                m,
                n,
                k,
                ggml_type: ty,
            };
            let path = if m == 1 {
                QuantizedMatmulPath::Vector
            } else {
                QuantizedMatmulPath::Decode
            };
            let us = time_product_us(device, &weights, &p, path, reps)?;
            let row = Row::new(format!("{name} m={m} n={n} k={k}"), us, "us").lower_is_better();
            rows.push(if m == 1 {
                m1_us = us;
                row.against("llama.cpp / 1.5", llama_us / 1.5).note(format!(
                    "llama.cpp {llama_us} us; floor {floor_us:.1} us at copy GB/s ({:.2}x); {}",
                    floor_us / us,
                    read_note(read_us, us)
                ))
            } else {
                let llama = match (m, llama_m8_us(ty)) {
                    (8, Some(l)) => format!("; llama.cpp {l} us"),
                    _ => String::new(),
                };
                row.against("1.3 x m=1, same run", 1.3 * m1_us)
                    .note(format!("{:.2}x m=1{llama}", us / m1_us))
            });
        }
        rows.push(prefill_row(device, &weights, ty, (n, k), reps, gemm)?);
    }
    Ok(rows)
}

/// The read-only kernel's time over the same weights, and the product's
/// ratio to it.
fn read_note(read_us: f64, us: f64) -> String {
    format!("read-only kernel {read_us:.1} us ({:.2}x)", read_us / us)
}

/// m = 512 through the Auto path (the tensor-core kernels, F32 I/O), in
/// TFLOP/s beside the cuBLAS bf16 GEMM of the same shape from this run.
fn prefill_row(
    device: &MlxDevice,
    weights: &[MlxBuffer],
    ty: GgmlType,
    (n, k): (usize, usize),
    reps: usize,
    gemm_limit: f64,
) -> Result<Row> {
    let m = 512;
    let p = GgmlQuantizedMatmulParams {
        m,
        n,
        k,
        ggml_type: ty,
    };
    let us = time_product_us(device, weights, &p, QuantizedMatmulPath::Auto, reps)?;
    let tflops = 2.0 * (m * n * k) as f64 / (us * 1e-6) / 1e12;
    Ok(Row::new(
        format!("{} m={m} n={n} k={k} (Auto, F32 I/O)", ty.name()),
        tflops,
        "TFLOP/s",
    )
    .against("cuBLAS bf16 GEMM, same shape", gemm_limit)
    .note(format!("{us:.1} us; target ratio >= 0.5")))
}
