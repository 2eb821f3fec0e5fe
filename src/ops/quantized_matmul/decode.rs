//! The decode kernels' launcher.

use super::GgmlQuantizedMatmulParams;
use crate::{CommandEncoder, MlxBuffer, MlxError, Result};

pub(crate) const SOURCE: &str = include_str!("decode.cu");
pub(crate) const KERNELS: &[&str] = &[];

pub(super) fn launch(
    _enc: &mut CommandEncoder,
    _input: &MlxBuffer,
    _weight: &MlxBuffer,
    _output: &MlxBuffer,
    _p: &GgmlQuantizedMatmulParams,
) -> Result<()> {
    Err(MlxError::unsupported(
        super::OP,
        "the decode kernels are not written yet",
    ))
}
