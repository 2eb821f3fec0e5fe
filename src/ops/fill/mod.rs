//! `fill`: sets every element of a buffer to one value.
//!
//! The value is given as f64 and converted to the buffer's dtype: rounded
//! to nearest even for F16/BF16/F32; for integer dtypes it must be a whole
//! number in range.

mod cpu;
pub(crate) mod cuda;

use crate::ops::validate;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

/// Sets every element of `out` to `value`.
pub fn fill(enc: &mut CommandEncoder, out: &MlxBuffer, value: f64) -> Result<()> {
    let op = "fill";
    validate::same_device(op, enc, &[("out", out)])?;
    let pattern = element_bits(op, out.dtype(), value)?;
    enc.encode_op(
        op,
        || cpu::fill(out, pattern),
        |enc| cuda::fill(enc, out, pattern),
    )
}

/// The little-endian bit pattern of `value` as one element of `dtype`.
fn element_bits(op: &'static str, dtype: DType, value: f64) -> Result<u64> {
    let int = |min: f64, max: f64| -> Result<i128> {
        if value.fract() != 0.0 || !(min..=max).contains(&value) {
            return Err(MlxError::invalid(
                op,
                format!("{value} is not representable as {dtype}"),
            ));
        }
        Ok(value as i128)
    };
    Ok(match dtype {
        DType::F32 => (value as f32).to_bits() as u64,
        DType::F16 => half::f16::from_f64(value).to_bits() as u64,
        DType::BF16 => half::bf16::from_f64(value).to_bits() as u64,
        DType::U8 => int(0.0, u8::MAX as f64)? as u64,
        DType::I8 => int(i8::MIN as f64, i8::MAX as f64)? as i8 as u8 as u64,
        DType::U16 => int(0.0, u16::MAX as f64)? as u64,
        DType::I16 => int(i16::MIN as f64, i16::MAX as f64)? as i16 as u16 as u64,
        DType::U32 => int(0.0, u32::MAX as f64)? as u64,
        DType::I32 => int(i32::MIN as f64, i32::MAX as f64)? as i32 as u32 as u64,
        DType::U64 => int(0.0, u64::MAX as f64)? as u64,
        DType::I64 => int(i64::MIN as f64, i64::MAX as f64)? as i64 as u64,
    })
}
