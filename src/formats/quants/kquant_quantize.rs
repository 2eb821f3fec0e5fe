//! Quantizers for Q4_K, Q5_K and Q6_K.
//!
//! Two stages, as the formats demand: first a float scale (and min) per
//! sub-block, chosen by trying a few candidate ranges and refining each by
//! least squares; then those floats are themselves quantized to 6 or 8 bits
//! against one f16 super-block scale, and the weights are re-coded with the
//! scales exactly as the decoder will see them. This is not ggml's search,
//! so bytes differ from ggml's output; the reconstruction error is of the
//! same order (see the round-trip tests).

use half::f16;

use super::kquant_dequant::pack_k4_scales;
use super::{nearest_int, signed_absmax};
use crate::formats::blocks::{BlockQ4K, BlockQ5K, BlockQ6K, QK_K};

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

/// Quantizes the 8 sub-block scales and mins to 6 bits against f16
/// super-block scales. Returns `(d, dmin, scales, mins)` with `d`, `dmin`
/// already rounded to f16.
fn quantize_k4_scales(sub: &[(f32, f32); 8]) -> (f16, f16, [u8; 8], [u8; 8]) {
    let max_scale = sub.iter().fold(0.0f32, |a, s| a.max(s.0));
    let max_neg_min = sub.iter().fold(0.0f32, |a, s| a.max(-s.1));
    let to_6bit = |v: f32, unit: f32| -> u8 {
        if unit > 0.0 {
            nearest_int(v / unit).clamp(0, 63) as u8
        } else {
            0
        }
    };
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_neg_min / 63.0);
    let scales = sub.map(|s| to_6bit(s.0, d.to_f32()));
    let mins = sub.map(|s| to_6bit(-s.1, dmin.to_f32()));
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
    let (d, dmin, scales, mins) = quantize_k4_scales(&k4_sub_blocks(x, 15));
    let codes = k4_codes(x, d, dmin, &scales, &mins, 15);
    Some(BlockQ4K {
        d,
        dmin,
        scales: pack_k4_scales(&scales, &mins),
        qs: pack_k_nibbles(&codes),
    })
}

pub(super) fn quantize_q5k(x: &[f32; QK_K]) -> Option<BlockQ5K> {
    let (d, dmin, scales, mins) = quantize_k4_scales(&k4_sub_blocks(x, 31));
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

/// Best symmetric scale with `x ≈ scale * q`, `q` in `-32..=31`.
fn symmetric_scale(x: &[f32]) -> f32 {
    let peak = signed_absmax(x);
    if peak == 0.0 {
        return 0.0;
    }
    let sse = |scale: f32| -> f32 {
        x.iter()
            .map(|&v| {
                let e = scale * f32::from(code_symmetric(v, scale)) - v;
                e * e
            })
            .sum()
    };
    // The peak maps to -32 (the side with one more code), as in Q4_0.
    let mut best = peak / -32.0;
    let mut best_err = sse(best);
    for i in -STEPS..=STEPS {
        let scale = peak / -(32.0 + 0.1 * i as f32);
        let (sqx, sqq) = x.iter().fold((0.0f32, 0.0f32), |(sqx, sqq), &v| {
            let q = f32::from(code_symmetric(v, scale));
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

fn code_symmetric(v: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        return 0;
    }
    nearest_int(v / scale).clamp(-32, 31) as i8
}

pub(super) fn quantize_q6k(x: &[f32; QK_K]) -> Option<BlockQ6K> {
    let sub: [f32; 16] = std::array::from_fn(|i| symmetric_scale(&x[16 * i..16 * (i + 1)]));
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
        (code_symmetric(x[e], dl) + 32) as u8
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
