//! GgmlType metadata and block layout table.

use mlx_native::formats::{block_layout_table, BLOCK_LAYOUT_TABLE_LEN};
use mlx_native::GgmlType;

#[test]
fn type_ids_sizes_and_names_match_ggml() {
    // (type, id, elements per block, bytes per block) from ggml.h / ggml.c.
    let expected = [
        (GgmlType::F32, 0, 1, 4),
        (GgmlType::F16, 1, 1, 2),
        (GgmlType::Q4_0, 2, 32, 18),
        (GgmlType::Q4_1, 3, 32, 20),
        (GgmlType::Q5_0, 6, 32, 22),
        (GgmlType::Q5_1, 7, 32, 24),
        (GgmlType::Q8_0, 8, 32, 34),
        (GgmlType::Q2_K, 10, 256, 84),
        (GgmlType::Q3_K, 11, 256, 110),
        (GgmlType::Q4_K, 12, 256, 144),
        (GgmlType::Q5_K, 13, 256, 176),
        (GgmlType::Q6_K, 14, 256, 210),
        (GgmlType::IQ4_NL, 20, 32, 18),
        (GgmlType::IQ4_XS, 23, 256, 136),
        (GgmlType::BF16, 30, 1, 2),
    ];
    assert_eq!(expected.len(), GgmlType::ALL.len());
    for (ty, id, block, size) in expected {
        assert_eq!(ty.id(), id, "{ty}");
        assert_eq!(ty.block_size(), block, "{ty}");
        assert_eq!(ty.type_size(), size, "{ty}");
        assert_eq!(GgmlType::from_id(id), Some(ty));
        assert_eq!(GgmlType::from_name(&ty.name().to_lowercase()), Some(ty));
    }
    for unsupported in [4, 5, 9, 15, 16, 19, 21, 22, 24, 29, 31, 1000, u32::MAX] {
        assert_eq!(GgmlType::from_id(unsupported), None, "id {unsupported}");
    }
}

#[test]
fn row_bytes_checks_whole_blocks_and_overflow() {
    assert_eq!(GgmlType::Q4_K.row_bytes(4096).unwrap(), 16 * 144);
    assert_eq!(GgmlType::F16.row_bytes(7).unwrap(), 14);
    assert_eq!(GgmlType::Q8_0.row_bytes(0).unwrap(), 0);
    let err = GgmlType::Q4_0.row_bytes(33).unwrap_err().to_string();
    assert!(err.contains("not a multiple"), "{err}");
    assert!(GgmlType::F32.row_bytes(u64::MAX).is_err());
}

#[test]
fn block_layout_table_has_expected_length_and_sizes() {
    let table = block_layout_table();
    assert_eq!(table.len(), BLOCK_LAYOUT_TABLE_LEN);
    // Per type [id, size, offsets...]; the field counts are those of the
    // GGML structs. Offsets increase and stay inside the block.
    let field_counts = [2, 3, 3, 4, 2, 4, 4, 4, 5, 4, 2, 4];
    let quantized: Vec<GgmlType> = GgmlType::ALL
        .into_iter()
        .filter(|t| t.block_size() > 1)
        .collect();
    assert_eq!(quantized.len(), field_counts.len());
    let mut i = 0;
    for (ty, n_fields) in quantized.into_iter().zip(field_counts) {
        assert_eq!(table[i], u64::from(ty.id()));
        assert_eq!(table[i + 1], ty.type_size() as u64, "{ty}");
        let offsets = &table[i + 2..i + 2 + n_fields];
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{ty}: {offsets:?}");
        assert!(
            offsets.iter().all(|&o| o < table[i + 1]),
            "{ty}: {offsets:?}"
        );
        i += 2 + n_fields;
    }
    assert_eq!(i, table.len());
    // The whole table, from the GGML block definitions (ggml-common.h).
    #[rustfmt::skip]
    let expected: [u64; BLOCK_LAYOUT_TABLE_LEN] = [
        2, 18, 0, 2,              // Q4_0: d, qs
        3, 20, 0, 2, 4,           // Q4_1: d, m, qs
        6, 22, 0, 2, 6,           // Q5_0: d, qh, qs
        7, 24, 0, 2, 4, 8,        // Q5_1: d, m, qh, qs
        8, 34, 0, 2,              // Q8_0: d, qs
        10, 84, 0, 16, 80, 82,    // Q2_K: scales, qs, d, dmin
        11, 110, 0, 32, 96, 108,  // Q3_K: hmask, qs, scales, d
        12, 144, 0, 2, 4, 16,     // Q4_K: d, dmin, scales, qs
        13, 176, 0, 2, 4, 16, 48, // Q5_K: d, dmin, scales, qh, qs
        14, 210, 0, 128, 192, 208, // Q6_K: ql, qh, scales, d
        20, 18, 0, 2,             // IQ4_NL: d, qs
        23, 136, 0, 2, 4, 8,      // IQ4_XS: d, scales_h, scales_l, qs
    ];
    assert_eq!(table, expected);
}

#[test]
fn cuda_header_sizes_match_rust_sizes() {
    // The header is compiled on the GPU test path; here check its
    // static_asserts state the same sizes as the Rust structs.
    let header = mlx_native::formats::GGML_BLOCKS_CUH;
    for ty in GgmlType::ALL.into_iter().filter(|t| t.block_size() > 1) {
        let needle = format!(
            "sizeof(block_{}) == {},",
            ty.name().to_lowercase(),
            ty.type_size()
        );
        assert!(
            header.contains(&needle),
            "missing `{needle}` in ggml_blocks.cuh"
        );
    }
}
