//! `copy` and `copy_strided`: element copies between buffers of one dtype.
//!
//! `copy_strided` reads an N-d array (up to 8 dimensions) out of `src` with
//! element strides `src_strides`, starting at the view's offset, and writes
//! it to `dst` with `dst_strides` (row-major contiguous when `None`).
//! `copy(src, dst)` is the contiguous case; it runs a vectorized kernel.

mod cpu;
pub(crate) mod cuda;

use crate::ops::validate;
use crate::{CommandEncoder, MlxBuffer, MlxError, Result};

/// Most dimensions a strided copy may have.
pub const MAX_COPY_DIMS: usize = 8;

/// The layout of a strided copy, in elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StridedCopyParams {
    pub shape: Vec<usize>,
    pub src_strides: Vec<usize>,
    /// `None`: `dst` is written row-major contiguous.
    pub dst_strides: Option<Vec<usize>>,
}

/// A validated copy layout shared by the backends.
pub(crate) struct Layout {
    pub shape: Vec<usize>,
    pub src_strides: Vec<usize>,
    pub dst_strides: Vec<usize>,
    pub n: usize,
}

impl Layout {
    pub(crate) fn is_contiguous(&self) -> bool {
        let rm = row_major(&self.shape);
        self.src_strides == rm && self.dst_strides == rm
    }
}

fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Copies `src` to `dst`: same dtype, same element count, no overlap
/// (unless they are the very same view).
pub fn copy(enc: &mut CommandEncoder, src: &MlxBuffer, dst: &MlxBuffer) -> Result<()> {
    let n = src.element_count();
    let params = StridedCopyParams {
        shape: vec![n],
        src_strides: vec![1],
        dst_strides: None,
    };
    copy_strided(enc, src, dst, &params)
}

/// Copies the strided array described by `params` from `src` into `dst`.
pub fn copy_strided(
    enc: &mut CommandEncoder,
    src: &MlxBuffer,
    dst: &MlxBuffer,
    params: &StridedCopyParams,
) -> Result<()> {
    let op = "copy_strided";
    validate::same_device(op, enc, &[("src", src), ("dst", dst)])?;
    validate::dtype_is(op, "dst", dst, src.dtype())?;
    let layout = validate_layout(op, src, dst, params)?;
    if src.overlaps(dst) {
        return Err(MlxError::invalid(op, "source and destination overlap"));
    }
    enc.encode_op(
        op,
        || cpu::copy(src, dst, &layout),
        |enc| {
            if layout.is_contiguous() {
                cuda::copy_contiguous(enc, src, dst)
            } else {
                cuda::copy_strided(enc, src, dst, &layout)
            }
        },
    )
}

fn validate_layout(
    op: &'static str,
    src: &MlxBuffer,
    dst: &MlxBuffer,
    p: &StridedCopyParams,
) -> Result<Layout> {
    let dims = p.shape.len();
    if dims == 0 || dims > MAX_COPY_DIMS {
        return Err(MlxError::invalid(
            op,
            format!("{dims} dimensions; 1 to {MAX_COPY_DIMS} are supported"),
        ));
    }
    let dst_strides = p.dst_strides.clone().unwrap_or_else(|| row_major(&p.shape));
    if p.src_strides.len() != dims || dst_strides.len() != dims {
        return Err(MlxError::shape(
            op,
            format!(
                "shape {:?} has {dims} dimensions, strides {:?} and {:?}",
                p.shape, p.src_strides, dst_strides
            ),
        ));
    }
    let n = p.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let n = match n {
        Some(n) if n > 0 => n,
        _ => {
            return Err(MlxError::invalid(
                op,
                format!("shape {:?} is empty or overflows", p.shape),
            ))
        }
    };
    let span = |strides: &[usize]| -> Option<usize> {
        p.shape
            .iter()
            .zip(strides)
            .try_fold(0usize, |acc, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
            })
    };
    for (what, buf, strides) in [("src", src, &p.src_strides), ("dst", dst, &dst_strides)] {
        match span(strides) {
            Some(last) if last < buf.element_count() => {}
            _ => {
                return Err(MlxError::bounds(
                    op,
                    format!(
                        "{what} strides {strides:?} over shape {:?} reach past its {} elements",
                        p.shape,
                        buf.element_count()
                    ),
                ))
            }
        }
    }
    if p.shape
        .iter()
        .zip(&dst_strides)
        .any(|(&d, &s)| d > 1 && s == 0)
    {
        return Err(MlxError::invalid(
            op,
            "a zero destination stride would write one element many times",
        ));
    }
    if p.dst_strides.is_none() && dst.element_count() != n {
        return Err(MlxError::shape(
            op,
            format!(
                "dst has {} elements, the copy writes {n}",
                dst.element_count()
            ),
        ));
    }
    Ok(Layout {
        shape: p.shape.clone(),
        src_strides: p.src_strides.clone(),
        dst_strides,
        n,
    })
}
