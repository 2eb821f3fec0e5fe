//! Host-side element access for the CPU implementations.

use half::{bf16, f16};

use crate::{DType, MlxBuffer, MlxError, Result};

/// A float buffer (F32, F16 or BF16) as f32 values.
pub(crate) fn read_f32(buffer: &MlxBuffer) -> Result<Vec<f32>> {
    Ok(match buffer.dtype() {
        DType::F32 => buffer.read::<f32>()?,
        DType::F16 => buffer.read::<f16>()?.iter().map(|v| v.to_f32()).collect(),
        DType::BF16 => buffer.read::<bf16>()?.iter().map(|v| v.to_f32()).collect(),
        d => {
            return Err(MlxError::unsupported(
                "read_f32",
                format!("{d} is not a float dtype"),
            ))
        }
    })
}

/// Writes f32 values to a float buffer, rounding to nearest even for F16/BF16.
pub(crate) fn write_f32(buffer: &MlxBuffer, values: &[f32]) -> Result<()> {
    match buffer.dtype() {
        DType::F32 => buffer.write(values),
        DType::F16 => buffer.write(&values.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>()),
        DType::BF16 => buffer.write(
            &values
                .iter()
                .map(|&v| bf16::from_f32(v))
                .collect::<Vec<_>>(),
        ),
        d => Err(MlxError::unsupported(
            "write_f32",
            format!("{d} is not a float dtype"),
        )),
    }
}
