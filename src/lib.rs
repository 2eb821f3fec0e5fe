//! mlx-native: GPU compute kernels for LLM inference.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod dtype;
mod error;
pub mod formats;

pub use dtype::{DType, Element};
pub use error::{MlxError, Result};
pub use formats::{GgmlType, GgufFile, GgufParseError, GgufValue, GgufWriter};
