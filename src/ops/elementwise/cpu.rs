use rayon::prelude::*;

use super::BinaryOp;
use crate::ops::host::{read_f32, write_f32};
use crate::{MlxBuffer, Result};

pub(super) fn binary(op: BinaryOp, a: &MlxBuffer, b: &MlxBuffer, out: &MlxBuffer) -> Result<()> {
    let (av, bv) = (read_f32(a)?, read_f32(b)?);
    let bl = bv.len();
    let r: Vec<f32> = av
        .par_iter()
        .enumerate()
        .map(|(i, &x)| op.apply(x, bv[i % bl]))
        .collect();
    write_f32(out, &r)
}

pub(super) fn scale(a: &MlxBuffer, out: &MlxBuffer, factor: f32) -> Result<()> {
    let r: Vec<f32> = read_f32(a)?.par_iter().map(|&x| x * factor).collect();
    write_f32(out, &r)
}
