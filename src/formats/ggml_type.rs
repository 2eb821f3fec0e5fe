//! The GGML tensor types this crate reads, and the one place that maps a
//! [`GgmlType`] value to the Rust block struct that implements it.

use std::fmt;

use super::blocks::*;
use super::quants::GgmlBlock;
use crate::{MlxError, Result};

/// A GGML tensor element type. The discriminant is the type id stored in
/// GGUF files (`ggml_type` in ggml.h).
///
/// The names keep GGML's spelling (`Q4_0`, `Q4_K`) because that is what
/// every model file, tool and paper calls them.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    IQ4_NL = 20,
    IQ4_XS = 23,
    BF16 = 30,
}

/// Something computed from a block type alone; see [`GgmlType::visit`].
///
/// This is the crate's single dispatch from a run-time [`GgmlType`] to a
/// compile-time block type: sizes, names, dequantization and quantization all
/// go through it, so adding a type means one new arm in one `match`.
pub trait BlockVisitor {
    type Output;
    fn visit<B: GgmlBlock>(self) -> Self::Output;
}

impl GgmlType {
    /// Every supported type, in id order.
    pub const ALL: [GgmlType; 15] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::BF16,
    ];

    /// Runs `v` with the block struct of this type.
    pub fn visit<V: BlockVisitor>(self, v: V) -> V::Output {
        match self {
            GgmlType::F32 => v.visit::<f32>(),
            GgmlType::F16 => v.visit::<half::f16>(),
            GgmlType::BF16 => v.visit::<half::bf16>(),
            GgmlType::Q4_0 => v.visit::<BlockQ4_0>(),
            GgmlType::Q4_1 => v.visit::<BlockQ4_1>(),
            GgmlType::Q5_0 => v.visit::<BlockQ5_0>(),
            GgmlType::Q5_1 => v.visit::<BlockQ5_1>(),
            GgmlType::Q8_0 => v.visit::<BlockQ8_0>(),
            GgmlType::Q2_K => v.visit::<BlockQ2K>(),
            GgmlType::Q3_K => v.visit::<BlockQ3K>(),
            GgmlType::Q4_K => v.visit::<BlockQ4K>(),
            GgmlType::Q5_K => v.visit::<BlockQ5K>(),
            GgmlType::Q6_K => v.visit::<BlockQ6K>(),
            GgmlType::IQ4_NL => v.visit::<BlockIQ4NL>(),
            GgmlType::IQ4_XS => v.visit::<BlockIQ4XS>(),
        }
    }

    /// The type id stored in GGUF files.
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// The type with GGUF id `id`, or `None` for ids this crate does not
    /// support (including valid GGML types such as IQ2_XXS).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The type named `name` (GGML spelling, case-insensitive: `q4_k`).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        GgmlType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Elements per block (1 for F32/F16/BF16, 32 or 256 for quantized).
    pub fn block_size(self) -> usize {
        struct V;
        impl BlockVisitor for V {
            type Output = usize;
            fn visit<B: GgmlBlock>(self) -> usize {
                B::ELEMENTS
            }
        }
        self.visit(V)
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        struct V;
        impl BlockVisitor for V {
            type Output = usize;
            fn visit<B: GgmlBlock>(self) -> usize {
                std::mem::size_of::<B>()
            }
        }
        self.visit(V)
    }

    /// GGML's name for the type (`"Q4_K"`).
    pub fn name(self) -> &'static str {
        struct V;
        impl BlockVisitor for V {
            type Output = &'static str;
            fn visit<B: GgmlBlock>(self) -> &'static str {
                B::NAME
            }
        }
        self.visit(V)
    }

    /// Bytes taken by `n_elements` consecutive elements of this type.
    ///
    /// Fails when `n_elements` is not a whole number of blocks or the size
    /// overflows `usize`.
    pub fn row_bytes(self, n_elements: u64) -> Result<usize> {
        let block = self.block_size() as u64;
        if n_elements % block != 0 {
            return Err(MlxError::invalid(
                "ggml row_bytes",
                format!(
                    "{} elements is not a multiple of the {} block size {block}",
                    n_elements,
                    self.name()
                ),
            ));
        }
        (n_elements / block)
            .checked_mul(self.type_size() as u64)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| {
                MlxError::invalid(
                    "ggml row_bytes",
                    format!("{n_elements} elements of {} overflow usize", self.name()),
                )
            })
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
