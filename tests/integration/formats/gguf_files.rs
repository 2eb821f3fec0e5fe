//! GGUF writer → reader round trips, and reading a file made by the `gguf`
//! Python package.

use mlx_native::formats::{describe, GgufValueType};
use mlx_native::{GgmlType, GgufFile, GgufValue, GgufWriter, MlxError};

use super::{fixture_path, floats, Rng};
use crate::harness::random_tensor_bytes;

fn every_value_type() -> Vec<(&'static str, GgufValue)> {
    vec![
        ("t.u8", GgufValue::U8(250)),
        ("t.i8", GgufValue::I8(-7)),
        ("t.u16", GgufValue::U16(65000)),
        ("t.i16", GgufValue::I16(-32000)),
        ("t.u32", GgufValue::U32(4_000_000_000)),
        ("t.i32", GgufValue::I32(-5)),
        ("t.f32", GgufValue::F32(1.5e-3)),
        ("t.bool", GgufValue::Bool(true)),
        ("t.string", GgufValue::String("ünïcode ✓".into())),
        ("t.u64", GgufValue::U64(u64::MAX - 1)),
        ("t.i64", GgufValue::I64(i64::MIN)),
        ("t.f64", GgufValue::F64(-2.25e300)),
        ("t.str_array", GgufValue::string_array(["<s>", "</s>", ""])),
        (
            "t.empty_array",
            GgufValue::Array {
                elem_type: GgufValueType::F32,
                values: vec![],
            },
        ),
        (
            "t.nested",
            GgufValue::Array {
                elem_type: GgufValueType::Array,
                values: vec![
                    GgufValue::Array {
                        elem_type: GgufValueType::U8,
                        values: vec![GgufValue::U8(1)],
                    },
                    GgufValue::Array {
                        elem_type: GgufValueType::String,
                        values: vec![GgufValue::String("x".into())],
                    },
                ],
            },
        ),
    ]
}

#[test]
fn writer_reader_round_trip_every_metadata_and_tensor_type() {
    for (version, alignment) in [(3, 32), (2, 64), (3, 1)] {
        let mut rng = Rng::new(42 + u64::from(version) + u64::from(alignment));
        let mut w = GgufWriter::new();
        w.set_version(version).unwrap();
        if alignment != 32 {
            w.set_alignment(alignment).unwrap();
        }
        for (k, v) in every_value_type() {
            w.add_metadata(k, v).unwrap();
        }
        let mut written = Vec::new();
        for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
            let dims = vec![
                ty.block_size() as u64 * (1 + i as u64 % 3),
                3,
                1 + i as u64 % 2,
            ];
            let n: u64 = dims.iter().product();
            let bytes = random_tensor_bytes(ty, n as usize, &mut rng);
            let name = format!("blk.{i}.{}", ty.name().to_lowercase());
            w.add_tensor(&name, ty, &dims, bytes.clone()).unwrap();
            written.push((name, ty, dims, bytes));
        }
        let file = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
        assert_eq!(file.version(), version);
        assert_eq!(file.alignment(), u64::from(alignment));
        for (k, v) in every_value_type() {
            assert_eq!(file.get(k), Some(&v), "{k}");
        }
        assert_eq!(file.tensors().len(), written.len());
        for (info, (name, ty, dims, bytes)) in file.tensors().iter().zip(&written) {
            assert_eq!(&info.name, name);
            assert_eq!(info.ggml_type, *ty);
            assert_eq!(&info.dims, dims);
            assert_eq!(info.offset % u64::from(alignment), 0);
            assert_eq!(file.tensor_data(name).unwrap(), bytes.as_slice());
            let values = file.load_tensor_f32(name).unwrap();
            assert_eq!(values.len() as u64, info.n_elements);
            assert!(values.iter().all(|v| v.is_finite()), "{name}");
        }
    }
}

#[test]
fn typed_getters_convert_or_name_the_key() {
    let mut w = GgufWriter::new();
    for (k, v) in every_value_type() {
        w.add_metadata(k, v).unwrap();
    }
    let file = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(file.get_u32("t.u8").unwrap(), 250);
    assert_eq!(file.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(file.get_i64("t.i64").unwrap(), i64::MIN);
    assert_eq!(file.get_u64("t.u64").unwrap(), u64::MAX - 1);
    assert_eq!(file.get_f32("t.f32").unwrap(), 1.5e-3);
    assert!(file.get_bool("t.bool").unwrap());
    assert_eq!(file.get_str("t.string").unwrap(), "ünïcode ✓");
    assert_eq!(
        file.get_str_array("t.str_array").unwrap(),
        ["<s>", "</s>", ""]
    );
    assert_eq!(file.get_array("t.nested").unwrap().len(), 2);

    let err = file.get_u32("t.i8").unwrap_err().to_string();
    assert!(
        err.contains("'t.i8'") && err.contains("expected u32"),
        "{err}"
    );
    let err = file.get_u32("t.u64").unwrap_err().to_string();
    assert!(err.contains("'t.u64'"), "{err}");
    let err = file.get_str("t.u8").unwrap_err().to_string();
    assert!(
        err.contains("'t.u8'") && err.contains("expected string"),
        "{err}"
    );
    let err = file.get_f32("no.such.key").unwrap_err().to_string();
    assert!(err.contains("missing metadata key 'no.such.key'"), "{err}");
    assert!(matches!(file.tensor_data("nope"), Err(MlxError::Gguf(_))));
}

#[test]
fn writer_rejects_invalid_input() {
    let mut w = GgufWriter::new();
    w.add_metadata("a", GgufValue::U8(1)).unwrap();
    assert!(w.add_metadata("a", GgufValue::U8(2)).is_err());
    let mixed = GgufValue::Array {
        elem_type: GgufValueType::U8,
        values: vec![GgufValue::I8(1)],
    };
    assert!(w.add_metadata("mixed", mixed).is_err());
    assert!(w
        .add_metadata("general.alignment", GgufValue::U64(32))
        .is_err());
    assert!(w.set_alignment(48).is_err());
    assert!(w.set_version(1).is_err());
    assert!(w
        .add_tensor("t", GgmlType::Q4_0, &[33], vec![0; 18])
        .is_err());
    assert!(w
        .add_tensor("t", GgmlType::Q4_0, &[32], vec![0; 17])
        .is_err());
    assert!(w
        .add_tensor("t", GgmlType::F32, &[1, 1, 1, 1, 1], vec![0; 4])
        .is_err());
    w.add_tensor("t", GgmlType::F32, &[1], vec![0; 4]).unwrap();
    assert!(w.add_tensor("t", GgmlType::F32, &[1], vec![0; 4]).is_err());
}

#[test]
fn reads_the_gguf_python_file_by_mmap() {
    let file = GgufFile::open(fixture_path("small.gguf")).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.get_str("general.architecture").unwrap(), "testarch");
    assert_eq!(file.get("test.u8"), Some(&GgufValue::U8(200)));
    assert_eq!(file.get("test.i8"), Some(&GgufValue::I8(-100)));
    assert_eq!(file.get("test.u16"), Some(&GgufValue::U16(60000)));
    assert_eq!(file.get("test.i16"), Some(&GgufValue::I16(-30000)));
    assert_eq!(file.get("test.u32"), Some(&GgufValue::U32(4_000_000_000)));
    assert_eq!(file.get("test.i32"), Some(&GgufValue::I32(-2_000_000_000)));
    assert_eq!(file.get("test.f32"), Some(&GgufValue::F32(0.15625)));
    assert_eq!(file.get("test.u64"), Some(&GgufValue::U64((1 << 63) + 5)));
    assert_eq!(file.get("test.i64"), Some(&GgufValue::I64(-(1 << 62))));
    assert_eq!(
        file.get("test.f64"),
        Some(&GgufValue::F64(std::f64::consts::PI))
    );
    assert_eq!(file.get("test.bool"), Some(&GgufValue::Bool(true)));
    assert_eq!(file.get_str("test.string").unwrap(), "héllo gguf");
    let ints: Vec<_> = file
        .get_array("test.int_array")
        .unwrap()
        .iter()
        .map(|v| v.as_integer().unwrap())
        .collect();
    assert_eq!(ints, [1, -2, 3]);
    assert_eq!(
        file.get_array("test.float_array").unwrap(),
        &[GgufValue::F32(0.5), GgufValue::F32(-1.25)]
    );
    assert_eq!(
        file.get_str_array("test.str_array").unwrap(),
        ["a", "bc", ""]
    );
    let nested = file.get_array("test.nested_array").unwrap();
    assert_eq!(nested.len(), 2);
    assert!(
        matches!(&nested[0], GgufValue::Array { elem_type: GgufValueType::I32, values } if values.len() == 2)
    );

    let text = std::fs::read_to_string(fixture_path("small_gguf_expected.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tensors = expected["tensors"].as_array().unwrap();
    assert_eq!(file.tensors().len(), tensors.len());
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let info = file.tensor_info(name).unwrap();
        assert_eq!(info.ggml_type.name(), t["type"].as_str().unwrap());
        let dims: Vec<u64> = t["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(info.dims, dims, "{name}");
        let got = file.load_tensor_f32(name).unwrap();
        let want = floats(&t["values"]);
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{name}[{i}]: {g} vs {w}");
        }
    }

    let text = describe(&file);
    assert!(text.contains("GGUF v3"), "{text}");
    assert!(
        text.contains("test.str_array") && text.contains("tensor.q4_k") && text.contains("Q4_K"),
        "{text}"
    );
    assert!(text.contains("[256, 2]"), "{text}");
}

#[test]
fn describe_abbreviates_long_arrays_and_strings() {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "tokenizer.ggml.tokens",
        GgufValue::string_array((0..1000).map(|i| format!("tok{i}"))),
    )
    .unwrap();
    w.add_metadata(
        "tokenizer.chat_template",
        GgufValue::String("x".repeat(5000)),
    )
    .unwrap();
    let file = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let text = describe(&file);
    assert!(text.contains("tok7") && !text.contains("tok8\""), "{text}");
    assert!(text.contains("992 more"), "{text}");
    assert!(text.len() < 2000, "describe output is {} bytes", text.len());
}
