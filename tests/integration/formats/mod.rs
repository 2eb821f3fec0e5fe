//! Tests of GGML block formats and GGUF files (CPU only).

mod dequant_fixtures;
mod device_load;
mod fuzz_smoke;
mod ggml_types;
mod gguf_files;
mod gguf_hostile;
mod quantize;

use std::path::PathBuf;

pub use crate::harness::Rng;

/// A fixture file: under the source tree this binary was built from, or,
/// for a test binary carried to another machine with the repository, under
/// the nearest `tests/fixtures/ggml` above the working directory.
pub fn fixture_path(name: &str) -> PathBuf {
    let rel = PathBuf::from("tests/fixtures/ggml").join(name);
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&rel);
    if built.exists() {
        return built;
    }
    let cwd = std::env::current_dir().unwrap();
    cwd.ancestors()
        .map(|d| d.join(&rel))
        .find(|p| p.exists())
        .unwrap_or(built)
}

pub fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The same work as the fuzz target: parse, describe, dequantize every
/// tensor. Must never panic, whatever the bytes.
pub fn exercise_parser(bytes: &[u8]) {
    if let Ok(file) = mlx_native::GgufFile::from_slice(bytes) {
        let _ = mlx_native::formats::describe(&file);
        for t in file.tensors() {
            let _ = file.load_tensor_f32(&t.name);
        }
    }
}
