//! `cast`: converts between F32, F16 and BF16, rounding to nearest even.

mod cpu;
pub(crate) mod cuda;

use crate::ops::validate;
use crate::{CommandEncoder, DType, MlxBuffer, Result};

const FLOATS: &[DType] = &[DType::F32, DType::F16, DType::BF16];

/// Writes `src` converted to `dst`'s dtype into `dst` (same element count).
/// Equal dtypes make a plain copy.
pub fn cast(enc: &mut CommandEncoder, src: &MlxBuffer, dst: &MlxBuffer) -> Result<()> {
    let op = "cast";
    validate::same_device(op, enc, &[("src", src), ("dst", dst)])?;
    validate::dtype_in(op, "src", src, FLOATS)?;
    validate::dtype_in(op, "dst", dst, FLOATS)?;
    validate::element_count(op, "dst", dst, src.element_count())?;
    if src.dtype() == dst.dtype() {
        return crate::ops::copy::copy(enc, src, dst);
    }
    if src.overlaps(dst) {
        return Err(crate::MlxError::invalid(
            op,
            "a cast between dtypes of different sizes cannot run in place",
        ));
    }
    enc.encode_op(op, || cpu::cast(src, dst), |enc| cuda::cast(enc, src, dst))
}
