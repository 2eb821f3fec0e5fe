//! Loading GGUF tensors into device buffers.

use super::GgufFile;
use crate::formats::GgmlType;
use crate::{DType, MlxBuffer, MlxDevice, MlxError, Result};

impl GgufFile {
    /// Copies tensor `name` from the file into a buffer on `device`, as it is
    /// stored: F32/F16/BF16 tensors as buffers of that dtype, quantized ones
    /// as `U8` buffers of raw blocks shaped `[rows, row_bytes]` (no
    /// dequantization). Float shapes are row-major: GGUF's `ne[0]` is last.
    pub fn load_tensor(&self, name: &str, device: &MlxDevice) -> Result<MlxBuffer> {
        let info = self.tensor_info(name)?;
        let bytes = self.tensor_data(name)?;
        let dims = info
            .dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| {
                MlxError::invalid(
                    "load_tensor",
                    format!("tensor '{name}' dims {:?} do not fit in memory", info.dims),
                )
            })?;
        let dtype = match info.ggml_type {
            GgmlType::F32 => Some(DType::F32),
            GgmlType::F16 => Some(DType::F16),
            GgmlType::BF16 => Some(DType::BF16),
            _ => None,
        };
        match dtype {
            Some(dtype) => MlxBuffer::from_bytes(device, bytes, dtype, &dims),
            None => {
                let row_len = info.dims.first().copied().unwrap_or(1);
                let row_bytes = info.ggml_type.row_bytes(row_len)?;
                let rows = bytes.len() / row_bytes.max(1);
                MlxBuffer::from_bytes(device, bytes, DType::U8, &[rows, row_bytes])
            }
        }
    }
}
