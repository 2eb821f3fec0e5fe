#!/usr/bin/env python3
"""Generate GGML block and GGUF fixtures with the `gguf` Python package.

The `gguf` package (gguf-py, from llama.cpp) is the canonical external
implementation the CPU reference is checked against.

Writes to tests/fixtures/ggml/:
  blocks.json   for every GGML type: random valid blocks (hex) and their
                dequantized values; for the types gguf can quantize, input
                floats and gguf's quantized bytes.
  small.gguf    a GGUF v3 file made by gguf.GGUFWriter with metadata of
                several types (incl. arrays) and tensors of several types.
  small_gguf_expected.json   what small.gguf must read back as.

Usage: pip install gguf numpy && python3 scripts/gen_ggml_fixtures.py
Deterministic (seeded); rerunning reproduces the same files for a given
gguf version.
"""
import importlib.metadata
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "ggml")
rng = np.random.default_rng(20240611)

# Byte offsets of the f16 scale fields in each block (the rest of a block is
# codes, which are valid for any bit pattern). Sizes from the GGML spec.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2],
    T.Q6_K: [208], T.IQ4_NL: [0], T.IQ4_XS: [0],
}
TYPES = [T.F32, T.F16, T.BF16] + list(F16_FIELDS)
QUANTIZABLE = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]


def random_blocks(qtype, n_blocks):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == T.F32:
        return rng.standard_normal(n_blocks).astype(np.float32).view(np.uint8)
    if qtype == T.F16:
        return rng.standard_normal(n_blocks).astype(np.float16).view(np.uint8)
    if qtype == T.BF16:
        bits = rng.standard_normal(n_blocks).astype(np.float32).view(np.uint32) >> 16
        return bits.astype(np.uint16).view(np.uint8)
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        # Sensible magnitudes (1e-3 .. 1e-1), both signs for mins/scales.
        mag = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), n_blocks))
        sign = np.where(rng.random(n_blocks) < 0.2, -1.0, 1.0)
        raw[:, off:off + 2] = (mag * sign).astype(np.float16).reshape(-1, 1).view(np.uint8)
    return raw.reshape(-1)


def quantize_inputs(block):
    # Per-block scales spread over decades, plus the edge cases quantizers
    # get wrong: an all-zero block, a constant block, a single spike.
    n = 6
    x = rng.standard_normal((n, block)).astype(np.float32)
    x *= np.exp(rng.uniform(-4, 2, (n, 1))).astype(np.float32)
    x = np.concatenate([x, np.zeros((1, block), np.float32),
                        np.full((1, block), 0.375, np.float32)])
    spike = np.zeros((1, block), np.float32)
    spike[0, block // 3] = -2.5
    return np.concatenate([x, spike]).reshape(-1)


def floats(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def blocks_fixture():
    out = []
    for qtype in TYPES:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        n_blocks = 7 if block > 1 else 64
        raw = random_blocks(qtype, n_blocks)
        entry = {
            "type": qtype.name, "id": int(qtype), "block_size": block, "type_size": size,
            "blocks_hex": raw.tobytes().hex(),
            "dequantized": floats(dequantize(raw, qtype)),
        }
        if qtype in QUANTIZABLE:
            x = quantize_inputs(block) if block > 1 else rng.standard_normal(64).astype(np.float32)
            q = quantize(x.reshape(1, -1), qtype)
            entry["quantize_input"] = floats(x)
            entry["quantized_hex"] = np.asarray(q).view(np.uint8).tobytes().hex()
        out.append(entry)
    return out


def small_gguf():
    path = os.path.join(OUT, "small.gguf")
    w = gguf.GGUFWriter(path, arch="testarch")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.15625)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 3.141592653589793)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo gguf")
    w.add_array("test.int_array", [1, -2, 3])
    w.add_array("test.float_array", [0.5, -1.25])
    w.add_array("test.str_array", ["a", "bc", ""])
    w.add_array("test.nested_array", [[1, 2], [3]])
    expected = []
    shapes = {  # numpy shape (rows, cols); GGUF dims are reversed.
        T.F32: (3, 5), T.F16: (2, 7), T.Q8_0: (2, 64), T.Q4_K: (2, 256), T.Q6_K: (1, 256),
        T.Q4_0: (3, 32), T.BF16: (1, 9),
    }
    for qtype, (rows, cols) in shapes.items():
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = random_blocks(qtype, rows * cols // block).reshape(rows, cols // block * size)
        name = f"tensor.{qtype.name.lower()}"
        if qtype == T.F32:
            w.add_tensor(name, raw.view(np.float32))
        elif qtype == T.F16:
            w.add_tensor(name, raw.view(np.float16))
        else:
            w.add_tensor(name, raw, raw_dtype=qtype)
        expected.append({"name": name, "type": qtype.name, "dims": [cols, rows],
                         "values": floats(dequantize(raw, qtype))})
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "blocks.json"), "w") as f:
        json.dump({"gguf_version": importlib.metadata.version("gguf"),
                   "types": blocks_fixture()}, f)
    with open(os.path.join(OUT, "small_gguf_expected.json"), "w") as f:
        json.dump({"tensors": small_gguf()}, f)


if __name__ == "__main__":
    main()
