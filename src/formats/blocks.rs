//! GGML quantization block layouts, defined once.
//!
//! Each struct is byte-for-byte the block stored in GGUF files (little
//! endian). `ggml_blocks.cuh` mirrors them for CUDA; [`block_layout_table`]
//! and the `ggml_block_layout` kernel print both layouts in the same order so
//! a GPU test can prove they agree. Field names follow ggml's: `d` is the
//! scale, `m`/`dmin` the minimum, `qs` the low bits of the quants, `qh` their
//! high bits, `scales` the packed sub-block scales.

use std::mem::{offset_of, size_of};

use bytemuck::{Pod, Zeroable};
use half::f16;

/// Elements in a block of the legacy formats (Q4_0 … Q8_0, IQ4_NL).
pub const QK: usize = 32;
/// Elements in a super-block of the K formats and IQ4_XS.
pub const QK_K: usize = 256;

macro_rules! ggml_block {
    ($(#[$doc:meta])* $name:ident, $size:expr, { $($field:ident : $ty:ty),+ $(,)? }) => {
        $(#[$doc])*
        #[allow(non_camel_case_types)]
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
        pub struct $name {
            $(pub $field: $ty),+
        }
        const _: () = assert!(size_of::<$name>() == $size);
        impl $name {
            /// `[size, offset of each field in declaration order]`.
            fn layout() -> Vec<u64> {
                let mut v = vec![size_of::<$name>() as u64];
                $(v.push(offset_of!($name, $field) as u64);)+
                v
            }
        }
    };
}

ggml_block!(
    /// 32 weights: `x = d * (q - 8)`, q 4-bit.
    BlockQ4_0, 18, { d: f16, qs: [u8; QK / 2] });
ggml_block!(
    /// 32 weights: `x = d * q + m`, q 4-bit.
    BlockQ4_1, 20, { d: f16, m: f16, qs: [u8; QK / 2] });
ggml_block!(
    /// 32 weights: `x = d * (q - 16)`, q 5-bit; bit j of `qh` (little-endian
    /// u32) is the high bit of weight j.
    BlockQ5_0, 22, { d: f16, qh: [u8; 4], qs: [u8; QK / 2] });
ggml_block!(
    /// 32 weights: `x = d * q + m`, q 5-bit.
    BlockQ5_1, 24, { d: f16, m: f16, qh: [u8; 4], qs: [u8; QK / 2] });
ggml_block!(
    /// 32 weights: `x = d * q`, q signed 8-bit.
    BlockQ8_0, 34, { d: f16, qs: [i8; QK] });
ggml_block!(
    /// 256 weights in 16 groups of 16: `x = d * sc * q - dmin * m`, q 2-bit,
    /// `scales[i]` holds sc (low nibble) and m (high nibble).
    BlockQ2K, 84, { scales: [u8; QK_K / 16], qs: [u8; QK_K / 4], d: f16, dmin: f16 });
ggml_block!(
    /// 256 weights in 16 groups of 16: `x = d * (sc - 32) * (q - 4 * !hbit)`,
    /// q 2 low bits in `qs`, high bit in `hmask`, 6-bit sc packed in `scales`.
    BlockQ3K, 110, { hmask: [u8; QK_K / 8], qs: [u8; QK_K / 4], scales: [u8; 12], d: f16 });
ggml_block!(
    /// 256 weights in 8 groups of 32: `x = d * sc * q - dmin * m`, q 4-bit,
    /// 6-bit sc and m packed in `scales`.
    BlockQ4K, 144, { d: f16, dmin: f16, scales: [u8; 12], qs: [u8; QK_K / 2] });
ggml_block!(
    /// As Q4_K with a fifth bit per weight in `qh`.
    BlockQ5K, 176, { d: f16, dmin: f16, scales: [u8; 12], qh: [u8; QK_K / 8], qs: [u8; QK_K / 2] });
ggml_block!(
    /// 256 weights in 16 groups of 16: `x = d * sc * (q - 32)`, q 6-bit
    /// (4 low bits in `ql`, 2 high bits in `qh`), sc signed 8-bit.
    BlockQ6K, 210, { ql: [u8; QK_K / 2], qh: [u8; QK_K / 4], scales: [i8; QK_K / 16], d: f16 });
ggml_block!(
    /// 32 weights: `x = d * IQ4_NL_VALUES[q]`, q 4-bit index.
    BlockIQ4NL, 18, { d: f16, qs: [u8; QK / 2] });
ggml_block!(
    /// 256 weights in 8 groups of 32: `x = d * (sc - 32) * IQ4_NL_VALUES[q]`,
    /// 6-bit sc split into `scales_l` (4 bits) and `scales_h` (2 bits).
    BlockIQ4XS, 136, { d: f16, scales_h: u16, scales_l: [u8; QK_K / 64], qs: [u8; QK_K / 2] });

/// The 16 non-uniform levels shared by IQ4_NL and IQ4_XS.
pub const IQ4_NL_VALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Length of [`block_layout_table`]: per block type, its id, its size and one
/// offset per field.
pub const BLOCK_LAYOUT_TABLE_LEN: usize = 65;

/// The layout of every quantized block struct as seen by Rust:
/// for each type in the order below, `[ggml type id, size_of, offset_of each
/// field in declaration order]`. `ggml_block_layout.cu` writes the same table
/// from the CUDA structs.
pub fn block_layout_table() -> Vec<u64> {
    let per_type: [(u32, Vec<u64>); 12] = [
        (2, BlockQ4_0::layout()),
        (3, BlockQ4_1::layout()),
        (6, BlockQ5_0::layout()),
        (7, BlockQ5_1::layout()),
        (8, BlockQ8_0::layout()),
        (10, BlockQ2K::layout()),
        (11, BlockQ3K::layout()),
        (12, BlockQ4K::layout()),
        (13, BlockQ5K::layout()),
        (14, BlockQ6K::layout()),
        (20, BlockIQ4NL::layout()),
        (23, BlockIQ4XS::layout()),
    ];
    let mut table = Vec::with_capacity(BLOCK_LAYOUT_TABLE_LEN);
    for (id, layout) in per_type {
        table.push(u64::from(id));
        table.extend(layout);
    }
    table
}
