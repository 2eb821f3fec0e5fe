//! Parsing the GGUF header, metadata and tensor infos from bytes.
//!
//! Layout (GGUF spec, little endian): magic `GGUF`, u32 version, u64 tensor
//! count, u64 metadata count, the metadata `(string key, u32 type, value)`,
//! the tensor infos `(string name, u32 n_dims, u64 dims[n_dims], u32 type,
//! u64 offset)`, padding to `general.alignment` (default 32), then the tensor
//! data; each offset is relative to the data start and aligned.
//!
//! Nothing here trusts a count or length: every allocation is bounded by the
//! bytes left in the input, so a 100-byte file cannot ask for terabytes.

use super::value::{GgufValue, GgufValueType};
use crate::formats::{GgmlType, GgufParseError};

type Result<T> = std::result::Result<T, GgufParseError>;

pub(super) const MAGIC: &[u8; 4] = b"GGUF";
pub(super) const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's GGML_MAX_DIMS.
pub(super) const MAX_DIMS: u32 = 4;
/// Arrays of arrays are legal; this bounds the recursion.
const MAX_ARRAY_NESTING: usize = 8;
/// Decoded metadata values in one file. A one-byte u8 element in the file
/// becomes a 32-byte `GgufValue`, so the count, not only the byte size, must
/// be bounded; real vocabularies hold a few hundred thousand values.
pub(super) const MAX_METADATA_VALUES: u64 = 1 << 24;

/// Everything before the tensor data.
pub(super) struct Header {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<RawTensorInfo>,
    /// Offset of the first byte after the tensor infos.
    pub infos_end: u64,
}

/// A tensor info as stored, before its placement is checked.
pub(super) struct RawTensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub offset: u64,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// Metadata values still allowed (see [`MAX_METADATA_VALUES`]).
    values_left: u64,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.data.len() - self.pos.min(self.data.len())) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let truncated = || GgufParseError::Truncated {
            what: what.to_string(),
            offset: self.pos as u64,
            needed: n,
            remaining: self.remaining(),
        };
        let n = usize::try_from(n).map_err(|_| truncated())?;
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let bytes = self.data.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items of at least `min_item_bytes` each, checked against
    /// the bytes that remain.
    fn count(&mut self, min_item_bytes: u64, what: &str) -> Result<usize> {
        let offset = self.pos as u64;
        let count = self.u64(what)?;
        let remaining = self.remaining();
        let too_large = || GgufParseError::CountTooLarge {
            what: what.to_string(),
            count,
            offset,
            remaining,
        };
        let needed = count
            .checked_mul(min_item_bytes.max(1))
            .ok_or_else(too_large)?;
        if needed > remaining {
            return Err(too_large());
        }
        usize::try_from(count).map_err(|_| too_large())
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let offset = self.pos as u64;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufParseError::InvalidUtf8 {
            what: what.to_string(),
            offset,
        })
    }

    fn value_type(&mut self, key: &str) -> Result<GgufValueType> {
        let type_id = self.u32("metadata value type")?;
        GgufValueType::from_id(type_id).ok_or_else(|| GgufParseError::UnknownValueType {
            key: key.to_string(),
            type_id,
        })
    }

    fn value(&mut self, ty: GgufValueType, key: &str, depth: usize) -> Result<GgufValue> {
        self.values_left =
            self.values_left
                .checked_sub(1)
                .ok_or_else(|| GgufParseError::TooManyValues {
                    key: key.to_string(),
                    max: MAX_METADATA_VALUES,
                })?;
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(self.u8(key)?),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.array(key)?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.array(key)?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.array(key)?)),
            GgufValueType::U32 => GgufValue::U32(self.u32(key)?),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.array(key)?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.array(key)?)),
            GgufValueType::U64 => GgufValue::U64(self.u64(key)?),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.array(key)?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.array(key)?)),
            GgufValueType::Bool => match self.u8(key)? {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                value => {
                    return Err(GgufParseError::InvalidBool {
                        key: key.to_string(),
                        value,
                    })
                }
            },
            GgufValueType::String => GgufValue::String(self.string(key)?),
            GgufValueType::Array => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(GgufParseError::NestingTooDeep {
                        key: key.to_string(),
                        max: MAX_ARRAY_NESTING,
                    });
                }
                let elem_type = self.value_type(key)?;
                let count = self.count(elem_type.min_encoded_size(), key)?;
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    values.push(self.value(elem_type, key, depth + 1)?);
                }
                GgufValue::Array { elem_type, values }
            }
        })
    }

    fn tensor_info(&mut self) -> Result<RawTensorInfo> {
        let name = self.string("tensor name")?;
        let n_dims = self.u32("tensor dimension count")?;
        if n_dims > MAX_DIMS {
            return Err(GgufParseError::BadShape {
                tensor: name,
                msg: format!("{n_dims} dimensions, at most {MAX_DIMS} are allowed"),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64("tensor dimension")?);
        }
        let type_id = self.u32("tensor type")?;
        let ggml_type =
            GgmlType::from_id(type_id).ok_or_else(|| GgufParseError::UnknownTensorType {
                tensor: name.clone(),
                type_id,
            })?;
        let offset = self.u64("tensor offset")?;
        Ok(RawTensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        })
    }
}

/// Parses everything up to the tensor data.
pub(super) fn parse_header(data: &[u8]) -> Result<Header> {
    let mut cur = Cursor {
        data,
        pos: 0,
        values_left: MAX_METADATA_VALUES,
    };
    let magic = data.get(..4).unwrap_or(data);
    if magic != MAGIC {
        return Err(GgufParseError::BadMagic {
            found: magic.to_vec(),
        });
    }
    cur.pos = 4;
    let version = cur.u32("version")?;
    match version {
        2 | 3 => {}
        // A big-endian v2/v3 file reads as 0x0200_0000 / 0x0300_0000 here.
        0x0200_0000 | 0x0300_0000 => return Err(GgufParseError::BigEndian),
        other => return Err(GgufParseError::UnsupportedVersion(other)),
    }
    // Smallest encodings: a tensor info with no dims is name length (8) +
    // n_dims (4) + type (4) + offset (8); a metadata pair is key length (8) +
    // type (4) + a one-byte value.
    let n_tensors = cur.u64("tensor count")?;
    let n_kv = cur.count(13, "metadata")?;
    let mut metadata: Vec<(String, GgufValue)> = Vec::with_capacity(n_kv);
    for _ in 0..n_kv {
        let key = cur.string("metadata key")?;
        let ty = cur.value_type(&key)?;
        let value = cur.value(ty, &key, 0)?;
        metadata.push((key, value));
    }
    let too_many = GgufParseError::CountTooLarge {
        what: "tensor".to_string(),
        count: n_tensors,
        offset: 8,
        remaining: cur.remaining(),
    };
    if n_tensors
        .checked_mul(24)
        .is_none_or(|b| b > cur.remaining())
    {
        return Err(too_many);
    }
    let mut tensors = Vec::with_capacity(usize::try_from(n_tensors).map_err(|_| too_many)?);
    for _ in 0..n_tensors {
        tensors.push(cur.tensor_info()?);
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        infos_end: cur.pos as u64,
    })
}
