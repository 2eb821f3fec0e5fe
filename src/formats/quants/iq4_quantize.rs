//! Quantizers for IQ4_NL and IQ4_XS: each weight is a scale times the
//! nearest of the 16 non-uniform levels [`IQ4_NL_VALUES`]. Our own: a small
//! scale search, not a copy of ggml's (whose output is not reproduced byte
//! for byte).
//!
//! For a group of 32 weights the scale is searched around
//! `peak / IQ4_NL_VALUES[0]` (the largest-magnitude weight on the widest
//! level): for each candidate the codes are re-chosen and the scale refit
//! by least squares, and the candidate with the least squared error wins.

use half::f16;

use super::signed_absmax;
use crate::formats::blocks::{BlockIQ4NL, BlockIQ4XS, IQ4_NL_VALUES, QK, QK_K};

/// Index of the level nearest to `v` (the levels ascend).
fn nearest_level(v: f32) -> u8 {
    let above = IQ4_NL_VALUES.partition_point(|&l| f32::from(l) < v);
    match above {
        0 => 0,
        16 => 15,
        i => {
            let (lo, hi) = (f32::from(IQ4_NL_VALUES[i - 1]), f32::from(IQ4_NL_VALUES[i]));
            if v - lo <= hi - v {
                (i - 1) as u8
            } else {
                i as u8
            }
        }
    }
}

fn level(code: u8) -> f32 {
    f32::from(IQ4_NL_VALUES[usize::from(code)])
}

/// Codes of `x` against scale `d` (all level 1 ≈ 0 when `d` is 0).
fn codes_for(x: &[f32], d: f32) -> Vec<u8> {
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    x.iter().map(|&v| nearest_level(v * id)).collect()
}

/// The least-squares scale of a group and its error.
fn fit(x: &[f32], codes: &[u8]) -> (f32, f32) {
    let (sxl, sll) = x
        .iter()
        .zip(codes)
        .fold((0.0f32, 0.0f32), |(sxl, sll), (&v, &c)| {
            (sxl + v * level(c), sll + level(c) * level(c))
        });
    let d = if sll > 0.0 { sxl / sll } else { 0.0 };
    let err = x
        .iter()
        .zip(codes)
        .map(|(&v, &c)| (v - d * level(c)).powi(2))
        .sum();
    (d, err)
}

/// The best scale of a group of weights (signed; 0 for an all-zero group).
fn group_scale(x: &[f32]) -> f32 {
    let peak = signed_absmax(x);
    if peak == 0.0 {
        return 0.0;
    }
    let widest = f32::from(IQ4_NL_VALUES[0]);
    let mut best = (0.0f32, f32::INFINITY);
    for step in -9..=9 {
        // Scales from about 0.75× to 1.25× of the peak-on-widest one.
        let d0 = peak / (widest + 3.0 * step as f32);
        let (d, err) = fit(x, &codes_for(x, d0));
        if err < best.1 {
            best = (d, err);
        }
    }
    best.0
}

pub(super) fn quantize_iq4nl(x: &[f32; QK]) -> BlockIQ4NL {
    let d = f16::from_f32(group_scale(x));
    let codes = codes_for(x, d.to_f32());
    BlockIQ4NL {
        d,
        qs: std::array::from_fn(|j| codes[j] | (codes[j + QK / 2] << 4)),
    }
}

pub(super) fn quantize_iq4xs(x: &[f32; QK_K]) -> BlockIQ4XS {
    let groups: [f32; 8] = std::array::from_fn(|g| group_scale(&x[32 * g..32 * (g + 1)]));
    // Group scales are 6-bit signed multiples (-32..=31) of the super-block
    // scale: put the largest-magnitude one on -32.
    let peak = signed_absmax(&groups);
    let d = f16::from_f32(peak / -32.0);
    let dv = d.to_f32();
    let ls: [u8; 8] = groups.map(|s| {
        let l = if dv == 0.0 {
            0
        } else {
            (s / dv).round() as i32
        };
        (l.clamp(-32, 31) + 32) as u8
    });
    let mut qs = [0u8; QK_K / 2];
    for g in 0..8 {
        let dl = dv * (f32::from(ls[g]) - 32.0);
        let codes = codes_for(&x[32 * g..32 * (g + 1)], dl);
        for j in 0..16 {
            qs[16 * g + j] = codes[j] | (codes[j + 16] << 4);
        }
    }
    BlockIQ4XS {
        d,
        scales_h: (0..8).fold(0u16, |h, g| h | (u16::from(ls[g] >> 4) << (2 * g))),
        scales_l: std::array::from_fn(|i| (ls[2 * i] & 0x0F) | ((ls[2 * i + 1] & 0x0F) << 4)),
        qs,
    }
}
