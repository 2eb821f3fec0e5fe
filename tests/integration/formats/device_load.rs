//! GGUF tensors loaded into device buffers, and the CUDA mirror of the
//! GGML block structs checked against the Rust definitions.

use mlx_native::formats::{block_layout_table, BLOCK_LAYOUT_TABLE_LEN};
use mlx_native::{DType, GgmlType, GgufFile, KernelArg, LaunchConfig, MlxBuffer, MlxDevice};

use super::fixture_path;

backend_tests! {
    load_tensor_copies_raw_blocks => check_load_tensor,
}

fn check_load_tensor(dev: &MlxDevice) {
    let file = GgufFile::open(fixture_path("small.gguf")).unwrap();
    assert!(!file.tensors().is_empty());
    for info in file.tensors() {
        let buf = file.load_tensor(&info.name, dev).unwrap();
        assert_eq!(
            buf.read_bytes().unwrap(),
            file.tensor_data(&info.name).unwrap(),
            "{}",
            info.name
        );
        let rev: Vec<usize> = info.dims.iter().rev().map(|&d| d as usize).collect();
        match info.ggml_type {
            GgmlType::F32 => assert_eq!((buf.dtype(), buf.shape()), (DType::F32, &rev[..])),
            GgmlType::F16 => assert_eq!((buf.dtype(), buf.shape()), (DType::F16, &rev[..])),
            GgmlType::BF16 => assert_eq!((buf.dtype(), buf.shape()), (DType::BF16, &rev[..])),
            t => {
                let row_bytes = t.row_bytes(info.dims[0]).unwrap();
                assert_eq!(buf.dtype(), DType::U8);
                assert_eq!(buf.shape()[1], row_bytes, "{}", info.name);
            }
        }
    }
    assert!(file.load_tensor("no.such.tensor", dev).is_err());
}

#[test]
#[ignore = "needs a CUDA GPU: run with --include-ignored"]
fn cuda_block_structs_match_rust_layout() {
    let dev = crate::harness::cuda_device();
    let r = dev.registry();
    r.register_source(
        "ggml_block_layout",
        include_str!("../../../src/formats/ggml_block_layout.cu"),
    )
    .unwrap();
    let out = MlxBuffer::from_slice(
        &dev,
        &vec![u64::MAX; BLOCK_LAYOUT_TABLE_LEN],
        &[BLOCK_LAYOUT_TABLE_LEN],
    )
    .unwrap();
    let mut enc = dev.command_encoder().unwrap();
    enc.dispatch_kernel(
        "ggml_block_layout",
        LaunchConfig::linear(1, 1),
        &[KernelArg::Buffer(&out)],
    )
    .unwrap();
    enc.commit_and_wait().unwrap();
    assert_eq!(out.read::<u64>().unwrap(), block_layout_table());
}
