//! CPU dequantization against blocks dequantized by the `gguf` Python
//! package (scripts/gen_ggml_fixtures.py).
//!
//! Expected to match exactly: both sides convert the f16 scales to f32 and
//! then evaluate the same f32 expression, `(d * sc) * q - (dmin * m)`, in
//! the same order, with no fused multiply-add (numpy never fuses; Rust does
//! not contract `a * b + c`). Any difference means a wrong bit or order.

use mlx_native::formats::{dequantize, dequantize_to_vec};
use mlx_native::GgmlType;

use super::{fixture_path, floats, from_hex};

fn fixtures() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixture_path("blocks.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["types"].as_array().unwrap().clone()
}

#[test]
fn dequantize_matches_gguf_python_for_every_type() {
    let fixtures = fixtures();
    let mut seen = Vec::new();
    for f in &fixtures {
        let ty = GgmlType::from_name(f["type"].as_str().unwrap()).unwrap();
        assert_eq!(f["id"].as_u64().unwrap(), u64::from(ty.id()));
        assert_eq!(f["type_size"].as_u64().unwrap(), ty.type_size() as u64);
        let bytes = from_hex(f["blocks_hex"].as_str().unwrap());
        let expected = floats(&f["dequantized"]);
        // Poisoned output: an element the dequantizer forgets stays NaN.
        let mut got = vec![f32::NAN; expected.len()];
        dequantize(ty, &bytes, &mut got).unwrap();
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(
                g.to_bits(),
                e.to_bits(),
                "{ty} element {i}: got {g}, gguf says {e}"
            );
        }
        seen.push(ty);
    }
    for ty in GgmlType::ALL {
        assert!(seen.contains(&ty), "no fixture for {ty}");
    }
}

#[test]
fn dequantize_rejects_partial_blocks_and_wrong_output_size() {
    let bytes = vec![0u8; 143];
    assert!(dequantize_to_vec(GgmlType::Q4_K, &bytes).is_err());
    let bytes = vec![0u8; 144];
    let mut out = vec![0.0f32; 255];
    let err = dequantize(GgmlType::Q4_K, &bytes, &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("dequantize"), "{err}");
}
