use super::{Layout, MAX_COPY_DIMS};
use crate::encoder::{KernelArg, LaunchConfig};
use crate::ops::grid_stride_launch;
use crate::{CommandEncoder, MlxBuffer, Result};

pub(crate) const SOURCE: &str = include_str!("copy.cu");
pub(crate) const KERNELS: &[&str] = &[
    "copy_contiguous_v16",
    "copy_contiguous_v1",
    "copy_strided_b8",
    "copy_strided_b16",
    "copy_strided_b32",
    "copy_strided_b64",
];

/// Threads per block and 16-byte vectors per thread of the vectorized copy.
const COPY_THREADS: u32 = 256;
const COPY_UNROLL: u64 = 4;

/// Mirrors `StridedCopyParams` in copy.cu.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StridedParams {
    n: u64,
    ndim: u64,
    shape: [u64; MAX_COPY_DIMS],
    src_strides: [u64; MAX_COPY_DIMS],
    dst_strides: [u64; MAX_COPY_DIMS],
}

pub(super) fn copy_contiguous(
    enc: &mut CommandEncoder,
    src: &MlxBuffer,
    dst: &MlxBuffer,
) -> Result<()> {
    let bytes = src.byte_len() as u64;
    let aligned = src.byte_offset() % 16 == 0 && dst.byte_offset() % 16 == 0;
    if aligned {
        // One block covers COPY_THREADS * COPY_UNROLL vectors; the tail
        // (bytes % 16) is copied by the first threads of the grid.
        let vectors = bytes / 16;
        let per_block = COPY_THREADS as u64 * COPY_UNROLL;
        let blocks = vectors.div_ceil(per_block).clamp(1, i32::MAX as u64) as u32;
        let config = LaunchConfig::linear(blocks, COPY_THREADS);
        enc.dispatch_kernel(
            "copy_contiguous_v16",
            config,
            &[
                KernelArg::Buffer(src),
                KernelArg::Buffer(dst),
                KernelArg::pod(&bytes),
            ],
        )
    } else {
        let config = grid_stride_launch(enc, bytes, 256);
        enc.dispatch_kernel(
            "copy_contiguous_v1",
            config,
            &[
                KernelArg::Buffer(src),
                KernelArg::Buffer(dst),
                KernelArg::pod(&bytes),
            ],
        )
    }
}

pub(super) fn copy_strided(
    enc: &mut CommandEncoder,
    src: &MlxBuffer,
    dst: &MlxBuffer,
    layout: &Layout,
) -> Result<()> {
    let mut p = StridedParams {
        n: layout.n as u64,
        ndim: layout.shape.len() as u64,
        shape: [1; MAX_COPY_DIMS],
        src_strides: [0; MAX_COPY_DIMS],
        dst_strides: [0; MAX_COPY_DIMS],
    };
    for i in 0..layout.shape.len() {
        p.shape[i] = layout.shape[i] as u64;
        p.src_strides[i] = layout.src_strides[i] as u64;
        p.dst_strides[i] = layout.dst_strides[i] as u64;
    }
    let kernel = KERNELS[2 + src.dtype().size_of().trailing_zeros() as usize];
    let config = grid_stride_launch(enc, p.n, 256);
    enc.dispatch_kernel(
        kernel,
        config,
        &[
            KernelArg::Buffer(src),
            KernelArg::Buffer(dst),
            KernelArg::pod(&p),
        ],
    )
}
