//! CPU dequantization and quantization of GGML blocks.
//!
//! This is the reference the CUDA kernels are tested against. Every block
//! type implements [`GgmlBlock`]; the public functions here validate sizes
//! and run the per-block code over all blocks with rayon.
//!
//! Float order matters for bit-exact agreement with ggml and the `gguf`
//! Python package: scales are converted f16 → f32 first, then each value is
//! computed as `(d * sc) * q - (dmin * m)` with no fused multiply-add.

mod float;
mod iq4_quantize;
mod kquant_dequant;
mod kquant_quantize;
mod legacy;

use bytemuck::Pod;
use rayon::prelude::*;

use super::ggml_type::{BlockVisitor, GgmlType};
use crate::{MlxError, Result};

/// One GGML block: its type and how to turn it into floats and back.
pub trait GgmlBlock: Pod + Send + Sync {
    /// The GGML type stored as blocks of `Self`.
    const TYPE: GgmlType;
    /// GGML's name for the type.
    const NAME: &'static str;
    /// Elements (weights) per block.
    const ELEMENTS: usize;

    /// Writes the block's `ELEMENTS` values to `out` (`out.len() == ELEMENTS`).
    fn dequantize(&self, out: &mut [f32]);

    /// Encodes `src` (`ELEMENTS` finite values); `None` when `src` has
    /// another length.
    fn quantize(src: &[f32]) -> Option<Self>;
}

/// Blocks per rayon task: large enough that scheduling is noise.
const BLOCKS_PER_TASK: usize = 64;

/// Dequantizes `bytes` (whole blocks of `ty`) into `out`, which must hold
/// exactly `block_size` values per block.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let n_blocks = whole_blocks("dequantize", ty, bytes.len())?;
    expect_len(
        "dequantize",
        ty,
        "output",
        out.len(),
        n_blocks * ty.block_size(),
    )?;

    struct Dequant<'a> {
        bytes: &'a [u8],
        out: &'a mut [f32],
    }
    impl BlockVisitor for Dequant<'_> {
        type Output = ();
        fn visit<B: GgmlBlock>(self) {
            self.bytes
                .par_chunks_exact(std::mem::size_of::<B>())
                .zip(self.out.par_chunks_exact_mut(B::ELEMENTS))
                .with_min_len(BLOCKS_PER_TASK)
                .for_each(|(raw, dst)| {
                    // Unaligned read: tensor data need not be 2-byte aligned
                    // in an in-memory buffer.
                    bytemuck::pod_read_unaligned::<B>(raw).dequantize(dst)
                });
        }
    }
    ty.visit(Dequant { bytes, out });
    Ok(())
}

/// Dequantizes `bytes` (whole blocks of `ty`) into a new vector.
pub fn dequantize_to_vec(ty: GgmlType, bytes: &[u8]) -> Result<Vec<f32>> {
    let n_blocks = whole_blocks("dequantize", ty, bytes.len())?;
    let mut out = vec![0.0f32; n_blocks * ty.block_size()];
    dequantize(ty, bytes, &mut out)?;
    Ok(out)
}

/// Quantizes `src` (a whole number of blocks of finite values) into `out`,
/// which must hold exactly `type_size` bytes per block.
pub fn quantize(ty: GgmlType, src: &[f32], out: &mut [u8]) -> Result<()> {
    if src.len() % ty.block_size() != 0 {
        return Err(MlxError::invalid(
            "quantize",
            format!(
                "{} values is not a multiple of the {ty} block size {}",
                src.len(),
                ty.block_size()
            ),
        ));
    }
    let n_blocks = src.len() / ty.block_size();
    expect_len(
        "quantize",
        ty,
        "output bytes",
        out.len(),
        n_blocks * ty.type_size(),
    )?;
    if let Some(i) = src.iter().position(|v| !v.is_finite()) {
        return Err(MlxError::invalid(
            "quantize",
            format!(
                "input value {i} is not finite ({})",
                src.get(i).copied().unwrap_or(0.0)
            ),
        ));
    }

    struct Quant<'a> {
        src: &'a [f32],
        out: &'a mut [u8],
    }
    impl BlockVisitor for Quant<'_> {
        type Output = ();
        fn visit<B: GgmlBlock>(self) {
            self.src
                .par_chunks_exact(B::ELEMENTS)
                .zip(self.out.par_chunks_exact_mut(std::mem::size_of::<B>()))
                .with_min_len(BLOCKS_PER_TASK)
                .for_each(|(values, dst)| {
                    if let Some(block) = B::quantize(values) {
                        dst.copy_from_slice(bytemuck::bytes_of(&block));
                    }
                });
        }
    }
    ty.visit(Quant { src, out });
    Ok(())
}

/// Quantizes `src` into a new byte vector; see [`quantize`].
pub fn quantize_to_vec(ty: GgmlType, src: &[f32]) -> Result<Vec<u8>> {
    let n_blocks = src.len() / ty.block_size();
    let mut out = vec![0u8; n_blocks * ty.type_size()];
    quantize(ty, src, &mut out)?;
    Ok(out)
}

fn whole_blocks(op: &'static str, ty: GgmlType, n_bytes: usize) -> Result<usize> {
    if n_bytes % ty.type_size() != 0 {
        return Err(MlxError::invalid(
            op,
            format!(
                "{n_bytes} bytes is not a whole number of {ty} blocks of {} bytes",
                ty.type_size()
            ),
        ));
    }
    Ok(n_bytes / ty.type_size())
}

fn expect_len(
    op: &'static str,
    ty: GgmlType,
    what: &str,
    got: usize,
    expected: usize,
) -> Result<()> {
    if got != expected {
        return Err(MlxError::shape(
            op,
            format!("{ty} {what} has {got} elements, expected {expected}"),
        ));
    }
    Ok(())
}

/// The value of largest magnitude, with its sign (the first one on ties).
fn signed_absmax(src: &[f32]) -> f32 {
    src.iter().fold(
        0.0f32,
        |best, &v| if v.abs() > best.abs() { v } else { best },
    )
}

/// Round half away from zero, to an integer (C's `roundf` followed by a
/// cast), as ggml's reference quantizers do.
fn nearest_int(x: f32) -> i32 {
    x.round() as i32
}
