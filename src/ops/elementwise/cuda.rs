use super::BinaryOp;
use crate::encoder::KernelArg;
use crate::ops::grid_stride_launch;
use crate::{CommandEncoder, DType, MlxBuffer, Result};

pub(crate) const SOURCE: &str = include_str!("elementwise.cu");
pub(crate) const KERNELS: &[&str] = &[
    "add_f32",
    "add_f16",
    "add_bf16",
    "mul_f32",
    "mul_f16",
    "mul_bf16",
    "scale_f32",
    "scale_f16",
    "scale_bf16",
];

fn dtype_index(d: DType) -> usize {
    match d {
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => 0,
    }
}

pub(super) fn binary(
    enc: &mut CommandEncoder,
    op: BinaryOp,
    a: &MlxBuffer,
    b: &MlxBuffer,
    out: &MlxBuffer,
) -> Result<()> {
    let base = match op {
        BinaryOp::Add => 0,
        BinaryOp::Mul => 3,
    };
    let kernel = KERNELS[base + dtype_index(a.dtype())];
    let (n, b_len) = (a.element_count() as u64, b.element_count() as u64);
    let config = grid_stride_launch(enc, n, 256);
    enc.dispatch_kernel(
        kernel,
        config,
        &[
            KernelArg::Buffer(a),
            KernelArg::Buffer(b),
            KernelArg::Buffer(out),
            KernelArg::pod(&n),
            KernelArg::pod(&b_len),
        ],
    )
}

pub(super) fn scale(
    enc: &mut CommandEncoder,
    a: &MlxBuffer,
    out: &MlxBuffer,
    factor: f32,
) -> Result<()> {
    let kernel = KERNELS[6 + dtype_index(a.dtype())];
    let n = a.element_count() as u64;
    let config = grid_stride_launch(enc, n, 256);
    enc.dispatch_kernel(
        kernel,
        config,
        &[
            KernelArg::Buffer(a),
            KernelArg::Buffer(out),
            KernelArg::pod(&factor),
            KernelArg::pod(&n),
        ],
    )
}
