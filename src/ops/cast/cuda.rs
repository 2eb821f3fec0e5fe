use crate::encoder::KernelArg;
use crate::ops::grid_stride_launch;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

pub(crate) const SOURCE: &str = include_str!("cast.cu");
pub(crate) const KERNELS: &[&str] = &[
    "cast_f32_to_f16",
    "cast_f32_to_bf16",
    "cast_f16_to_f32",
    "cast_f16_to_bf16",
    "cast_bf16_to_f32",
    "cast_bf16_to_f16",
];

pub(super) fn cast(enc: &mut CommandEncoder, src: &MlxBuffer, dst: &MlxBuffer) -> Result<()> {
    let kernel = match (src.dtype(), dst.dtype()) {
        (DType::F32, DType::F16) => KERNELS[0],
        (DType::F32, DType::BF16) => KERNELS[1],
        (DType::F16, DType::F32) => KERNELS[2],
        (DType::F16, DType::BF16) => KERNELS[3],
        (DType::BF16, DType::F32) => KERNELS[4],
        (DType::BF16, DType::F16) => KERNELS[5],
        (a, b) => return Err(MlxError::unsupported("cast", format!("{a} to {b}"))),
    };
    let n = src.element_count() as u64;
    let on_16 = |b: &MlxBuffer| b.device_ptr().is_some_and(|a| a % 16 == 0);
    let aligned = u32::from(on_16(src) && on_16(dst));
    let config = grid_stride_launch(enc, n.div_ceil(8), 256);
    enc.dispatch_kernel(
        kernel,
        config,
        &[
            KernelArg::Buffer(src),
            KernelArg::Buffer(dst),
            KernelArg::pod(&n),
            KernelArg::pod(&aligned),
        ],
    )
}
