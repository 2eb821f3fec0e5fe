//! Matrix products with GGML block-quantized weights:
//! `output[m, n] = input[m, k] · dequant(weight[n, k])ᵀ`.
//!
//! The weight is `n` rows of `k` elements in one [`GgmlType`], stored as raw
//! GGML blocks (row `j` starts at byte `j · row_bytes(k)`), exactly as a
//! GGUF file holds it and [`GgufFile::load_tensor`](crate::GgufFile::load_tensor)
//! loads it: a `U8` buffer of `n · row_bytes(k)` bytes, or for the float
//! types F32/F16/BF16 also a buffer of that dtype. A weight may be a view
//! into a larger allocation.
//!
//! Input and output are both F32 or both BF16; sums are accumulated in f32.
//!
//! Three CUDA paths (see [`QuantizedMatmulPath`]): a vector kernel for one
//! input row of the most used types, a decode mat-vec for a few input rows,
//! both streaming every weight byte once, and a tensor-core path for many
//! rows.
//!
//! The vector path (m = 1; Q4_0, Q8_0, Q4_K, Q5_K, Q6_K) multiplies
//! integers, like llama.cpp's MMVQ kernels: it quantizes the input to 8
//! bits per 32 elements — scale `d = amax / 127` of the 32 elements, codes
//! `q = round(x · (1 / d))` (f32 operations, ties to even) — and takes exact
//! integer dot products of those codes with the weight codes, scaled in
//! f32 once per 16 or 32 elements. Each input element thus moves by up to
//! `d / 2`, 1/254 of the largest magnitude in its 32 elements, so an
//! output's error is about `Σ |w| · d / 2` over k in the worst case (a
//! relative error near 2⁻⁹ of `Σ |x·w|` for inputs of similar magnitude,
//! much less on average as the roundings cancel), plus f32 summation. A
//! run of 32 elements whose largest magnitude is below 127 · 2⁻¹²⁶ (where
//! `d` has no finite f32 inverse) counts as zeros; a NaN or infinite input
//! makes every output NaN.
//!
//! The decode path multiplies on tensor cores, with f16 operands: each
//! weight is dequantized to f16 (K-quant sub-block scales and mins are
//! rounded to f16 first) and the input is rounded to f16, so each product
//! carries a relative error of a few 2⁻¹¹, and **inputs must lie within
//! the f16 range (|x| < 65504)**: a larger input becomes ±inf there. The
//! prefill path rounds both operands to bf16 (relative error a few 2⁻⁹,
//! the f32 range); sums are f32 on every path.
//!
//! [`quantized_matmul_ggml`] picks the path (see
//! [`QuantizedMatmulPath::resolve`]); tests and benchmarks force one with
//! [`quantized_matmul_ggml_via`]. The CPU backend has one
//! path: dequantize each weight row (the reference of
//! [`dequantize`](crate::formats::dequantize)) and take f32 dot products.

mod cpu;
pub(crate) mod cuda;
mod decode;
mod prefill;
mod vector;

use crate::formats::GgmlType;
use crate::ops::validate;
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

const OP: &str = "quantized_matmul_ggml";

/// The shape and weight type of a quantized matrix product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlQuantizedMatmulParams {
    /// Input rows (tokens).
    pub m: usize,
    /// Output columns: weight rows.
    pub n: usize,
    /// Inner dimension: weight row length, a multiple of the block size.
    pub k: usize,
    /// The weight's GGML type.
    pub ggml_type: GgmlType,
}

/// Which CUDA kernel family computes the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantizedMatmulPath {
    /// The library chooses from `m` and the weight type (see
    /// [`QuantizedMatmulPath::resolve`]).
    #[default]
    Auto,
    /// The integer mat-vec kernels for one input row, which quantize the
    /// input to 8 bits per 32 elements (see the module docs). Valid for
    /// `m = 1` and the types of [`QuantizedMatmulPath::takes_vector`].
    Vector,
    /// The mat-vec kernels: each weight byte is read once for all `m` rows.
    /// Valid for `m ≤ DECODE_MAX_ROWS`.
    Decode,
    /// The tensor-core kernels, for any `m`.
    Prefill,
}

/// The most input rows the decode path takes.
pub const DECODE_MAX_ROWS: usize = 8;

impl QuantizedMatmulPath {
    /// The path `Auto` resolves to for `m` rows of a `ty` weight: the
    /// vector path for one row of a type it takes; the decode path up to
    /// [`DECODE_MAX_ROWS`] rows, except for F32 and BF16 weights, whose
    /// values may lie outside the decode path's f16 range; the prefill path
    /// otherwise.
    pub fn resolve(self, m: usize, ty: GgmlType) -> QuantizedMatmulPath {
        let f16_safe = !matches!(ty, GgmlType::F32 | GgmlType::BF16);
        match self {
            QuantizedMatmulPath::Auto if m == 1 && Self::takes_vector(ty) => {
                QuantizedMatmulPath::Vector
            }
            QuantizedMatmulPath::Auto if m <= DECODE_MAX_ROWS && f16_safe => {
                QuantizedMatmulPath::Decode
            }
            QuantizedMatmulPath::Auto => QuantizedMatmulPath::Prefill,
            path => path,
        }
    }

    /// Whether the vector path has kernels for `ty` weights.
    pub fn takes_vector(ty: GgmlType) -> bool {
        vector::TYPES.contains(&ty)
    }
}

/// The CUDA kernel that `path` (resolved) runs for a `ty` weight with `io`
/// input and output; benchmarks read its attributes from the registry.
#[doc(hidden)]
pub fn kernel_name(path: QuantizedMatmulPath, ty: GgmlType, io: DType) -> String {
    let family = match path {
        QuantizedMatmulPath::Prefill => "prefill",
        QuantizedMatmulPath::Vector => "vector",
        _ => "decode",
    };
    cuda::kernel_name(family, ty, io)
}

/// `output = input · dequant(weight)ᵀ`, on the path the library chooses.
pub fn quantized_matmul_ggml(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    params: &GgmlQuantizedMatmulParams,
) -> Result<()> {
    quantized_matmul_ggml_via(
        enc,
        input,
        weight,
        output,
        params,
        QuantizedMatmulPath::Auto,
    )
}

/// [`quantized_matmul_ggml`] on a chosen CUDA path (the CPU backend has one
/// path and ignores the choice, after checking it is valid for `m`).
pub fn quantized_matmul_ggml_via(
    enc: &mut CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    params: &GgmlQuantizedMatmulParams,
    path: QuantizedMatmulPath,
) -> Result<()> {
    validate(enc, input, weight, output, params, path)?;
    let path = path.resolve(params.m, params.ggml_type);
    enc.encode_op(
        OP,
        || cpu::quantized_matmul(input, weight, output, params),
        |enc| cuda::quantized_matmul(enc, input, weight, output, params, path),
    )
}

fn validate(
    enc: &CommandEncoder,
    input: &MlxBuffer,
    weight: &MlxBuffer,
    output: &MlxBuffer,
    p: &GgmlQuantizedMatmulParams,
    path: QuantizedMatmulPath,
) -> Result<()> {
    validate::same_device(
        OP,
        enc,
        &[("input", input), ("weight", weight), ("output", output)],
    )?;
    validate::dtype_in(OP, "input", input, &[DType::F32, DType::BF16])?;
    validate::dtype_is(OP, "output", output, input.dtype())?;
    let weight_dtypes: &[DType] = match p.ggml_type {
        GgmlType::F32 => &[DType::U8, DType::F32],
        GgmlType::F16 => &[DType::U8, DType::F16],
        GgmlType::BF16 => &[DType::U8, DType::BF16],
        _ => &[DType::U8],
    };
    validate::dtype_in(OP, "weight", weight, weight_dtypes)?;
    if p.m == 0 || p.n == 0 || p.k == 0 {
        return Err(MlxError::shape(
            OP,
            format!("m, n and k must be positive; got {p:?}"),
        ));
    }
    if path == QuantizedMatmulPath::Decode && p.m > DECODE_MAX_ROWS {
        return Err(MlxError::invalid(
            OP,
            format!(
                "the decode path takes at most {DECODE_MAX_ROWS} rows; m = {}",
                p.m
            ),
        ));
    }
    if path == QuantizedMatmulPath::Vector {
        if p.m != 1 {
            return Err(MlxError::invalid(
                OP,
                format!("the vector path takes one input row; m = {}", p.m),
            ));
        }
        if !QuantizedMatmulPath::takes_vector(p.ggml_type) {
            return Err(MlxError::unsupported(
                OP,
                format!("the vector path has no {} kernels", p.ggml_type.name()),
            ));
        }
    }
    let block = p.ggml_type.block_size();
    if p.k % block != 0 {
        return Err(MlxError::shape(
            OP,
            format!(
                "k = {} is not a multiple of the {} block size {block}",
                p.k,
                p.ggml_type.name()
            ),
        ));
    }
    let product = |a: usize, b: usize, what: &str| {
        a.checked_mul(b)
            .ok_or_else(|| MlxError::shape(OP, format!("{what} overflows: {a} × {b}")))
    };
    validate::element_count(OP, "input", input, product(p.m, p.k, "m × k")?)?;
    validate::element_count(OP, "output", output, product(p.m, p.n, "m × n")?)?;
    // Blocks are read in 2-byte units (4 for F32 weights): every block
    // boundary of a tensor stored from an aligned start qualifies.
    let weight_align = if p.ggml_type == GgmlType::F32 { 4 } else { 2 };
    if weight.byte_offset() % weight_align != 0 {
        return Err(MlxError::invalid(
            OP,
            format!(
                "the weight view starts at byte offset {}; {} weights need a multiple of {weight_align}",
                weight.byte_offset(),
                p.ggml_type.name()
            ),
        ));
    }
    let weight_bytes = product(p.n, p.ggml_type.row_bytes(p.k as u64)?, "n × row bytes")?;
    if weight.byte_len() != weight_bytes {
        return Err(MlxError::shape(
            OP,
            format!(
                "weight holds {} bytes; {} rows of {} {} elements take {weight_bytes}",
                weight.byte_len(),
                p.n,
                p.k,
                p.ggml_type.name()
            ),
        ));
    }
    if output.overlaps(input) || output.overlaps(weight) {
        return Err(MlxError::invalid(OP, "the output overlaps an input"));
    }
    Ok(())
}
