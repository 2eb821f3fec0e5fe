use crate::encoder::KernelArg;
use crate::ops::grid_stride_launch;
use crate::{CommandEncoder, MlxBuffer, Result};

pub(crate) const SOURCE: &str = include_str!("fill.cu");
pub(crate) const KERNELS: &[&str] = &["fill_b8", "fill_b16", "fill_b32", "fill_b64"];

pub(super) fn fill(enc: &mut CommandEncoder, out: &MlxBuffer, pattern: u64) -> Result<()> {
    let size = out.dtype().size_of();
    let kernel = KERNELS[size.trailing_zeros() as usize];
    let n = out.element_count() as u64;
    let value = pattern.to_le_bytes();
    let config = grid_stride_launch(enc, n, 256);
    enc.dispatch_kernel(
        kernel,
        config,
        &[
            KernelArg::Buffer(out),
            KernelArg::Bytes(&value[..size]),
            KernelArg::pod(&n),
        ],
    )
}
