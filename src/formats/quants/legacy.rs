//! The 32-weight formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL.
//!
//! Low nibbles of `qs[j]` hold weight `j`, high nibbles weight `j + 16`.
//! The quantizers of Q4_0 … Q8_0 follow ggml's reference ("_ref") rounding,
//! so their output matches ggml and the `gguf` Python package bit for bit
//! (IQ4_NL's is our own, in `iq4_quantize.rs`):
//! symmetric types take `d = x_absmax_signed / -2^(bits-1)` and round
//! `x / d + 2^(bits-1) + 0.5` down; affine types take `d = (max - min) /
//! (2^bits - 1)`, `m = min`.

use half::f16;

use super::{nearest_int, signed_absmax, GgmlBlock};
use crate::formats::blocks::{
    BlockIQ4NL, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, IQ4_NL_VALUES, QK,
};
use crate::formats::GgmlType;

const HALF: usize = QK / 2;

fn min_max(src: &[f32]) -> (f32, f32) {
    src.iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

fn inverse_or_zero(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// `trunc(v)` clamped to `0..=max`, as an unsigned code.
fn truncated_code(v: f32, max: u8) -> u8 {
    (v.trunc().max(0.0) as u8).min(max)
}

fn pack_nibbles(codes: &[u8; QK]) -> [u8; HALF] {
    std::array::from_fn(|j| (codes[j] & 0x0F) | ((codes[j + HALF] & 0x0F) << 4))
}

/// Bit j of the result is bit 4 of `codes[j]`.
fn pack_fifth_bits(codes: &[u8; QK]) -> [u8; 4] {
    let bits = codes
        .iter()
        .enumerate()
        .fold(0u32, |acc, (j, &c)| acc | (u32::from(c >> 4 & 1) << j));
    bits.to_le_bytes()
}

/// Codes `0..16` of weights `0..32`.
fn unpack_nibbles(qs: &[u8; HALF]) -> [u8; QK] {
    std::array::from_fn(|j| {
        if j < HALF {
            qs[j] & 0x0F
        } else {
            qs[j - HALF] >> 4
        }
    })
}

/// Codes `0..32` of weights `0..32`.
fn unpack_five_bit(qs: &[u8; HALF], qh: [u8; 4]) -> [u8; QK] {
    let high = u32::from_le_bytes(qh);
    let low = unpack_nibbles(qs);
    std::array::from_fn(|j| low[j] | (((high >> j) & 1) as u8) << 4)
}

fn as_block(src: &[f32]) -> Option<&[f32; QK]> {
    src.try_into().ok()
}

impl GgmlBlock for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const NAME: &'static str = "Q4_0";
    const ELEMENTS: usize = QK;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, q) in out.iter_mut().zip(unpack_nibbles(&self.qs)) {
            *o = d * (f32::from(q) - 8.0);
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        let x = as_block(src)?;
        let d = signed_absmax(x) / -8.0;
        let id = inverse_or_zero(d);
        let codes = x.map(|v| truncated_code(v * id + 8.5, 15));
        Some(BlockQ4_0 {
            d: f16::from_f32(d),
            qs: pack_nibbles(&codes),
        })
    }
}

impl GgmlBlock for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const NAME: &'static str = "Q4_1";
    const ELEMENTS: usize = QK;

    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (o, q) in out.iter_mut().zip(unpack_nibbles(&self.qs)) {
            *o = d * f32::from(q) + m;
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        let x = as_block(src)?;
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse_or_zero(d);
        let codes = x.map(|v| truncated_code((v - min) * id + 0.5, 15));
        Some(BlockQ4_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qs: pack_nibbles(&codes),
        })
    }
}

impl GgmlBlock for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const NAME: &'static str = "Q5_0";
    const ELEMENTS: usize = QK;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, q) in out.iter_mut().zip(unpack_five_bit(&self.qs, self.qh)) {
            *o = d * (f32::from(q) - 16.0);
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        let x = as_block(src)?;
        let d = signed_absmax(x) / -16.0;
        let id = inverse_or_zero(d);
        let codes = x.map(|v| truncated_code(v * id + 16.5, 31));
        Some(BlockQ5_0 {
            d: f16::from_f32(d),
            qh: pack_fifth_bits(&codes),
            qs: pack_nibbles(&codes),
        })
    }
}

impl GgmlBlock for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const NAME: &'static str = "Q5_1";
    const ELEMENTS: usize = QK;

    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (o, q) in out.iter_mut().zip(unpack_five_bit(&self.qs, self.qh)) {
            *o = d * f32::from(q) + m;
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        let x = as_block(src)?;
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse_or_zero(d);
        let codes = x.map(|v| truncated_code((v - min) * id + 0.5, 31));
        Some(BlockQ5_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qh: pack_fifth_bits(&codes),
            qs: pack_nibbles(&codes),
        })
    }
}

impl GgmlBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const NAME: &'static str = "Q8_0";
    const ELEMENTS: usize = QK;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = d * f32::from(q);
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        let x = as_block(src)?;
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = inverse_or_zero(d);
        Some(BlockQ8_0 {
            d: f16::from_f32(d),
            qs: x.map(|v| nearest_int(v * id).clamp(-128, 127) as i8),
        })
    }
}

impl GgmlBlock for BlockIQ4NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    const NAME: &'static str = "IQ4_NL";
    const ELEMENTS: usize = QK;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, q) in out.iter_mut().zip(unpack_nibbles(&self.qs)) {
            *o = d * f32::from(IQ4_NL_VALUES[usize::from(q)]);
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        Some(super::iq4_quantize::quantize_iq4nl(as_block(src)?))
    }
}
