//! Checks shared by the ops' public functions.

use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

/// Every buffer lives on the encoder's device.
pub(crate) fn same_device(
    op: &'static str,
    enc: &CommandEncoder,
    buffers: &[(&str, &MlxBuffer)],
) -> Result<()> {
    for (what, b) in buffers {
        if !b.device().same_device(enc.device()) {
            return Err(MlxError::DeviceMismatch {
                op,
                msg: format!(
                    "{what} is on {:?}, the encoder on {:?}",
                    b.device(),
                    enc.device()
                ),
            });
        }
    }
    Ok(())
}

/// `buffer` has one of the `allowed` dtypes.
pub(crate) fn dtype_in(
    op: &'static str,
    what: &str,
    buffer: &MlxBuffer,
    allowed: &[DType],
) -> Result<()> {
    if allowed.contains(&buffer.dtype()) {
        return Ok(());
    }
    let names: Vec<String> = allowed.iter().map(|d| d.to_string()).collect();
    Err(MlxError::DTypeMismatch {
        op,
        what: what.to_string(),
        expected: names.join(" or "),
        got: buffer.dtype(),
    })
}

/// `buffer` has the dtype `expected`.
pub(crate) fn dtype_is(
    op: &'static str,
    what: &str,
    buffer: &MlxBuffer,
    expected: DType,
) -> Result<()> {
    dtype_in(op, what, buffer, &[expected])
}

/// `buffer` holds exactly `n` elements.
pub(crate) fn element_count(
    op: &'static str,
    what: &str,
    buffer: &MlxBuffer,
    n: usize,
) -> Result<()> {
    if buffer.element_count() != n {
        return Err(MlxError::shape(
            op,
            format!(
                "{what} has {} elements, expected {n}",
                buffer.element_count()
            ),
        ));
    }
    Ok(())
}

/// An output must not partly overlap an input (exact aliasing, for an
/// in-place elementwise op, is allowed where the op says so).
pub(crate) fn no_partial_overlap(
    op: &'static str,
    out: &MlxBuffer,
    input: &MlxBuffer,
) -> Result<()> {
    if out.overlaps(input)
        && (out.byte_offset() != input.byte_offset() || out.byte_len() != input.byte_len())
    {
        return Err(MlxError::invalid(op, "the output partly overlaps an input"));
    }
    Ok(())
}

/// An unsupported-operation error unless the encoder's device is a CUDA GPU
/// of compute capability 9.0 (Hopper) or newer, or not a CUDA device at all;
/// `what` names the kernels' Hopper instructions.
pub(crate) fn hopper_or_newer(op: &'static str, enc: &CommandEncoder, what: &str) -> Result<()> {
    match enc.device().cuda_properties() {
        Some(props) if props.compute_capability.0 < 9 => {
            let (major, minor) = props.compute_capability;
            Err(MlxError::unsupported(
                op,
                format!(
                    "{what} need compute capability 9.0 (Hopper) or newer; this GPU is {major}.{minor}"
                ),
            ))
        }
        _ => Ok(()),
    }
}
