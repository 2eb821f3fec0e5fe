//! Tests of GGML block formats and GGUF files (CPU only).

mod dequant_fixtures;
mod device_load;
mod fuzz_smoke;
mod ggml_types;
mod gguf_files;
mod gguf_hostile;
mod quantize;

use std::path::PathBuf;

/// SplitMix64: a tiny seeded generator so tests are reproducible without a
/// `rand` dependency.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Roughly standard normal (sum of uniforms; tails are not needed).
    pub fn normal(&mut self) -> f32 {
        (0..12).map(|_| self.uniform()).sum::<f32>() - 6.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

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
