use super::Layout;
use crate::{MlxBuffer, Result};

/// Element-by-element copy through byte offsets; the destination is read
/// first so that elements the layout does not cover keep their values.
pub(super) fn copy(src: &MlxBuffer, dst: &MlxBuffer, layout: &Layout) -> Result<()> {
    if layout.is_contiguous() {
        return dst.cpu_copy_from(src);
    }
    copy_elements(src, dst, layout)
}

fn copy_elements(src: &MlxBuffer, dst: &MlxBuffer, layout: &Layout) -> Result<()> {
    let size = src.dtype().size_of();
    let s = src.read_bytes()?;
    let mut d = dst.read_bytes()?;
    let dims = layout.shape.len();
    let mut index = vec![0usize; dims];
    for _ in 0..layout.n {
        let so: usize = index
            .iter()
            .zip(&layout.src_strides)
            .map(|(i, s)| i * s)
            .sum();
        let doff: usize = index
            .iter()
            .zip(&layout.dst_strides)
            .map(|(i, s)| i * s)
            .sum();
        d[doff * size..(doff + 1) * size].copy_from_slice(&s[so * size..(so + 1) * size]);
        for k in (0..dims).rev() {
            index[k] += 1;
            if index[k] < layout.shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    dst.write_bytes(&d)
}
