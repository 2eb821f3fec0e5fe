//! Arbitrary bytes into the GGUF parser, `describe`, and the CPU
//! dequantizer for every tensor. Any panic, abort or runaway allocation is a
//! bug: hostile files must come back as `GgufParseError`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlx_native::formats::describe;
use mlx_native::GgufFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = GgufFile::from_slice(data) {
        let _ = describe(&file);
        for t in file.tensors() {
            let _ = file.load_tensor_f32(&t.name);
        }
    }
});
