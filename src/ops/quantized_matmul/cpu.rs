use rayon::prelude::*;

use super::GgmlQuantizedMatmulParams;
use crate::formats::dequantize;
use crate::ops::host::{read_f32, write_f32};
use crate::{MlxBuffer, Result};

/// Dequantizes one weight row at a time (in parallel over rows) and takes
/// its dot product with every input row, accumulating in f32.
pub(super) fn quantized_matmul(
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    p: &GgmlQuantizedMatmulParams,
) -> Result<()> {
    let x = read_f32(input)?;
    let w = weight.read_bytes()?;
    let row_bytes = p.ggml_type.row_bytes(p.k as u64)?;
    // columns[j][i] = output[i, j]
    let columns: Vec<Vec<f32>> = w
        .par_chunks(row_bytes)
        .map(|row| {
            let mut wj = vec![0f32; p.k];
            dequantize(p.ggml_type, row, &mut wj)?;
            Ok(x.chunks(p.k)
                .map(|xi| xi.iter().zip(&wj).map(|(a, b)| a * b).sum())
                .collect())
        })
        .collect::<Result<_>>()?;
    let mut out = vec![0f32; p.m * p.n];
    for (j, col) in columns.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            out[i * p.n + j] = *v;
        }
    }
    write_f32(output, &out)
}
