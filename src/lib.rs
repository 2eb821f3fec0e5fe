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

// Shim until the op layer lands: the lead merges this into the real `ops`.
mod ops {
    pub mod gdn {
        pub mod reference;
    }
}
#[doc(hidden)]
pub use ops::gdn::reference as gdn_reference;
