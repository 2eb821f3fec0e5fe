//! GGUF files: reading (memory-mapped or from bytes) and writing.

mod load;
mod reader;
mod value;
mod writer;

use std::collections::HashMap;
use std::path::Path;

pub use value::{GgufValue, GgufValueType};
pub use writer::GgufWriter;

use crate::formats::{dequantize_to_vec, GgmlType, GgufParseError};
use crate::Result;
use reader::{RawTensorInfo, DEFAULT_ALIGNMENT};

/// Where a tensor lives in a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Dimensions, fastest-varying first (GGML's `ne[0], ne[1], …`).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
    /// Bytes of tensor data.
    pub n_bytes: u64,
    /// Product of `dims` (1 for a scalar).
    pub n_elements: u64,
}

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file. Metadata and tensor infos are decoded up front;
/// tensor data stays in the map (or buffer) until asked for.
pub struct GgufFile {
    storage: Storage,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, GgufValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let io_err = |source| GgufParseError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        // SAFETY: the map is read-only and private to this value. As with any
        // memory map, another process truncating or rewriting the file while
        // it is open is outside what this library can guard against; model
        // files are not modified while being served.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        GgufFile::from_storage(Storage::Mapped(map))
    }

    /// Parses a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile> {
        GgufFile::from_storage(Storage::Owned(bytes))
    }

    /// Parses a GGUF file held in memory, copying it.
    pub fn from_slice(bytes: &[u8]) -> Result<GgufFile> {
        GgufFile::from_bytes(bytes.to_vec())
    }

    fn from_storage(storage: Storage) -> Result<GgufFile> {
        let bytes = storage.bytes();
        let header = reader::parse_header(bytes)?;
        let mut metadata_index = HashMap::with_capacity(header.metadata.len());
        for (i, (key, _)) in header.metadata.iter().enumerate() {
            if metadata_index.insert(key.clone(), i).is_some() {
                return Err(GgufParseError::DuplicateKey(key.clone()).into());
            }
        }
        let alignment = match metadata_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => {
                let value = header.metadata.get(i).map(|(_, v)| v);
                match value {
                    Some(GgufValue::U32(a)) if a.is_power_of_two() => u64::from(*a),
                    Some(GgufValue::U32(a)) => {
                        return Err(GgufParseError::BadAlignment(u64::from(*a)).into())
                    }
                    other => {
                        return Err(GgufParseError::WrongType {
                            key: "general.alignment".to_string(),
                            expected: "u32",
                            found: other.map_or("nothing".into(), GgufValue::describe_type),
                        }
                        .into())
                    }
                }
            }
        };
        let data_offset = header.infos_end.div_ceil(alignment) * alignment;
        let tensors = place_tensors(header.tensors, alignment, data_offset, bytes.len() as u64)?;
        let mut tensor_index = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if tensor_index.insert(t.name.clone(), i).is_some() {
                return Err(GgufParseError::DuplicateTensor(t.name.clone()).into());
            }
        }
        Ok(GgufFile {
            version: header.version,
            alignment,
            data_offset,
            metadata: header.metadata,
            metadata_index,
            tensors,
            tensor_index,
            storage,
        })
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of tensor data (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Total file size in bytes.
    pub fn file_len(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        let i = *self.metadata_index.get(key)?;
        self.metadata.get(i).map(|(_, v)| v)
    }

    /// The value of `key`, or an error naming the missing key.
    pub fn get_value(&self, key: &str) -> Result<&GgufValue> {
        self.get(key)
            .ok_or_else(|| GgufParseError::MissingKey(key.to_string()).into())
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.get_value(key)? {
            GgufValue::String(s) => Ok(s),
            other => Err(wrong_type(key, "string", other)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.get_value(key)? {
            GgufValue::Bool(b) => Ok(*b),
            other => Err(wrong_type(key, "bool", other)),
        }
    }

    /// An integer of any stored width that fits in `u32` (files disagree on
    /// whether counts are u32 or u64).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_integer(key, "u32")
    }

    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_integer(key, "u64")
    }

    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.get_integer(key, "i32")
    }

    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.get_integer(key, "i64")
    }

    fn get_integer<T: TryFrom<i128>>(&self, key: &str, expected: &'static str) -> Result<T> {
        let value = self.get_value(key)?;
        value
            .as_integer()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| wrong_type(key, expected, value))
    }

    /// An f32, or an f64 narrowed to f32.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        match self.get_value(key)? {
            GgufValue::F32(v) => Ok(*v),
            GgufValue::F64(v) => Ok(*v as f32),
            other => Err(wrong_type(key, "f32", other)),
        }
    }

    pub fn get_f64(&self, key: &str) -> Result<f64> {
        match self.get_value(key)? {
            GgufValue::F32(v) => Ok(f64::from(*v)),
            GgufValue::F64(v) => Ok(*v),
            other => Err(wrong_type(key, "f64", other)),
        }
    }

    /// The elements of an array value.
    pub fn get_array(&self, key: &str) -> Result<&[GgufValue]> {
        match self.get_value(key)? {
            GgufValue::Array { values, .. } => Ok(values),
            other => Err(wrong_type(key, "array", other)),
        }
    }

    /// An array of strings (a tokenizer vocabulary, say).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        match self.get_value(key)? {
            GgufValue::Array {
                elem_type: GgufValueType::String,
                values,
            } => Ok(values
                .iter()
                .filter_map(|v| match v {
                    GgufValue::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect()),
            other => Err(wrong_type(key, "array of string", other)),
        }
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`.
    pub fn tensor_info(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
            .ok_or_else(|| GgufParseError::TensorNotFound(name.to_string()).into())
    }

    /// The raw bytes (GGML blocks) of tensor `name`.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8]> {
        let info = self.tensor_info(name)?;
        // Bounds were checked at parse time; `get` keeps this panic-free.
        let start = self.data_offset + info.offset;
        let range = usize::try_from(start)
            .ok()
            .zip(usize::try_from(start + info.n_bytes).ok());
        range
            .and_then(|(s, e)| self.storage.bytes().get(s..e))
            .ok_or_else(|| {
                GgufParseError::DataOutOfBounds {
                    tensor: name.to_string(),
                    start,
                    end: start + info.n_bytes,
                    file_len: self.file_len(),
                }
                .into()
            })
    }

    /// Tensor `name` dequantized to f32 on the CPU, in GGML element order.
    pub fn load_tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.tensor_info(name)?;
        dequantize_to_vec(info.ggml_type, self.tensor_data(name)?)
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &GgufValue) -> crate::MlxError {
    GgufParseError::WrongType {
        key: key.to_string(),
        expected,
        found: found.describe_type(),
    }
    .into()
}

/// Checks each tensor's shape and placement: whole blocks per row, no
/// overflow, aligned offset, inside the file, no two tensors overlapping.
fn place_tensors(
    raw: Vec<RawTensorInfo>,
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> std::result::Result<Vec<GgufTensorInfo>, GgufParseError> {
    let mut placed = Vec::with_capacity(raw.len());
    for t in raw {
        let bad_shape = |msg: String| GgufParseError::BadShape {
            tensor: t.name.clone(),
            msg,
        };
        // ggml stores dims as int64, so each must fit in i64 too.
        let n_elements = t
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| {
                acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
            })
            .ok_or_else(|| {
                bad_shape(format!(
                    "dimensions {:?} overflow the element count",
                    t.dims
                ))
            })?;
        let row = t.dims.first().copied().unwrap_or(1);
        let block = t.ggml_type.block_size() as u64;
        if row % block != 0 {
            return Err(bad_shape(format!(
                "first dimension {row} is not a multiple of the {} block size {block}",
                t.ggml_type
            )));
        }
        let n_bytes = (n_elements / block)
            .checked_mul(t.ggml_type.type_size() as u64)
            .ok_or_else(|| bad_shape(format!("byte size of {:?} overflows", t.dims)))?;
        if t.offset % alignment != 0 {
            return Err(GgufParseError::Misaligned {
                tensor: t.name,
                offset: t.offset,
                alignment,
            });
        }
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(n_bytes));
        match (start, end) {
            (Some(_), Some(end)) if end <= file_len => {}
            _ => {
                return Err(GgufParseError::DataOutOfBounds {
                    start: data_offset.saturating_add(t.offset),
                    end: data_offset.saturating_add(t.offset).saturating_add(n_bytes),
                    tensor: t.name,
                    file_len,
                })
            }
        }
        placed.push(GgufTensorInfo {
            name: t.name,
            dims: t.dims,
            ggml_type: t.ggml_type,
            offset: t.offset,
            n_bytes,
            n_elements,
        });
    }
    let mut by_offset: Vec<&GgufTensorInfo> = placed.iter().filter(|t| t.n_bytes > 0).collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        if let [a, b] = pair {
            if a.offset + a.n_bytes > b.offset {
                return Err(GgufParseError::Overlap {
                    first: a.name.clone(),
                    second: b.name.clone(),
                });
            }
        }
    }
    Ok(placed)
}
