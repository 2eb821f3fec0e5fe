//! The CUDA launcher: sends each product to the decode or the prefill
//! kernels.

use super::{GgmlQuantizedMatmulParams, QuantizedMatmulPath};
use crate::{CommandEncoder, MlxBuffer, Result};

pub(crate) use super::decode::register as register_decode_kernels;
pub(crate) use super::prefill::{KERNELS as PREFILL_KERNELS, SOURCE as PREFILL_SOURCE};

pub(super) fn quantized_matmul(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    p: &GgmlQuantizedMatmulParams,
    path: QuantizedMatmulPath,
) -> Result<()> {
    match path {
        QuantizedMatmulPath::Prefill => super::prefill::launch(enc, input, weight, output, p),
        _ => super::decode::launch(enc, input, weight, output, p),
    }
}
