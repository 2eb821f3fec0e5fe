//! Quantizers for Q2_K, Q3_K, Q4_K, Q5_K and Q6_K.
//!
//! Two stages, as the formats demand: first a float scale (and min) per
//! sub-block, chosen by trying a few candidate ranges and refining each by
//! least squares; then those floats are themselves quantized to 4, 6 or 8 bits
//! against one f16 super-block scale, and the weights are re-coded with the
//! scales exactly as the decoder will see them. This is not ggml's search,
//! so bytes differ from ggml's output; the reconstruction error is of the
//! same order (see the round-trip tests).

use half::f16;

use super::kquant_dequant::pack_k4_scales;
use super::{nearest_int, signed_absmax};
use crate::formats::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, QK_K};

/// Candidate ranges tried per sub-block: the code range is stretched or
/// shrunk by `step * i` codes for `i` in `-STEPS..=STEPS`.
const STEPS: i32 = 10;

/// Best `(scale, min)` with `x ≈ scale * q + min`, `q` in `0..=nmax`,
/// `min <= 0` (the format stores `-min` unsigned).
fn affine_scale_min(x: &[f32], nmax: u8) -> (f32, f32) {
    let lo = x.iter().fold(0.0f32, |a, &v| a.min(v));
    let hi = x.iter().fold(f32::MIN, |a, &v| a.max(v));
    if hi <= lo {
        return (0.0, lo);
    }
    let nmax_f = f32::from(nmax);
    let sse = |scale: f32, min: f32| -> f32 {
        x.iter()
            .map(|&v| {
                let q = code_affine(v, scale, min, nmax);
                let e = scale * f32::from(q) + min - v;
                e * e
            })
            .sum()
    };
    let mut best = ((hi - lo) / nmax_f, lo);
    let mut best_err = sse(best.0, best.1);
    for i in -STEPS..=STEPS {
        let scale = (hi - lo) / (nmax_f + 0.1 * i as f32);
        if scale <= 0.0 {
            continue;
        }
        // Least-squares (scale, min) for the codes this candidate picks.
        let codes: Vec<f32> = x
            .iter()
            .map(|&v| f32::from(code_affine(v, scale, lo, nmax)))
            .collect();
        let n = x.len() as f32;
        let (sq, sx, sqq, sqx) = codes.iter().zip(x).fold(
            (0.0f32, 0.0f32, 0.0f32, 0.0f32),
            |(sq, sx, sqq, sqx), (&q, &v)| (sq + q, sx + v, sqq + q * q, sqx + q * v),
        );
        let det = n * sqq - sq * sq;
        if det <= 0.0 {
            continue;
        }
        let mut s = (n * sqx - sq * sx) / det;
        let mut m = (sqq * sx - sq * sqx) / det;
        if m > 0.0 {
            // The format cannot offset upwards: refit the scale with min 0.
            m = 0.0;
            s = sqx / sqq;
        }
        for (scale, min) in [(scale, lo), (s, m)] {
            if scale > 0.0 && scale.is_finite() && min.is_finite() {
                let err = sse(scale, min);
                if err < best_err {
                    best = (scale, min);
                    best_err = err;
                }
            }
        }
    }
    best
}

fn code_affine(v: f32, scale: f32, min: f32, nmax: u8) -> u8 {
    if scale <= 0.0 {
        return 0;
    }
    nearest_int((v - min) / scale).clamp(0, i32::from(nmax)) as u8
}

/// Quantizes the sub-block scales and mins to `levels` (63 for 6 bits, 15
/// for 4) against f16 super-block scales. Returns `(d, dmin, scales, mins)`
/// with `d`, `dmin` already rounded to f16.
fn quantize_sub_scales<const N: usize>(
    sub: &[(f32, f32); N],
    levels: f32,
) -> (f16, f16, [u8; N], [u8; N]) {
    let max_scale = sub.iter().fold(0.0f32, |a, s| a.max(s.0));
    let max_neg_min = sub.iter().fold(0.0f32, |a, s| a.max(-s.1));
    let to_code = |v: f32, unit: f32| -> u8 {
        if unit > 0.0 {
            nearest_int(v / unit).clamp(0, levels as i32) as u8
        } else {
            0
        }
    };
    let d = f16::from_f32(max_scale / levels);
    let dmin = f16::from_f32(max_neg_min / levels);
    let scales = sub.map(|s| to_code(s.0, d.to_f32()));
    let mins = sub.map(|s| to_code(-s.1, dmin.to_f32()));
    (d, dmin, scales, mins)
}

/// Codes of all 256 weights against the decoder's scales, for Q4_K/Q5_K.
fn k4_codes(
    x: &[f32; QK_K],
    d: f16,
    dmin: f16,
    scales: &[u8; 8],
    mins: &[u8; 8],
    nmax: u8,
) -> [u8; QK_K] {
    std::array::from_fn(|e| {
        let dl = d.to_f32() * f32::from(scales[e / 32]);
        let ml = dmin.to_f32() * f32::from(mins[e / 32]);
        code_affine(x[e], dl, -ml, nmax)
    })
}

fn k4_sub_blocks(x: &[f32; QK_K], nmax: u8) -> [(f32, f32); 8] {
    std::array::from_fn(|i| affine_scale_min(&x[32 * i..32 * (i + 1)], nmax))
}

/// Low nibbles in the Q4_K/Q5_K `qs` order (see `k_nibble`).
fn pack_k_nibbles(codes: &[u8; QK_K]) -> [u8; QK_K / 2] {
    std::array::from_fn(|b| {
        let (chunk, l) = (b / 32, b % 32);
        (codes[64 * chunk + l] & 0x0F) | ((codes[64 * chunk + 32 + l] & 0x0F) << 4)
    })
}

pub(super) fn quantize_q4k(x: &[f32; QK_K]) -> Option<BlockQ4K> {
    let (d, dmin, scales, mins) = quantize_sub_scales(&k4_sub_blocks(x, 15), 63.0);
    let codes = k4_codes(x, d, dmin, &scales, &mins, 15);
    Some(BlockQ4K {
        d,
        dmin,
        scales: pack_k4_scales(&scales, &mins),
        qs: pack_k_nibbles(&codes),
    })
}

pub(super) fn quantize_q5k(x: &[f32; QK_K]) -> Option<BlockQ5K> {
    let (d, dmin, scales, mins) = quantize_sub_scales(&k4_sub_blocks(x, 31), 63.0);
    let codes = k4_codes(x, d, dmin, &scales, &mins, 31);
    let qh = std::array::from_fn(|l| {
        (0..8).fold(0u8, |acc, g| acc | (((codes[32 * g + l] >> 4) & 1) << g))
    });
    Some(BlockQ5K {
        d,
        dmin,
        scales: pack_k4_scales(&scales, &mins),
        qh,
        qs: pack_k_nibbles(&codes),
    })
}

/// Best symmetric scale with `x ≈ scale * q`, `q` in `-half..half`.
fn symmetric_scale(x: &[f32], half: i32) -> f32 {
    let peak = signed_absmax(x);
    if peak == 0.0 {
        return 0.0;
    }
    let sse = |scale: f32| -> f32 {
        x.iter()
            .map(|&v| {
                let e = scale * f32::from(code_symmetric(v, scale, half)) - v;
                e * e
            })
            .sum()
    };
    // The peak maps to -half (the side with one more code), as in Q4_0.
    let h = half as f32;
    let mut best = peak / -h;
    let mut best_err = sse(best);
    for i in -STEPS..=STEPS {
        // Steps of 1/320 of the code range, as many either way.
        let scale = peak / -(h + h / 320.0 * i as f32);
        let (sqx, sqq) = x.iter().fold((0.0f32, 0.0f32), |(sqx, sqq), &v| {
            let q = f32::from(code_symmetric(v, scale, half));
            (sqx + q * v, sqq + q * q)
        });
        let refit = if sqq > 0.0 { sqx / sqq } else { scale };
        for s in [scale, refit] {
            let err = sse(s);
            if s != 0.0 && s.is_finite() && err < best_err {
                best = s;
                best_err = err;
            }
        }
    }
    best
}

fn code_symmetric(v: f32, scale: f32, half: i32) -> i8 {
    if scale == 0.0 {
        return 0;
    }
    nearest_int(v / scale).clamp(-half, half - 1) as i8
}

pub(super) fn quantize_q6k(x: &[f32; QK_K]) -> Option<BlockQ6K> {
    let sub: [f32; 16] = std::array::from_fn(|i| symmetric_scale(&x[16 * i..16 * (i + 1)], 32));
    let peak = signed_absmax(&sub);
    // The largest sub-scale maps to -128 so all of the i8 range is usable.
    let (d, scales) = if peak == 0.0 {
        (f16::ZERO, [0i8; 16])
    } else {
        let iscale = -128.0 / peak;
        let d = f16::from_f32(1.0 / iscale);
        let scales = sub.map(|s| nearest_int(iscale * s).clamp(-128, 127) as i8);
        (d, scales)
    };
    let codes: [u8; QK_K] = std::array::from_fn(|e| {
        let dl = d.to_f32() * f32::from(scales[e / 16]);
        (code_symmetric(x[e], dl, 32) + 32) as u8
    });
    let mut ql = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 4];
    for (e, &c) in codes.iter().enumerate() {
        let (half, r) = (e / 128, e % 128);
        let (quarter, l) = (r / 32, r % 32);
        let byte = 64 * half + l + 32 * (quarter % 2);
        ql[byte] |= if quarter < 2 {
            c & 0x0F
        } else {
            (c & 0x0F) << 4
        };
        qh[32 * half + l] |= (c >> 4) << (2 * quarter);
    }
    Some(BlockQ6K { ql, qh, scales, d })
}

/// The 2-bit fields of 256 codes in the Q2_K/Q3_K `qs` layout: weight `e`
/// in byte `32 * (e / 128) + e % 32` at bit `2 * ((e % 128) / 32)`.
fn pack_two_bit(codes: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for (e, &c) in codes.iter().enumerate() {
        qs[32 * (e / 128) + e % 32] |= (c & 3) << (2 * ((e % 128) / 32));
    }
    qs
}

pub(super) fn quantize_q2k(x: &[f32; QK_K]) -> Option<BlockQ2K> {
    let sub: [(f32, f32); 16] =
        std::array::from_fn(|i| affine_scale_min(&x[16 * i..16 * (i + 1)], 3));
    let (d, dmin, scales, mins) = quantize_sub_scales(&sub, 15.0);
    let codes: [u8; QK_K] = std::array::from_fn(|e| {
        let dl = d.to_f32() * f32::from(scales[e / 16]);
        let ml = dmin.to_f32() * f32::from(mins[e / 16]);
        code_affine(x[e], dl, -ml, 3)
    });
    Some(BlockQ2K {
        scales: std::array::from_fn(|i| scales[i] | (mins[i] << 4)),
        qs: pack_two_bit(&codes),
        d,
        dmin,
    })
}

pub(super) fn quantize_q3k(x: &[f32; QK_K]) -> Option<BlockQ3K> {
    let sub: [f32; 16] = std::array::from_fn(|i| symmetric_scale(&x[16 * i..16 * (i + 1)], 4));
    // Sub-scales are 6-bit signed multiples (-32..=31) of one f16 scale:
    // the largest-magnitude one maps to -32.
    let d = f16::from_f32(signed_absmax(&sub) / -32.0);
    let dv = d.to_f32();
    let scales: [i8; 16] = sub.map(|s| {
        if dv == 0.0 {
            0
        } else {
            nearest_int(s / dv).clamp(-32, 31) as i8
        }
    });
    // Stored codes u = q + 4 in 0..8: 2 low bits in qs, bit 2 in hmask.
    let codes: [u8; QK_K] = std::array::from_fn(|e| {
        let dl = dv * f32::from(scales[e / 16]);
        (code_symmetric(x[e], dl, 4) + 4) as u8
    });
    let mut hmask = [0u8; QK_K / 8];
    for (e, &u) in codes.iter().enumerate() {
        hmask[e % 32] |= (u >> 2) << (e / 32);
    }
    let stored = scales.map(|s| (s + 32) as u8);
    let mut packed = [0u8; 12];
    for (k, &s) in stored.iter().enumerate() {
        packed[k % 8] |= (s & 0x0F) << (4 * (k / 8));
        packed[8 + k % 4] |= (s >> 4) << (2 * (k / 4));
    }
    Some(BlockQ3K {
        hmask,
        qs: pack_two_bit(&codes),
        scales: packed,
        d,
    })
}
