//! The parity harness: seeded inputs, poisoned outputs, tolerances, and a
//! macro that instantiates one check on every backend.

#![allow(dead_code)]

use mlx_native::formats::quantize_to_vec;
use mlx_native::{DType, GgmlType, MlxBuffer, MlxDevice};

/// Writes each check once; instantiates `cpu::name` and an ignored
/// `cuda::name` that fails when no GPU is present.
macro_rules! backend_tests {
    ($($name:ident => $check:ident),* $(,)?) => {
        mod cpu {
            $(#[test] fn $name() { super::$check(&mlx_native::MlxDevice::cpu()); })*
        }
        mod cuda {
            $(#[test] #[ignore = "needs a CUDA GPU: run with --include-ignored"]
              fn $name() { super::$check(&$crate::harness::cuda_device()); })*
        }
    };
}

/// The first CUDA GPU; a CUDA test without one fails rather than passes.
pub fn cuda_device() -> MlxDevice {
    match MlxDevice::cuda(0) {
        Ok(d) => d,
        Err(e) => panic!("this test needs a CUDA GPU: {e}"),
    }
}

/// SplitMix64: the one seeded generator of the tests (no `rand` dependency).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in the open interval (0, 1), with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Uniform in [0, 1) on the 2^-24 grid of f32.
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in (lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.unit()) as f32
    }
    pub fn vec(&mut self, len: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..len).map(|_| self.uniform(lo, hi)).collect()
    }
    /// Roughly standard normal (sum of twelve uniforms; tails are not needed).
    pub fn normal(&mut self) -> f32 {
        (0..12).map(|_| self.unit_f32()).sum::<f32>() - 6.0
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A buffer whose every byte is 0xFF: NaN for the float dtypes, a large
/// value for the integers, so an element a kernel forgets to write fails.
pub fn poisoned(device: &MlxDevice, dtype: DType, shape: &[usize]) -> MlxBuffer {
    let n: usize = shape.iter().product::<usize>() * dtype.size_of();
    MlxBuffer::from_bytes(device, &vec![0xFF; n], dtype, shape).unwrap()
}

/// Reads any float buffer as f32.
pub fn read_f32(b: &MlxBuffer) -> Vec<f32> {
    match b.dtype() {
        DType::F32 => b.read::<f32>().unwrap(),
        DType::F16 => b
            .read::<half::f16>()
            .unwrap()
            .iter()
            .map(|v| v.to_f32())
            .collect(),
        DType::BF16 => b
            .read::<half::bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_f32())
            .collect(),
        d => panic!("read_f32 of {d}"),
    }
}

/// A float buffer of `dtype` holding `values` (rounded to the dtype).
pub fn float_buffer(
    device: &MlxDevice,
    values: &[f32],
    dtype: DType,
    shape: &[usize],
) -> MlxBuffer {
    match dtype {
        DType::F32 => MlxBuffer::from_slice(device, values, shape),
        DType::F16 => MlxBuffer::from_slice(
            device,
            &values
                .iter()
                .map(|&v| half::f16::from_f32(v))
                .collect::<Vec<_>>(),
            shape,
        ),
        DType::BF16 => MlxBuffer::from_slice(
            device,
            &values
                .iter()
                .map(|&v| half::bf16::from_f32(v))
                .collect::<Vec<_>>(),
            shape,
        ),
        d => panic!("float_buffer of {d}"),
    }
    .unwrap()
}

/// Elementwise |got - want| <= atol + rtol * |want|, and no NaN anywhere.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = !g.is_nan() && ((g as f64) - w).abs() <= atol + rtol * w.abs();
        assert!(
            ok,
            "{what}: element {i}: got {g}, want {w} (rtol {rtol}, atol {atol})"
        );
    }
}

/// Relative tolerance of one rounding to `dtype` (computations in f32).
pub fn rounding_rtol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-6,
        DType::F16 => 1e-3,  // 11-bit significand: half an ulp is 2^-11
        DType::BF16 => 8e-3, // 8-bit significand: half an ulp is 2^-8
        _ => 0.0,
    }
}

/// Random valid bytes for a tensor of `ty`: normal random values quantized.
pub fn random_tensor_bytes(ty: GgmlType, n_elements: usize, rng: &mut Rng) -> Vec<u8> {
    let x: Vec<f32> = (0..n_elements).map(|_| rng.normal()).collect();
    quantize_to_vec(ty, &x).unwrap()
}
