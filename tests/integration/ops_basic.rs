//! fill, copy, strided copy, cast and elementwise ops on every backend,
//! against naive references, with poisoned outputs and views at offsets.

use mlx_native::ops::cast::cast;
use mlx_native::ops::copy::{copy, copy_strided, StridedCopyParams};
use mlx_native::ops::elementwise::{add, mul, scale};
use mlx_native::ops::fill::fill;
use mlx_native::{DType, MlxBuffer, MlxDevice, MlxError};

use crate::harness::*;

backend_tests! {
    fill_every_dtype_in_a_view => check_fill,
    fill_rejects_unrepresentable_values => check_fill_errors,
    copy_contiguous_sizes_and_offsets => check_copy_contiguous,
    copy_strided_permutations => check_copy_strided,
    copy_strided_rejects_bad_layouts => check_copy_errors,
    cast_between_float_dtypes => check_cast,
    elementwise_add_mul_scale => check_elementwise,
    elementwise_rejects_bad_shapes => check_elementwise_errors,
}

const ALL_DTYPES: [DType; 11] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::U8,
    DType::I8,
    DType::U16,
    DType::I16,
    DType::U32,
    DType::I32,
    DType::U64,
    DType::I64,
];

fn check_fill(dev: &MlxDevice) {
    let (total, start, len) = (1031usize, 3usize, 517usize);
    for dtype in ALL_DTYPES {
        let value: f64 = if dtype.is_float() {
            -3.5
        } else if matches!(dtype, DType::I8 | DType::I16 | DType::I32 | DType::I64) {
            -77.0
        } else {
            201.0
        };
        let buf = poisoned(dev, dtype, &[total]);
        let view = buf.slice_view(start * dtype.size_of(), len).unwrap();
        let mut enc = dev.command_encoder().unwrap();
        fill(&mut enc, &view, value).unwrap();
        enc.commit_and_wait().unwrap();
        let size = dtype.size_of();
        let expect: Vec<u8> = match dtype {
            DType::F32 => (value as f32).to_le_bytes().to_vec(),
            DType::F16 => half::f16::from_f64(value).to_le_bytes().to_vec(),
            DType::BF16 => half::bf16::from_f64(value).to_le_bytes().to_vec(),
            _ => (value as i64).to_le_bytes()[..size].to_vec(),
        };
        let bytes = buf.read_bytes().unwrap();
        for (i, e) in bytes.chunks(size).enumerate() {
            if (start..start + len).contains(&i) {
                assert_eq!(e, &expect[..], "{dtype} element {i}");
            } else {
                assert!(
                    e.iter().all(|&b| b == 0xFF),
                    "{dtype} element {i} outside the view was written"
                );
            }
        }
    }
}

fn check_fill_errors(dev: &MlxDevice) {
    let mut enc = dev.command_encoder().unwrap();
    let u8b = poisoned(dev, DType::U8, &[5]);
    let e = fill(&mut enc, &u8b, 300.0).unwrap_err();
    assert!(
        matches!(e, MlxError::InvalidArgument { op: "fill", .. }),
        "{e}"
    );
    assert!(fill(&mut enc, &u8b, 1.5).is_err());
    assert!(fill(&mut enc, &poisoned(dev, DType::I8, &[5]), -129.0).is_err());
}

fn check_copy_contiguous(dev: &MlxDevice) {
    let mut rng = Rng::new(11);
    for &n in &[1usize, 15, 16, 17, 4099, (1 << 20) + 7] {
        for &(so, d_o) in &[(0usize, 0usize), (16, 32), (3, 5)] {
            let data = rng.bytes(n + so);
            let src_all = MlxBuffer::from_slice(dev, &data, &[n + so]).unwrap();
            let dst_all = poisoned(dev, DType::U8, &[n + d_o + 9]);
            let (src, dst) = (
                src_all.slice_view(so, n).unwrap(),
                dst_all.slice_view(d_o, n).unwrap(),
            );
            let mut enc = dev.command_encoder().unwrap();
            copy(&mut enc, &src, &dst).unwrap();
            enc.commit_and_wait().unwrap();
            let got = dst_all.read_bytes().unwrap();
            assert_eq!(&got[d_o..d_o + n], &data[so..], "n {n} offsets {so},{d_o}");
            assert!(
                got[..d_o].iter().chain(&got[d_o + n..]).all(|&b| b == 0xFF),
                "n {n}: wrote outside the view"
            );
        }
    }
    let v = rng.vec(333, -5.0, 5.0);
    let src = MlxBuffer::from_slice(dev, &v, &[3, 111]).unwrap();
    let dst = poisoned(dev, DType::F32, &[333]);
    let mut enc = dev.command_encoder().unwrap();
    copy(&mut enc, &src, &dst).unwrap();
    enc.commit_and_wait().unwrap();
    assert_eq!(dst.read::<f32>().unwrap(), v);
}

/// Naive strided gather/scatter on byte elements.
fn reference_copy(
    src: &[u8],
    dst: &mut [u8],
    size: usize,
    shape: &[usize],
    ss: &[usize],
    ds: &[usize],
) {
    let n: usize = shape.iter().product();
    for flat in 0..n {
        let (mut rest, mut so, mut d) = (flat, 0, 0);
        for k in (0..shape.len()).rev() {
            let i = rest % shape[k];
            rest /= shape[k];
            so += i * ss[k];
            d += i * ds[k];
        }
        dst[d * size..(d + 1) * size].copy_from_slice(&src[so * size..(so + 1) * size]);
    }
}

/// (dtype, shape, src strides, dst strides, src elements, dst elements)
type CopyCase = (
    DType,
    Vec<usize>,
    Vec<usize>,
    Option<Vec<usize>>,
    usize,
    usize,
);

fn check_copy_strided(dev: &MlxDevice) {
    let mut rng = Rng::new(12);
    // (dtype, shape, src strides, dst strides, src elements, dst elements)
    let cases: Vec<CopyCase> = vec![
        (
            DType::F32,
            vec![53, 37],
            vec![1, 53],
            None,
            37 * 53,
            37 * 53,
        ),
        (DType::BF16, vec![5, 6, 7], vec![1, 5, 30], None, 210, 210),
        (DType::U8, vec![7, 3, 9], vec![27, 1, 3], None, 189, 189),
        (
            DType::U64,
            vec![4, 5],
            vec![10, 2],
            Some(vec![12, 2]),
            40,
            48,
        ),
        (
            DType::I16,
            vec![2, 3, 4, 5, 2, 1, 2, 3],
            vec![720, 240, 60, 12, 6, 6, 3, 1],
            None,
            1440,
            1440,
        ),
    ];
    for (dtype, shape, ss, ds, src_n, dst_n) in cases {
        let size = dtype.size_of();
        let data = rng.bytes(src_n * size);
        let src_all = MlxBuffer::from_bytes(
            dev,
            &[vec![0u8; 2 * size], data.clone()].concat(),
            dtype,
            &[src_n + 2],
        )
        .unwrap();
        let src = src_all.slice_view(2 * size, src_n).unwrap();
        let dst = poisoned(dev, dtype, &[dst_n]);
        let params = StridedCopyParams {
            shape: shape.clone(),
            src_strides: ss.clone(),
            dst_strides: ds.clone(),
        };
        let mut enc = dev.command_encoder().unwrap();
        copy_strided(&mut enc, &src, &dst, &params).unwrap();
        enc.commit_and_wait().unwrap();
        let mut want = vec![0xFFu8; dst_n * size];
        let dsv = ds.clone().unwrap_or_else(|| {
            let mut s = vec![1; shape.len()];
            for i in (0..shape.len() - 1).rev() {
                s[i] = s[i + 1] * shape[i + 1];
            }
            s
        });
        reference_copy(&data, &mut want, size, &shape, &ss, &dsv);
        assert_eq!(dst.read_bytes().unwrap(), want, "{dtype} {shape:?}");
    }
}

fn check_copy_errors(dev: &MlxDevice) {
    let src = poisoned(dev, DType::F32, &[10]);
    let dst = poisoned(dev, DType::F32, &[10]);
    let mut enc = dev.command_encoder().unwrap();
    let p = |shape: Vec<usize>, ss: Vec<usize>, ds: Option<Vec<usize>>| StridedCopyParams {
        shape,
        src_strides: ss,
        dst_strides: ds,
    };
    let out_of_bounds =
        copy_strided(&mut enc, &src, &dst, &p(vec![2, 5], vec![6, 1], None)).unwrap_err();
    assert!(
        matches!(out_of_bounds, MlxError::OutOfBounds { .. }),
        "{out_of_bounds}"
    );
    assert!(copy_strided(&mut enc, &src, &dst, &p(vec![1; 9], vec![1; 9], None)).is_err());
    assert!(copy_strided(
        &mut enc,
        &src,
        &dst,
        &p(vec![2, 5], vec![5, 1], Some(vec![0, 1]))
    )
    .is_err());
    assert!(copy_strided(&mut enc, &src, &dst, &p(vec![2, 5], vec![5], None)).is_err());
    let wrong_dtype = poisoned(dev, DType::F16, &[10]);
    assert!(matches!(
        copy(&mut enc, &src, &wrong_dtype).unwrap_err(),
        MlxError::DTypeMismatch { .. }
    ));
    let overlap = src.slice_view(4, 5).unwrap();
    assert!(copy(&mut enc, &src.slice_view(0, 5).unwrap(), &overlap).is_err());
    assert!(copy(&mut enc, &src, &poisoned(dev, DType::F32, &[9])).is_err());
}

/// f32 -> bf16 round to nearest even, written from the format definition.
fn bf16_rne(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

fn check_cast(dev: &MlxDevice) {
    let mut rng = Rng::new(13);
    let n = 4099;
    // Magnitudes from f16 subnormals to near the f16 maximum, both signs.
    let values: Vec<f32> = (0..n)
        .map(|i| {
            let m = rng.uniform(-1.0, 1.0);
            let e = rng.uniform(-24.0, 15.9);
            if i == 0 {
                65504.0
            } else {
                m * e.exp2()
            }
        })
        .collect();
    let floats = [DType::F32, DType::F16, DType::BF16];
    // Whole buffers (16-byte aligned: the vector kernel and its tail), then
    // views one element in (element-wise).
    for skip in [0, 1] {
        for &from in &floats {
            for &to in &floats {
                if from != to {
                    check_cast_pair(dev, &values, from, to, skip);
                }
            }
        }
    }
}

fn check_cast_pair(dev: &MlxDevice, values: &[f32], from: DType, to: DType, skip: usize) {
    let n = values.len() - skip;
    let src_all = float_buffer(dev, values, from, &[values.len()]);
    let src = src_all.slice_view(skip * from.size_of(), n).unwrap();
    let src_vals = read_f32(&src);
    let dst_all = poisoned(dev, to, &[values.len()]);
    let dst = dst_all.slice_view(skip * to.size_of(), n).unwrap();
    let mut enc = dev.command_encoder().unwrap();
    cast(&mut enc, &src, &dst).unwrap();
    enc.commit_and_wait().unwrap();
    let got: Vec<u32> = match to {
        DType::F32 => dst
            .read::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        _ => dst
            .reinterpret(DType::U16, &[n])
            .unwrap()
            .read::<u16>()
            .unwrap()
            .iter()
            .map(|&v| v as u32)
            .collect(),
    };
    let want: Vec<u32> = src_vals
        .iter()
        .map(|&v| match to {
            DType::F32 => v.to_bits(),
            DType::F16 => half::f16::from_f32(v).to_bits() as u32,
            _ => bf16_rne(v) as u32,
        })
        .collect();
    for i in 0..n {
        assert_eq!(
            got[i], want[i],
            "{from}->{to} skip {skip}: element {i} (value {})",
            src_vals[i]
        );
    }
}

fn check_elementwise(dev: &MlxDevice) {
    let mut rng = Rng::new(14);
    let (rows, cols) = (7usize, 129usize);
    let n = rows * cols;
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let tol = 2.0 * rounding_rtol(dtype);
        let a = float_buffer(dev, &rng.vec(n, -4.0, 4.0), dtype, &[rows, cols]);
        let full = float_buffer(dev, &rng.vec(n, -4.0, 4.0), dtype, &[rows, cols]);
        let row = float_buffer(dev, &rng.vec(cols, -4.0, 4.0), dtype, &[cols]);
        let (av, fv, rv) = (read_f32(&a), read_f32(&full), read_f32(&row));
        for (name, b, bv) in [("full", &full, &fv), ("row", &row, &rv)] {
            let out = poisoned(dev, dtype, &[rows, cols]);
            let out2 = poisoned(dev, dtype, &[rows, cols]);
            let mut enc = dev.command_encoder().unwrap();
            add(&mut enc, &a, b, &out).unwrap();
            mul(&mut enc, &a, b, &out2).unwrap();
            enc.commit_and_wait().unwrap();
            let bl = bv.len();
            let want_add: Vec<f64> = (0..n).map(|i| av[i] as f64 + bv[i % bl] as f64).collect();
            let want_mul: Vec<f64> = (0..n).map(|i| av[i] as f64 * bv[i % bl] as f64).collect();
            assert_close(
                &format!("add {dtype} {name}"),
                &read_f32(&out),
                &want_add,
                tol,
                1e-6,
            );
            assert_close(
                &format!("mul {dtype} {name}"),
                &read_f32(&out2),
                &want_mul,
                tol,
                1e-6,
            );
        }
        let out = poisoned(dev, dtype, &[rows, cols]);
        let mut enc = dev.command_encoder().unwrap();
        scale(&mut enc, &a, &out, 0.37).unwrap();
        // In place: a += row.
        let inplace = float_buffer(dev, &av, dtype, &[rows, cols]);
        add(&mut enc, &inplace, &row, &inplace).unwrap();
        enc.commit_and_wait().unwrap();
        let want: Vec<f64> = av.iter().map(|&x| x as f64 * 0.37).collect();
        assert_close(&format!("scale {dtype}"), &read_f32(&out), &want, tol, 1e-6);
        let want: Vec<f64> = (0..n).map(|i| av[i] as f64 + rv[i % cols] as f64).collect();
        assert_close(
            &format!("in-place add {dtype}"),
            &read_f32(&inplace),
            &want,
            tol,
            1e-6,
        );
    }
}

fn check_elementwise_errors(dev: &MlxDevice) {
    let a = poisoned(dev, DType::F32, &[4, 6]);
    let mut enc = dev.command_encoder().unwrap();
    let bad_b = poisoned(dev, DType::F32, &[5]);
    assert!(matches!(
        add(&mut enc, &a, &bad_b, &poisoned(dev, DType::F32, &[24])).unwrap_err(),
        MlxError::ShapeMismatch { op: "add", .. }
    ));
    let half_b = poisoned(dev, DType::F16, &[6]);
    assert!(matches!(
        mul(&mut enc, &a, &half_b, &poisoned(dev, DType::F32, &[24])).unwrap_err(),
        MlxError::DTypeMismatch { op: "mul", .. }
    ));
    let ints = poisoned(dev, DType::I32, &[24]);
    assert!(scale(&mut enc, &ints, &ints, 2.0).is_err());
    let big = poisoned(dev, DType::F32, &[30]);
    let shifted = big.slice_view(8, 24).unwrap();
    let first = big.slice_view(0, 24).unwrap();
    assert!(
        scale(&mut enc, &first, &shifted, 2.0).is_err(),
        "partial overlap must be refused"
    );
    assert!(scale(&mut enc, &a, &poisoned(dev, DType::F32, &[23]), 2.0).is_err());
}
