use super::{GgmlQuantizedMatmulParams, QuantizedMatmulPath};
use crate::{CommandEncoder, MlxBuffer, MlxError, Result};

pub(super) fn quantized_matmul(
    _enc: &mut CommandEncoder,
    _input: &MlxBuffer,
    _weight: &MlxBuffer,
    _output: &MlxBuffer,
    _p: &GgmlQuantizedMatmulParams,
    _path: QuantizedMatmulPath,
) -> Result<()> {
    Err(MlxError::unsupported(
        super::OP,
        "the CUDA kernels are not written yet",
    ))
}
