//! The fuzz target's work (parse, describe, dequantize every tensor) on a
//! few thousand mutated seeds, so stable-toolchain CI covers it too; plus
//! inputs the fuzzer found, kept as regressions.

use mlx_native::{GgmlType, GgufValue, GgufWriter};

use super::{exercise_parser, Rng};

fn seed_files() -> Vec<Vec<u8>> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", GgufValue::String("llama".into()))
        .unwrap();
    w.add_metadata("v", GgufValue::string_array(["a", "b"]))
        .unwrap();
    w.add_metadata("n", GgufValue::U32(7)).unwrap();
    let mut rng = Rng::new(5);
    for ty in [GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16] {
        let n = ty.block_size() * 2;
        let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        w.add_tensor_f32(ty.name(), ty, &[n as u64], &x).unwrap();
    }
    let mut seeds = vec![w.to_bytes().unwrap()];
    seeds.push(std::fs::read(super::fixture_path("small.gguf")).unwrap());
    seeds
}

#[test]
fn mutated_seeds_never_panic() {
    let mut rng = Rng::new(0xF022);
    for seed in seed_files() {
        for _ in 0..2500 {
            let mut bytes = seed.clone();
            // 1–8 mutations: random byte, random u64 (lengths, counts,
            // offsets), or truncation.
            for _ in 0..1 + rng.below(8) {
                let pos = rng.below(bytes.len() as u64) as usize;
                match rng.below(4) {
                    0 | 1 => bytes[pos] = rng.next_u64() as u8,
                    2 if pos + 8 <= bytes.len() => {
                        let v = match rng.below(3) {
                            0 => rng.next_u64(),
                            1 => rng.below(1 << 16),
                            _ => u64::MAX - rng.below(64),
                        };
                        bytes[pos..pos + 8].copy_from_slice(&v.to_le_bytes());
                    }
                    _ => bytes.truncate(pos),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            exercise_parser(&bytes);
        }
    }
}
