//! Weight file formats: GGUF and GGML quantization blocks.

/// A GGUF file could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("gguf: {0}")]
pub struct GgufParseError(pub String);
