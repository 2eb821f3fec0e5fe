//! Corrupted and hostile GGUF input: each must give the right
//! `GgufParseError`, never a panic or a huge allocation.

use mlx_native::formats::GgufParseError as E;
use mlx_native::{GgmlType, GgufFile, GgufValue, GgufWriter, MlxError};

/// A GGUF file assembled byte by byte, so fields can hold any value.
struct Raw {
    version: u32,
    n_tensors: u64,
    n_kv: u64,
    body: Vec<u8>,
}

impl Raw {
    fn new(n_tensors: u64, n_kv: u64) -> Raw {
        Raw {
            version: 3,
            n_tensors,
            n_kv,
            body: Vec::new(),
        }
    }
    fn u32(mut self, v: u32) -> Raw {
        self.body.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Raw {
        self.body.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Raw {
        self.body.extend_from_slice(b);
        self
    }
    fn str(self, s: &str) -> Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A tensor info: name, dims, type id, offset.
    fn tensor(self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Raw {
        let mut r = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(type_id).u64(offset)
    }
    fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.body);
        // Room for tensor data, aligned.
        out.resize(out.len().div_ceil(32) * 32 + 4096, 0);
        out
    }
}

fn parse_err(bytes: &[u8]) -> E {
    match GgufFile::from_slice(bytes) {
        Err(MlxError::Gguf(e)) => e,
        Err(other) => panic!("expected a GgufParseError, got {other}"),
        Ok(_) => panic!("hostile input parsed"),
    }
}

#[test]
fn rejects_bad_magic_and_versions() {
    assert!(matches!(parse_err(b""), E::BadMagic { .. }));
    assert!(matches!(parse_err(b"GGU"), E::BadMagic { .. }));
    assert!(matches!(parse_err(b"GGML\x03\0\0\0"), E::BadMagic { .. }));
    for (version, ok) in [(1u32, false), (4, false), (2, true), (3, true)] {
        let mut raw = Raw::new(0, 0);
        raw.version = version;
        let result = GgufFile::from_slice(&raw.build());
        if ok {
            assert_eq!(result.unwrap().version(), version);
        } else {
            assert!(matches!(parse_err(&raw.build()), E::UnsupportedVersion(v) if v == version));
        }
    }
    let mut raw = Raw::new(0, 0);
    raw.version = 3u32.swap_bytes();
    assert!(matches!(parse_err(&raw.build()), E::BigEndian));
    let err = parse_err(b"GGUF\x03\0\0").to_string();
    assert!(
        err.contains("truncated") && err.contains("version"),
        "{err}"
    );
}

#[test]
fn rejects_counts_and_lengths_larger_than_the_file() {
    assert!(matches!(
        parse_err(&Raw::new(0, u64::MAX).build()),
        E::CountTooLarge { .. }
    ));
    assert!(matches!(
        parse_err(&Raw::new(1 << 40, 0).build()),
        E::CountTooLarge { .. }
    ));
    assert!(matches!(
        parse_err(&Raw::new(u64::MAX, 0).build()),
        E::CountTooLarge { .. }
    ));
    // A key whose length is 2^62.
    let raw = Raw::new(0, 1).u64(1 << 62).bytes(b"k");
    assert!(matches!(parse_err(&raw.build()), E::Truncated { .. }));
    // An array of 2^60 u64 values; and of 2^61 strings.
    let raw = Raw::new(0, 1).str("a").u32(9).u32(10).u64(1 << 60);
    assert!(matches!(parse_err(&raw.build()), E::CountTooLarge { .. }));
    let raw = Raw::new(0, 1).str("a").u32(9).u32(8).u64(1 << 61);
    let err = parse_err(&raw.build());
    assert!(
        matches!(&err, E::CountTooLarge { what, .. } if what == "a"),
        "{err}"
    );
    // A string value whose length runs past the end.
    let raw = Raw::new(0, 1).str("a").u32(8).u64(10_000_000);
    assert!(matches!(parse_err(&raw.build()), E::Truncated { .. }));
}

#[test]
fn rejects_bad_metadata_values() {
    let raw = Raw::new(0, 1).str("key.x").u32(13).u32(0);
    assert!(
        matches!(parse_err(&raw.build()), E::UnknownValueType { key, type_id: 13 } if key == "key.x")
    );
    let raw = Raw::new(0, 1).str("b").u32(7).bytes(&[2]);
    assert!(matches!(
        parse_err(&raw.build()),
        E::InvalidBool { value: 2, .. }
    ));
    let raw = Raw::new(0, 1)
        .u64(2)
        .bytes(&[0xff, 0xfe])
        .u32(0)
        .bytes(&[0]);
    assert!(matches!(parse_err(&raw.build()), E::InvalidUtf8 { .. }));
    let raw = Raw::new(0, 2)
        .str("k")
        .u32(0)
        .bytes(&[1])
        .str("k")
        .u32(0)
        .bytes(&[2]);
    assert!(matches!(parse_err(&raw.build()), E::DuplicateKey(k) if k == "k"));
    // Arrays of arrays of arrays ... 100 deep, one element each.
    let mut raw = Raw::new(0, 1).str("deep");
    raw = raw.u32(9);
    for _ in 0..100 {
        raw = raw.u32(9).u64(1);
    }
    assert!(matches!(parse_err(&raw.build()), E::NestingTooDeep { .. }));
}

#[test]
fn rejects_bad_alignment() {
    for bad in [0u32, 48, 3] {
        let raw = Raw::new(0, 1).str("general.alignment").u32(4).u32(bad);
        assert!(matches!(parse_err(&raw.build()), E::BadAlignment(a) if a == u64::from(bad)));
    }
    let raw = Raw::new(0, 1).str("general.alignment").u32(8).str("32");
    assert!(matches!(parse_err(&raw.build()), E::WrongType { .. }));
}

#[test]
fn rejects_bad_tensor_infos() {
    let q4 = GgmlType::Q4_0.id();
    let raw = Raw::new(1, 0).tensor("w", &[32], 16, 0);
    assert!(
        matches!(parse_err(&raw.build()), E::UnknownTensorType { tensor, type_id: 16 } if tensor == "w")
    );
    let raw = Raw::new(1, 0).tensor("w", &[1; 5], 0, 0);
    assert!(matches!(parse_err(&raw.build()), E::BadShape { .. }));
    let raw = Raw::new(1, 0).tensor("w", &[1 << 32, 1 << 32, 1 << 32], 0, 0);
    let err = parse_err(&raw.build());
    assert!(
        matches!(&err, E::BadShape { msg, .. } if msg.contains("overflow")),
        "{err}"
    );
    let raw = Raw::new(1, 0).tensor("w", &[33], q4, 0);
    let err = parse_err(&raw.build());
    assert!(
        matches!(&err, E::BadShape { msg, .. } if msg.contains("block size")),
        "{err}"
    );
    let raw = Raw::new(1, 0).tensor("w", &[32], q4, 8);
    assert!(matches!(
        parse_err(&raw.build()),
        E::Misaligned { offset: 8, .. }
    ));
    let raw = Raw::new(1, 0).tensor("w", &[32], q4, 1 << 20);
    assert!(matches!(parse_err(&raw.build()), E::DataOutOfBounds { .. }));
    let raw = Raw::new(1, 0).tensor("w", &[32], q4, u64::MAX - 31);
    assert!(matches!(parse_err(&raw.build()), E::DataOutOfBounds { .. }));
    // 2^40 f32 elements: fits u64 but not the file.
    let raw = Raw::new(1, 0).tensor("w", &[1 << 20, 1 << 20], 0, 0);
    assert!(matches!(parse_err(&raw.build()), E::DataOutOfBounds { .. }));
    let raw = Raw::new(2, 0)
        .tensor("a", &[64], 0, 0)
        .tensor("b", &[8], 0, 224);
    assert!(
        matches!(parse_err(&raw.build()), E::Overlap { first, second } if first == "a" && second == "b")
    );
    let raw = Raw::new(2, 0)
        .tensor("a", &[8], 0, 0)
        .tensor("a", &[8], 0, 32);
    assert!(matches!(parse_err(&raw.build()), E::DuplicateTensor(n) if n == "a"));
    // Tensor infos counted but missing.
    let raw = Raw::new(3, 0).tensor("a", &[8], 0, 0);
    let mut bytes = raw.build();
    bytes.truncate(24 + 8 + 1 + 4 + 8 + 4 + 8 + 40);
    assert!(GgufFile::from_slice(&bytes).is_err());
}

#[test]
fn every_truncation_of_a_valid_file_is_an_error() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.name", GgufValue::String("t".into()))
        .unwrap();
    w.add_metadata("a", GgufValue::string_array(["x", "yy"]))
        .unwrap();
    w.add_tensor_f32("w", GgmlType::Q8_0, &[64, 2], &[0.5; 128])
        .unwrap();
    w.add_tensor_f32("v", GgmlType::F32, &[3], &[1.0, 2.0, 3.0])
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    let full = GgufFile::from_slice(&bytes).unwrap();
    let data_end = full.data_offset()
        + full
            .tensors()
            .iter()
            .map(|t| t.offset + t.n_bytes)
            .max()
            .unwrap();
    for len in 0..data_end as usize {
        assert!(
            GgufFile::from_slice(&bytes[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
    assert_eq!(full.load_tensor_f32("v").unwrap(), [1.0, 2.0, 3.0]);
}

#[test]
fn rejects_more_metadata_values_than_the_cap() {
    // 2^24 + 1 one-byte values would decode to over 512 MiB of GgufValue.
    let n = (1u64 << 24) + 1;
    let raw = Raw::new(0, 1)
        .str("many")
        .u32(9)
        .u32(0)
        .u64(n)
        .bytes(&vec![0u8; n as usize]);
    assert!(matches!(parse_err(&raw.build()), E::TooManyValues { .. }));
}
