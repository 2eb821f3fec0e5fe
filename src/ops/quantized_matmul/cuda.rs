//! The CUDA launcher: sends each product to the decode or the prefill
//! kernels.

use super::{GgmlQuantizedMatmulParams, QuantizedMatmulPath};
use crate::{CommandEncoder, MlxBuffer, Result};

pub(crate) use super::decode::register as register_decode;
pub(crate) use super::prefill::register as register_prefill;

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
