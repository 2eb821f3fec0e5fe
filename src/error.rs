//! The one error type of the crate.
//!
//! Every message starts with the operation that failed, so a user reading
//! `add: dtype mismatch: b is F16, expected F32` knows where to look.

use crate::DType;

/// Result alias used throughout the public API.
pub type Result<T, E = MlxError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MlxError {
    #[error("{op}: invalid argument: {msg}")]
    InvalidArgument { op: &'static str, msg: String },

    #[error("{op}: dtype mismatch: {what} is {got}, expected {expected}")]
    DTypeMismatch {
        op: &'static str,
        what: String,
        expected: String,
        got: DType,
    },

    #[error("{op}: shape mismatch: {msg}")]
    ShapeMismatch { op: &'static str, msg: String },

    #[error("{op}: out of bounds: {msg}")]
    OutOfBounds { op: &'static str, msg: String },

    #[error("{op}: buffers live on different devices: {msg}")]
    DeviceMismatch { op: &'static str, msg: String },

    #[error("{op}: not supported: {msg}")]
    Unsupported { op: &'static str, msg: String },

    #[error("{op}: CUDA error: {msg}")]
    Cuda { op: &'static str, msg: String },

    #[error("no CUDA device available: {0}")]
    CudaUnavailable(String),

    #[error("kernel registry: no kernel named '{0}' is registered")]
    KernelNotFound(String),

    #[error("kernel registry: compiling module '{module}' (kernels: {kernels}) failed:\n{log}")]
    KernelCompile {
        module: String,
        kernels: String,
        log: String,
    },

    #[error("{op}: I/O error on '{path}': {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("encoder worker: {0}")]
    Worker(String),

    #[error(transparent)]
    Gguf(#[from] crate::formats::GgufParseError),
}

impl MlxError {
    pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        MlxError::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        MlxError::ShapeMismatch {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn bounds(op: &'static str, msg: impl Into<String>) -> Self {
        MlxError::OutOfBounds {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn unsupported(op: &'static str, msg: impl Into<String>) -> Self {
        MlxError::Unsupported {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn cuda(op: &'static str, msg: impl std::fmt::Display) -> Self {
        MlxError::Cuda {
            op,
            msg: msg.to_string(),
        }
    }
}
