//! F32, F16 and BF16 as one-element "blocks", so plain float tensors go
//! through the same dispatch as quantized ones.

use half::{bf16, f16};

use super::GgmlBlock;
use crate::formats::GgmlType;

impl GgmlBlock for f32 {
    const TYPE: GgmlType = GgmlType::F32;
    const NAME: &'static str = "F32";
    const ELEMENTS: usize = 1;

    fn dequantize(&self, out: &mut [f32]) {
        out.fill(*self);
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        src.first().copied()
    }
}

impl GgmlBlock for f16 {
    const TYPE: GgmlType = GgmlType::F16;
    const NAME: &'static str = "F16";
    const ELEMENTS: usize = 1;

    fn dequantize(&self, out: &mut [f32]) {
        out.fill(self.to_f32());
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        src.first().map(|&v| f16::from_f32(v))
    }
}

impl GgmlBlock for bf16 {
    const TYPE: GgmlType = GgmlType::BF16;
    const NAME: &'static str = "BF16";
    const ELEMENTS: usize = 1;

    fn dequantize(&self, out: &mut [f32]) {
        out.fill(self.to_f32());
    }

    /// Round to nearest even, as ggml does.
    fn quantize(src: &[f32]) -> Option<Self> {
        src.first().map(|&v| bf16::from_f32(v))
    }
}
