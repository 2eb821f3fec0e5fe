//! Weight file formats: GGUF files and GGML quantization blocks.
//!
//! - [`GgmlType`] names a tensor element type; its block struct (in
//!   [`blocks`]) is the one definition of the bytes, mirrored for CUDA by
//!   `ggml_blocks.cuh`.
//! - [`dequantize`] / [`quantize`] are the CPU reference conversions.
//! - [`GgufFile`] reads GGUF v2/v3 files (memory-mapped or from bytes) and
//!   rejects hostile input with a [`GgufParseError`]; [`GgufWriter`] writes
//!   them.

pub mod blocks;
mod error;
mod ggml_type;
mod gguf;
pub mod inspect;
mod quants;

/// The CUDA mirror of the block structs, registered with every kernel
/// registry as `ggml_blocks.cuh`.
pub const GGML_BLOCKS_CUH: &str = include_str!("ggml_blocks.cuh");

pub use blocks::{block_layout_table, BLOCK_LAYOUT_TABLE_LEN};
pub use error::GgufParseError;
pub use ggml_type::{BlockVisitor, GgmlType};
pub use gguf::{GgufFile, GgufTensorInfo, GgufValue, GgufValueType, GgufWriter};
pub use inspect::describe;
pub use quants::{dequantize, dequantize_to_vec, quantize, quantize_to_vec, GgmlBlock};
