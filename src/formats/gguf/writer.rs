//! Writing GGUF files: metadata of every type and tensors of raw blocks.

use std::path::Path;

use super::reader::{DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
use super::value::{GgufValue, GgufValueType};
use crate::formats::{quantize_to_vec, GgmlType, GgufParseError};
use crate::Result;

struct PendingTensor {
    name: String,
    ggml_type: GgmlType,
    dims: Vec<u64>,
    data: Vec<u8>,
}

/// Builds a GGUF file in memory. Keys and tensor names must be unique;
/// tensors are laid out in insertion order, each at an aligned offset.
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

fn writer_error(msg: impl Into<String>) -> crate::MlxError {
    GgufParseError::Writer(msg.into()).into()
}

impl GgufWriter {
    /// A version 3 writer with the default alignment (32).
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Writes version 2 or 3 (the same little-endian layout).
    pub fn set_version(&mut self, version: u32) -> Result<()> {
        if !matches!(version, 2 | 3) {
            return Err(writer_error(format!(
                "version {version} unsupported (2 or 3)"
            )));
        }
        self.version = version;
        Ok(())
    }

    /// Sets the data alignment and records it as `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<()> {
        if !alignment.is_power_of_two() {
            return Err(writer_error(format!(
                "alignment {alignment} is not a power of two"
            )));
        }
        self.alignment = u64::from(alignment);
        self.metadata.retain(|(k, _)| k != "general.alignment");
        self.metadata
            .push(("general.alignment".to_string(), GgufValue::U32(alignment)));
        Ok(())
    }

    /// Adds metadata `key = value`. Arrays must hold only `elem_type` values.
    /// `general.alignment` (a u32) also sets the alignment.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: GgufValue) -> Result<()> {
        let key = key.into();
        if self.metadata.iter().any(|(k, _)| *k == key) {
            return Err(writer_error(format!("duplicate metadata key '{key}'")));
        }
        check_homogeneous(&key, &value)?;
        if key == "general.alignment" {
            return match value {
                GgufValue::U32(a) => self.set_alignment(a),
                other => Err(writer_error(format!(
                    "general.alignment must be a u32, got {}",
                    other.describe_type()
                ))),
            };
        }
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds a tensor of raw GGML blocks; `dims` are fastest-varying first.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ggml_type: GgmlType,
        dims: &[u64],
        data: Vec<u8>,
    ) -> Result<()> {
        let name = name.into();
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(writer_error(format!("duplicate tensor name '{name}'")));
        }
        if dims.len() > MAX_DIMS as usize {
            return Err(writer_error(format!(
                "tensor '{name}' has {} dims, at most {MAX_DIMS}",
                dims.len()
            )));
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| writer_error(format!("tensor '{name}' dims {dims:?} overflow")))?;
        let row = dims.first().copied().unwrap_or(1);
        if row % ggml_type.block_size() as u64 != 0 {
            return Err(writer_error(format!(
                "tensor '{name}': first dimension {row} is not a multiple of the {ggml_type} block size {}",
                ggml_type.block_size()
            )));
        }
        let expected = ggml_type.row_bytes(n_elements)?;
        if data.len() != expected {
            return Err(writer_error(format!(
                "tensor '{name}' has {} bytes, {dims:?} of {ggml_type} needs {expected}",
                data.len()
            )));
        }
        self.tensors.push(PendingTensor {
            name,
            ggml_type,
            dims: dims.to_vec(),
            data,
        });
        Ok(())
    }

    /// Quantizes `values` to `ggml_type` on the CPU and adds the tensor.
    pub fn add_tensor_f32(
        &mut self,
        name: impl Into<String>,
        ggml_type: GgmlType,
        dims: &[u64],
        values: &[f32],
    ) -> Result<()> {
        let data = quantize_to_vec(ggml_type, values)?;
        self.add_tensor(name, ggml_type, dims, data)
    }

    /// The complete file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_string(&mut out, key);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            write_value(&mut out, value);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            write_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = align_up(offset + t.data.len() as u64, self.alignment);
        }
        pad_to(&mut out, self.alignment);
        let data_start = out.len() as u64;
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + off) as usize, 0);
            out.extend_from_slice(&t.data);
        }
        pad_to(&mut out, self.alignment);
        Ok(out)
    }

    /// Writes the file to `path`.
    pub fn write_to_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?).map_err(|source| {
            GgufParseError::Io {
                path: path.display().to_string(),
                source,
            }
            .into()
        })
    }
}

fn align_up(v: u64, alignment: u64) -> u64 {
    v.div_ceil(alignment) * alignment
}

fn pad_to(out: &mut Vec<u8>, alignment: u64) {
    let len = align_up(out.len() as u64, alignment) as usize;
    out.resize(len, 0);
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn check_homogeneous(key: &str, value: &GgufValue) -> Result<()> {
    if let GgufValue::Array { elem_type, values } = value {
        for v in values {
            if v.value_type() != *elem_type {
                return Err(writer_error(format!(
                    "array '{key}' of {elem_type} holds a {}",
                    v.value_type()
                )));
            }
            check_homogeneous(key, v)?;
        }
    }
    Ok(())
}

fn write_value(out: &mut Vec<u8>, value: &GgufValue) {
    match value {
        GgufValue::U8(v) => out.push(*v),
        GgufValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::Bool(v) => out.push(u8::from(*v)),
        GgufValue::String(s) => write_string(out, s),
        GgufValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::Array { elem_type, values } => {
            out.extend_from_slice(&elem_type.id().to_le_bytes());
            out.extend_from_slice(&(values.len() as u64).to_le_bytes());
            for v in values {
                write_value(out, v);
            }
        }
    }
}

// Keep the type list and the writer in step: every value type is writable.
const _: () = assert!(GgufValueType::ALL.len() == 13);
