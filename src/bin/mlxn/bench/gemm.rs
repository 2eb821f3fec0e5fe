//! `mlxn bench gemm`: the tensor-core (prefill) path of
//! `quantized_matmul_ggml` at a Llama-3-8B FFN shape, against a cuBLAS bf16
//! GEMM of the same shape measured in the same run.

use std::time::Instant;

use mlx_native::formats::quantize_to_vec;
use mlx_native::ops::quantized_matmul::{
    kernel_name, quantized_matmul_ggml_via, GgmlQuantizedMatmulParams, QuantizedMatmulPath,
};
use mlx_native::{DType, GgmlType, MlxBuffer, MlxDevice, Result};

use super::data::uniform_values;
use super::limits::gemm_bf16_tflops;
use super::{progress, time_ms, Row};

/// The weight types the prefill path is tuned for.
const TYPES: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn input_buffer(device: &MlxDevice, x: &[f32], dtype: DType, shape: &[usize]) -> Result<MlxBuffer> {
    if dtype == DType::BF16 {
        let v: Vec<half::bf16> = x.iter().map(|&f| half::bf16::from_f32(f)).collect();
        MlxBuffer::from_slice(device, &v, shape)
    } else {
        MlxBuffer::from_slice(device, x, shape)
    }
}

/// TFLOP/s (2·m·n·k per product) of the prefill kernels for each type and
/// I/O dtype, beside the cuBLAS limit. Two weight and two input copies are
/// rotated so that the working set exceeds the L2.
pub fn prefill_vs_cublas(device: &MlxDevice, quick: bool) -> Result<Vec<Row>> {
    if !device.is_cuda() {
        progress("gemm: needs a CUDA device; skipped");
        return Ok(Vec::new());
    }
    let (m, n, k) = (512usize, 4096usize, 14336usize);
    let reps = if quick { 5 } else { 20 };
    let flops = 2.0 * (m * n * k) as f64;
    let shape = format!("m{m} n{n} k{k}");
    progress(&format!("cuBLAS bf16 GEMM {shape}"));
    let limit = gemm_bf16_tflops(device, m, n, k, reps)?;
    let limit_name = "cuBLAS bf16 GEMM, same shape";
    let mut rows = vec![Row::new(
        format!("limit: cuBLAS bf16 GEMM {shape}"),
        limit,
        "TFLOP/s",
    )];
    let w = uniform_values(n * k, -1.0, 1.0, 7);
    let x = uniform_values(m * k, -1.0, 1.0, 11);
    for ty in TYPES {
        progress(&format!("prefill {ty}: quantizing the weight"));
        let bytes = quantize_to_vec(ty, &w)?;
        let row_bytes = ty.row_bytes(k as u64)?;
        let weights = (0..2)
            .map(|_| MlxBuffer::from_bytes(device, &bytes, DType::U8, &[n, row_bytes]))
            .collect::<Result<Vec<_>>>()?;
        let p = GgmlQuantizedMatmulParams {
            m,
            n,
            k,
            ggml_type: ty,
        };
        for dtype in [DType::BF16, DType::F32] {
            let inputs = (0..2)
                .map(|_| input_buffer(device, &x, dtype, &[m, k]))
                .collect::<Result<Vec<_>>>()?;
            let output = MlxBuffer::zeros(device, dtype, &[m, n])?;
            let mut enc = device.command_encoder()?;
            let path = QuantizedMatmulPath::Prefill;
            let t = Instant::now();
            quantized_matmul_ggml_via(&mut enc, &inputs[0], &weights[0], &output, &p, path)?;
            enc.commit_and_wait()?;
            let first_ms = t.elapsed().as_secs_f64() * 1e3;
            let ms = time_ms(&mut enc, 3, reps, |e, i| {
                quantized_matmul_ggml_via(e, &inputs[i % 2], &weights[i % 2], &output, &p, path)
            })?;
            let kernel = kernel_name(path, ty, dtype);
            let registers = device.registry().get_pipeline(&kernel)?.registers();
            rows.push(
                Row::new(
                    format!("prefill {ty} {shape} {} in/out", dtype.name()),
                    flops / (ms * 1e-3) / 1e12,
                    "TFLOP/s",
                )
                .against(limit_name, limit)
                .note(format!(
                    "{ms:.3} ms; {registers} regs; first call {first_ms:.0} ms (with compile)"
                )),
            );
        }
    }
    Ok(rows)
}
