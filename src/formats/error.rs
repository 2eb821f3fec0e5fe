//! Why a GGUF file was rejected or a metadata lookup failed.

/// A GGUF file could not be parsed, or a value asked of it is missing or of
/// another type. Every variant names the key, tensor or byte offset at fault.
#[derive(Debug, thiserror::Error)]
pub enum GgufParseError {
    #[error("gguf: bad magic {found:02x?} (expected \"GGUF\"): not a GGUF file")]
    BadMagic { found: Vec<u8> },

    #[error("gguf: unsupported version {0} (this reader supports 2 and 3)")]
    UnsupportedVersion(u32),

    #[error("gguf: big-endian GGUF files are not supported")]
    BigEndian,

    #[error(
        "gguf: truncated: {what} at byte {offset} needs {needed} bytes but only {remaining} remain"
    )]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        remaining: u64,
    },

    #[error("gguf: {what} count {count} at byte {offset} cannot fit in the {remaining} bytes that remain")]
    CountTooLarge {
        what: String,
        count: u64,
        offset: u64,
        remaining: u64,
    },

    #[error("gguf: metadata holds more than {max} values (at key '{key}')")]
    TooManyValues { key: String, max: u64 },

    #[error("gguf: key '{key}' has unknown value type id {type_id}")]
    UnknownValueType { key: String, type_id: u32 },

    #[error("gguf: key '{key}' nests arrays deeper than {max} levels")]
    NestingTooDeep { key: String, max: usize },

    #[error("gguf: {what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },

    #[error("gguf: key '{key}' has bool byte {value}, expected 0 or 1")]
    InvalidBool { key: String, value: u8 },

    #[error("gguf: duplicate metadata key '{0}'")]
    DuplicateKey(String),

    #[error("gguf: duplicate tensor name '{0}'")]
    DuplicateTensor(String),

    #[error("gguf: general.alignment {0} is not a power of two")]
    BadAlignment(u64),

    #[error("gguf: tensor '{tensor}' has unknown or unsupported ggml type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },

    #[error("gguf: tensor '{tensor}': {msg}")]
    BadShape { tensor: String, msg: String },

    #[error(
        "gguf: tensor '{tensor}' offset {offset} is not a multiple of the alignment {alignment}"
    )]
    Misaligned {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error("gguf: tensor '{tensor}' data bytes {start}..{end} lie past the end of the file ({file_len} bytes)")]
    DataOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error("gguf: tensors '{first}' and '{second}' overlap in the data section")]
    Overlap { first: String, second: String },

    #[error("gguf: missing metadata key '{0}'")]
    MissingKey(String),

    #[error("gguf: metadata key '{key}' is {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },

    #[error("gguf: no tensor named '{0}'")]
    TensorNotFound(String),

    #[error("gguf: cannot read '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("gguf writer: {0}")]
    Writer(String),
}
