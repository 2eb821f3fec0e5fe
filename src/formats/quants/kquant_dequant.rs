//! Dequantization of the 256-weight super-block formats: Q2_K … Q6_K and
//! IQ4_XS. Each function is written per element `e` (0..256), from the
//! layout facts: which byte and bit holds weight `e`'s code and which
//! sub-block scale applies to it.

use super::GgmlBlock;
use crate::formats::blocks::{
    BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, IQ4_NL_VALUES, QK_K,
};
use crate::formats::GgmlType;

/// The 8 six-bit (scale, min) pairs packed into 12 bytes by Q4_K and Q5_K:
/// bytes 0..4 hold scales 0..4 (low 6 bits) and the top 2 bits of scales
/// 4..8; bytes 4..8 the same for mins; bytes 8..12 the low nibbles of
/// scales 4..8 (low) and mins 4..8 (high).
pub(super) fn unpack_k4_scales(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    for j in 0..4 {
        scales[j] = s[j] & 63;
        mins[j] = s[j + 4] & 63;
        scales[j + 4] = (s[j + 8] & 0x0F) | ((s[j] >> 6) << 4);
        mins[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (scales, mins)
}

/// Inverse of [`unpack_k4_scales`]; values must be < 64.
pub(super) fn pack_k4_scales(scales: &[u8; 8], mins: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = (scales[j] & 63) | ((scales[j + 4] >> 4) << 6);
        s[j + 4] = (mins[j] & 63) | ((mins[j + 4] >> 4) << 6);
        s[j + 8] = (scales[j + 4] & 0x0F) | ((mins[j + 4] & 0x0F) << 4);
    }
    s
}

/// The 16 signed scales of Q3_K: low nibbles in bytes 0..8 (scales 0..8 in
/// the low halves, 8..16 in the high halves), the top 2 bits in bytes 8..12
/// (byte 8 + k%4, bit pair k/4), stored with a +32 offset.
fn unpack_q3k_scales(s: &[u8; 12]) -> [i8; 16] {
    std::array::from_fn(|k| {
        let low = if k < 8 { s[k] & 0x0F } else { s[k - 8] >> 4 };
        let high = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
        (low | (high << 4)) as i8 - 32
    })
}

/// The 2-bit field of weight `e` in the Q2_K/Q3_K `qs` layout: 128 weights
/// per 32 bytes, weight `e` in byte `32 * (e / 128) + e % 32` at bit
/// `2 * ((e % 128) / 32)`.
fn two_bit_code(qs: &[u8; QK_K / 4], e: usize) -> u8 {
    (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3
}

/// The 4-bit field of weight `e` in the Q4_K/Q5_K `qs` layout: 64 weights
/// per 32 bytes, the first 32 in the low nibbles.
fn k_nibble(qs: &[u8; QK_K / 2], e: usize) -> u8 {
    let byte = qs[32 * (e / 64) + e % 32];
    if e % 64 < 32 {
        byte & 0x0F
    } else {
        byte >> 4
    }
}

impl GgmlBlock for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const NAME: &'static str = "Q2_K";
    const ELEMENTS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for (e, o) in out.iter_mut().enumerate().take(QK_K) {
            let sc = self.scales[e / 16];
            let dl = d * f32::from(sc & 0x0F);
            let ml = dmin * f32::from(sc >> 4);
            *o = dl * f32::from(two_bit_code(&self.qs, e)) - ml;
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        super::kquant_quantize::quantize_q2k(src.try_into().ok()?)
    }
}

impl GgmlBlock for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const NAME: &'static str = "Q3_K";
    const ELEMENTS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let scales = unpack_q3k_scales(&self.scales);
        for (e, o) in out.iter_mut().enumerate().take(QK_K) {
            let dl = d * f32::from(scales[e / 16]);
            // A set hmask bit means "no -4 offset".
            let high_set = (self.hmask[e % 32] >> (e / 32)) & 1 == 1;
            let q = two_bit_code(&self.qs, e) as i8 - if high_set { 0 } else { 4 };
            *o = dl * f32::from(q);
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        super::kquant_quantize::quantize_q3k(src.try_into().ok()?)
    }
}

impl GgmlBlock for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const NAME: &'static str = "Q4_K";
    const ELEMENTS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        let (scales, mins) = unpack_k4_scales(&self.scales);
        for (e, o) in out.iter_mut().enumerate().take(QK_K) {
            let dl = d * f32::from(scales[e / 32]);
            let ml = dmin * f32::from(mins[e / 32]);
            *o = dl * f32::from(k_nibble(&self.qs, e)) - ml;
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        super::kquant_quantize::quantize_q4k(src.try_into().ok()?)
    }
}

impl GgmlBlock for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const NAME: &'static str = "Q5_K";
    const ELEMENTS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        let (scales, mins) = unpack_k4_scales(&self.scales);
        for (e, o) in out.iter_mut().enumerate().take(QK_K) {
            let dl = d * f32::from(scales[e / 32]);
            let ml = dmin * f32::from(mins[e / 32]);
            let high = ((self.qh[e % 32] >> (e / 32)) & 1) << 4;
            *o = dl * f32::from(k_nibble(&self.qs, e) | high) - ml;
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        super::kquant_quantize::quantize_q5k(src.try_into().ok()?)
    }
}

/// The 6-bit code of weight `e` in Q6_K. Per 128 weights there are 64 bytes
/// of `ql` and 32 of `qh`: weights `l` and `l + 64` (l < 32) take the low and
/// high nibble of `ql[l]`, weights `l + 32` and `l + 96` those of
/// `ql[l + 32]`; `qh[l]` holds the top 2 bits of weights `l + 32 * k` at bit
/// `2 * k`.
pub(super) fn q6k_code(ql: &[u8; QK_K / 2], qh: &[u8; QK_K / 4], e: usize) -> u8 {
    let (half, r) = (e / 128, e % 128);
    let (quarter, l) = (r / 32, r % 32);
    let low_byte = ql[64 * half + l + 32 * (quarter % 2)];
    let low = if quarter < 2 {
        low_byte & 0x0F
    } else {
        low_byte >> 4
    };
    let high = (qh[32 * half + l] >> (2 * quarter)) & 3;
    low | (high << 4)
}

impl GgmlBlock for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const NAME: &'static str = "Q6_K";
    const ELEMENTS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (e, o) in out.iter_mut().enumerate().take(QK_K) {
            let dl = d * f32::from(self.scales[e / 16]);
            let q = q6k_code(&self.ql, &self.qh, e) as i8 - 32;
            *o = dl * f32::from(q);
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        super::kquant_quantize::quantize_q6k(src.try_into().ok()?)
    }
}

impl GgmlBlock for BlockIQ4XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    const NAME: &'static str = "IQ4_XS";
    const ELEMENTS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (e, o) in out.iter_mut().enumerate().take(QK_K) {
            let ib = e / 32;
            let low = (self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
            let high = ((self.scales_h >> (2 * ib)) & 3) as u8;
            let dl = d * (f32::from(low | (high << 4)) - 32.0);
            let byte = self.qs[16 * ib + e % 16];
            let q = if e % 32 < 16 { byte & 0x0F } else { byte >> 4 };
            *o = dl * f32::from(IQ4_NL_VALUES[usize::from(q)]);
        }
    }

    fn quantize(src: &[f32]) -> Option<Self> {
        Some(super::iq4_quantize::quantize_iq4xs(src.try_into().ok()?))
    }
}
