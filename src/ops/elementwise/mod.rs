//! Elementwise `add`, `mul` and `scale` on F32, F16 and BF16, computed in
//! f32 and rounded to the output dtype.
//!
//! `b` either has as many elements as `a` (elementwise) or as many as the
//! last dimension of `a` (one row, broadcast over every row of `a`). The
//! output may be the very same view as `a` (in place).

mod cpu;
pub(crate) mod cuda;

use crate::ops::validate;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

const FLOATS: &[DType] = &[DType::F32, DType::F16, DType::BF16];

/// The binary operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Mul,
}

impl BinaryOp {
    pub(crate) fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Mul => a * b,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Mul => "mul",
        }
    }
}

/// `out = a + b`, with `b` possibly a row broadcast over `a`'s rows.
pub fn add(enc: &mut CommandEncoder, a: &MlxBuffer, b: &MlxBuffer, out: &MlxBuffer) -> Result<()> {
    binary(enc, BinaryOp::Add, a, b, out)
}

/// `out = a * b`, with `b` possibly a row broadcast over `a`'s rows.
pub fn mul(enc: &mut CommandEncoder, a: &MlxBuffer, b: &MlxBuffer, out: &MlxBuffer) -> Result<()> {
    binary(enc, BinaryOp::Mul, a, b, out)
}

/// `out = a ∘ b` for a [`BinaryOp`].
pub fn binary(
    enc: &mut CommandEncoder,
    op_kind: BinaryOp,
    a: &MlxBuffer,
    b: &MlxBuffer,
    out: &MlxBuffer,
) -> Result<()> {
    let op = op_kind.name();
    validate::same_device(op, enc, &[("a", a), ("b", b), ("out", out)])?;
    validate::dtype_in(op, "a", a, FLOATS)?;
    validate::dtype_is(op, "b", b, a.dtype())?;
    validate::dtype_is(op, "out", out, a.dtype())?;
    validate::element_count(op, "out", out, a.element_count())?;
    let row = *a.shape().last().unwrap_or(&0);
    if b.element_count() != a.element_count() && b.element_count() != row {
        return Err(MlxError::shape(
            op,
            format!(
                "b has {} elements; expected {} (elementwise) or {row} (a row of a {:?})",
                b.element_count(),
                a.element_count(),
                a.shape()
            ),
        ));
    }
    validate::no_partial_overlap(op, out, a)?;
    validate::no_partial_overlap(op, out, b)?;
    if out.overlaps(b) && b.element_count() != out.element_count() {
        return Err(MlxError::invalid(
            op,
            "the output overlaps the broadcast row b",
        ));
    }
    enc.encode_op(
        op,
        || cpu::binary(op_kind, a, b, out),
        |enc| cuda::binary(enc, op_kind, a, b, out),
    )
}

/// `out = a * factor`.
pub fn scale(enc: &mut CommandEncoder, a: &MlxBuffer, out: &MlxBuffer, factor: f32) -> Result<()> {
    let op = "scale";
    validate::same_device(op, enc, &[("a", a), ("out", out)])?;
    validate::dtype_in(op, "a", a, FLOATS)?;
    validate::dtype_is(op, "out", out, a.dtype())?;
    validate::element_count(op, "out", out, a.element_count())?;
    validate::no_partial_overlap(op, out, a)?;
    enc.encode_op(
        op,
        || cpu::scale(a, out, factor),
        |enc| cuda::scale(enc, a, out, factor),
    )
}
