//! `quantized_matmul_ggml` for every GGML type on every backend, against an
//! f64 product of the CPU-dequantized weights (dequantization itself is
//! checked against the `gguf` package's fixtures in `formats`); the CUDA
//! vector path, which quantizes its input to 8 bits, against the same
//! product of the input it quantizes, repeated exactly on the host.

use mlx_native::formats::dequantize_to_vec;
use mlx_native::ops::quantized_matmul::{
    quantized_matmul_ggml, quantized_matmul_ggml_via, GgmlQuantizedMatmulParams,
    QuantizedMatmulPath, DECODE_MAX_ROWS,
};
use mlx_native::{DType, GgmlType, MlxBuffer, MlxDevice, MlxError};

use crate::harness::*;

backend_tests! {
    quantized_matmul_every_type_and_row_count => check_every_type,
    quantized_matmul_forced_paths_and_bf16 => check_paths_and_bf16,
    quantized_matmul_weight_views_at_offsets => check_weight_views,
    quantized_matmul_rejects_bad_input => check_errors,
    quantized_matmul_prefill_every_type => check_prefill_every_type,
    quantized_matmul_decode_every_type_rows_and_dtype => check_decode_path,
    quantized_matmul_decode_long_rows_and_tiles => check_decode_long_rows,
    quantized_matmul_decode_weight_views => check_decode_weight_views,
    quantized_matmul_vector_every_type_and_dtype => check_vector_path,
    quantized_matmul_vector_long_rows => check_vector_long_rows,
    quantized_matmul_vector_weight_views => check_vector_weight_views,
    quantized_matmul_vector_rejects_bad_input => check_vector_errors,
    quantized_matmul_propagates_nan => check_nan_propagates,
}

const ROW_COUNTS: [usize; 11] = [1, 2, 3, 4, 5, 8, 9, 17, 64, 129, 512];

/// One product: random input, random valid weight blocks, the f64
/// reference.
struct Case {
    p: GgmlQuantizedMatmulParams,
    x: Vec<f32>,
    weight: Vec<u8>,
    want: Reference,
}

/// The f64 product of an input and the dequantized weights, and for each
/// output Σ|x·w| and sqrt(Σ(x·w)²), which bound its error (worst case and
/// random rounding).
struct Reference {
    want: Vec<f64>,
    magnitude: Vec<f64>,
    spread: Vec<f64>,
}

impl Reference {
    fn new(x: &[f64], w: &[f32], p: &GgmlQuantizedMatmulParams) -> Reference {
        let (m, n, k) = (p.m, p.n, p.k);
        let mut want = vec![0f64; m * n];
        let (mut magnitude, mut spread) = (want.clone(), want.clone());
        for i in 0..m {
            let xi = &x[i * k..(i + 1) * k];
            for j in 0..n {
                let wj = &w[j * k..(j + 1) * k];
                let (s, a, q) =
                    xi.iter()
                        .zip(wj)
                        .fold((0f64, 0f64, 0f64), |(s, a, q), (&u, &v)| {
                            let t = u * v as f64;
                            (s + t, a + t.abs(), q + t * t)
                        });
                want[i * n + j] = s;
                magnitude[i * n + j] = a;
                spread[i * n + j] = q.sqrt();
            }
        }
        Reference {
            want,
            magnitude,
            spread,
        }
    }

    /// The error allowed in output `i`: rounding errors of independent
    /// products add like a random walk, so 16 × the per-product rounding
    /// times sqrt(Σ(x·w)²) (about 20 standard deviations), the output's own
    /// rounding, f32 accumulation (`tol.sum` · Σ|x·w|), and a floor for
    /// rows of tiny weights. Dropping even one 32-element block of k
    /// exceeds it.
    fn bound(&self, i: usize, k: usize, tol: Tolerance) -> f64 {
        16.0 * tol.product * self.spread[i]
            + tol.output * self.want[i].abs()
            + tol.sum * self.magnitude[i]
            + 2e-6 * (k as f64).sqrt()
    }
}

/// The rounding a path applies: relative error of each product x·w, of the
/// output, and of the f32 sums (relative to Σ|x·w|).
#[derive(Clone, Copy)]
struct Tolerance {
    product: f64,
    output: f64,
    sum: f64,
}

/// The vector path's input: each run of 32 elements of a row as int8 codes
/// `q = round(x · (1 / d))` (ties to even) with `d = amax / 127`, in f32 as
/// the kernel computes them (zeros where d is below the smallest normal
/// f32), returned dequantized (`q · d`, exact in f64).
fn quantize_input_q8(x: &[f32]) -> Vec<f64> {
    x.chunks(32)
        .flat_map(|run| {
            let amax = run.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d >= f32::MIN_POSITIVE { 1.0 / d } else { 0.0 };
            run.iter()
                .map(move |&v| (v * inv).round_ties_even() as f64 * d as f64)
        })
        .collect()
}

impl Case {
    fn new(ty: GgmlType, m: usize, n: usize, k: usize, seed: u64) -> Case {
        let mut rng = Rng::new(seed);
        let x = rng.vec(m * k, -1.0, 1.0);
        let weight = random_tensor_bytes(ty, n * k, &mut rng);
        let w = dequantize_to_vec(ty, &weight).unwrap();
        let p = GgmlQuantizedMatmulParams {
            m,
            n,
            k,
            ggml_type: ty,
        };
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let want = Reference::new(&x64, &w, &p);
        Case { p, x, weight, want }
    }

    /// The reference for `path` on `dev` given the input as the device
    /// holds it: the case's own, or for the CUDA vector path the product of
    /// the input quantized as that path does; then a check that the
    /// tolerance would see one 32-element block of k dropped in most
    /// outputs.
    fn reference_for(
        &self,
        dev: &MlxDevice,
        input: &MlxBuffer,
        path: QuantizedMatmulPath,
        tol: Tolerance,
    ) -> Option<Reference> {
        let p = &self.p;
        if !dev.is_cuda() || path.resolve(p.m, p.ggml_type) != QuantizedMatmulPath::Vector {
            return None;
        }
        let xq = quantize_input_q8(&read_f32(input));
        let w = dequantize_to_vec(p.ggml_type, &self.weight).unwrap();
        let r = Reference::new(&xq, &w, p);
        let last = p.k - 32;
        let caught = (0..p.n)
            .filter(|&j| {
                let dropped: f64 = (last..p.k).map(|e| xq[e] * w[j * p.k + e] as f64).sum();
                dropped.abs() > r.bound(j, p.k, tol)
            })
            .count();
        assert!(
            2 * caught >= p.n,
            "the tolerance misses a dropped block in {} of {} outputs",
            p.n - caught,
            p.n
        );
        Some(r)
    }

    /// Runs the op on `dev` with `dtype` input/output on `path`, into a
    /// poisoned output, and checks every element within [`Case::bound`].
    fn check(&self, dev: &MlxDevice, dtype: DType, path: QuantizedMatmulPath, tol: Tolerance) {
        let p = &self.p;
        let input = float_buffer(dev, &self.x, dtype, &[p.m, p.k]);
        let row_bytes = p.ggml_type.row_bytes(p.k as u64).unwrap();
        let weight =
            MlxBuffer::from_bytes(dev, &self.weight, DType::U8, &[p.n, row_bytes]).unwrap();
        let output = poisoned(dev, dtype, &[p.m, p.n]);
        let mut enc = dev.command_encoder().unwrap();
        quantized_matmul_ggml_via(&mut enc, &input, &weight, &output, p, path).unwrap();
        enc.commit_and_wait().unwrap();
        let got = read_f32(&output);
        let quantized = self.reference_for(dev, &input, path, tol);
        let want = quantized.as_ref().unwrap_or(&self.want);
        let what = format!(
            "{} m={} n={} k={} {dtype} {path:?}",
            p.ggml_type.name(),
            p.m,
            p.n,
            p.k
        );
        for (i, (&g, &w)) in got.iter().zip(&want.want).enumerate() {
            let bound = want.bound(i, p.k, tol);
            assert!(
                !g.is_nan() && (g as f64 - w).abs() <= bound,
                "{what}: output {i} (row {}, col {}): got {g}, want {w}, bound {bound}",
                i / p.n,
                i % p.n
            );
        }
    }
}

/// The rounding of a path. The CPU multiplies the f32 input by the f32
/// dequantized weight exactly. BF16 I/O rounds the input (2⁻⁹) and the
/// output (2⁻⁸). The prefill tensor cores take bf16 operands: x and w each
/// rounded (2⁻⁹), and K-quant scales rounded before they multiply — 2⁻⁷
/// per product covers it. The decode path takes f16 operands: 2⁻¹¹ each,
/// 2⁻⁹ per product with the scales. These paths sum k products in f32 in
/// runs whose error stays within 2e-5 · Σ|x·w|.
///
/// The vector path is checked against the product of its own quantized
/// input (BF16 input rounding included), so only f32 arithmetic is left:
/// the integer sums of a block are exact, their scaling takes a few f32
/// roundings whose terms (a K-quant's scale and min parts) may be a few
/// times the products they leave, so 2⁻²⁰ per product; a lane adds at most
/// k / 32 / 32 block results before 5 + 2 more additions across lanes and
/// phases, so at k = 64 Ki the sum's worst case is ~(64 + 7) · 2⁻²⁴ ≈
/// 4.3e-6 of Σ|x·w|.
fn tolerance(
    dev: &MlxDevice,
    dtype: DType,
    path: QuantizedMatmulPath,
    m: usize,
    ty: GgmlType,
) -> Tolerance {
    let bf16 = dtype == DType::BF16;
    let output = if bf16 { 2f64.powi(-8) } else { 0.0 };
    let operands = match (dev.is_cuda(), path.resolve(m, ty)) {
        (false, _) => 0.0,
        (true, QuantizedMatmulPath::Vector) => {
            return Tolerance {
                product: 2f64.powi(-20),
                output,
                sum: 5e-6,
            }
        }
        (true, QuantizedMatmulPath::Decode) => 2f64.powi(-9),
        (true, _) => 2f64.powi(-7),
    };
    Tolerance {
        product: operands + if bf16 { 2f64.powi(-9) } else { 0.0 },
        output,
        sum: 2e-5,
    }
}

/// k values for a type: one, three and (on CUDA) eleven blocks of 256.
fn k_values(dev: &MlxDevice, ty: GgmlType) -> Vec<usize> {
    let b = ty.block_size();
    let mut ks = vec![b, 3 * b.max(32)];
    if dev.is_cuda() {
        ks.push(2816);
    }
    ks.dedup();
    ks
}

fn check_every_type(dev: &MlxDevice) {
    let n = if dev.is_cuda() { 301 } else { 37 };
    for (t, ty) in GgmlType::ALL.into_iter().enumerate() {
        for (ki, k) in k_values(dev, ty).into_iter().enumerate() {
            for m in ROW_COUNTS {
                // Keep the CPU debug build fast: large m only with small k.
                if !dev.is_cuda() && m * k > 512 * 96 {
                    continue;
                }
                let case = Case::new(ty, m, n, k, (t * 100 + ki * 20 + m) as u64);
                let path = QuantizedMatmulPath::Auto;
                case.check(
                    dev,
                    DType::F32,
                    path,
                    tolerance(dev, DType::F32, path, m, ty),
                );
            }
        }
    }
}

/// The tensor-core path alone, for every type, row count and both I/O
/// dtypes, with n and m tails of the 64-weight-row × 256-input-row tiles.
fn check_prefill_every_type(dev: &MlxDevice) {
    let path = QuantizedMatmulPath::Prefill;
    let (n, rows): (usize, &[usize]) = if dev.is_cuda() {
        (259, &[1, 7, 9, 130, 300])
    } else {
        (21, &[1, 9])
    };
    for (t, ty) in GgmlType::ALL.into_iter().enumerate() {
        for (ki, k) in k_values(dev, ty).into_iter().enumerate() {
            for &m in rows {
                let case = Case::new(ty, m, n, k, 5000 + (t * 100 + ki * 20 + m) as u64);
                for dtype in [DType::F32, DType::BF16] {
                    case.check(dev, dtype, path, tolerance(dev, dtype, path, m, ty));
                }
            }
        }
    }
}

fn check_paths_and_bf16(dev: &MlxDevice) {
    let paths = [QuantizedMatmulPath::Decode, QuantizedMatmulPath::Prefill];
    for (t, ty) in GgmlType::ALL.into_iter().enumerate() {
        let k = 2 * ty.block_size().max(128);
        for m in [1, 3, DECODE_MAX_ROWS] {
            let case = Case::new(ty, m, 67, k, 7000 + (t * 10 + m) as u64);
            for path in paths {
                for dtype in [DType::F32, DType::BF16] {
                    case.check(dev, dtype, path, tolerance(dev, dtype, path, m, ty));
                }
            }
        }
        let case = Case::new(ty, 33, 45, k, 9000 + t as u64);
        let path = QuantizedMatmulPath::Prefill;
        case.check(
            dev,
            DType::BF16,
            path,
            tolerance(dev, DType::BF16, path, 33, ty),
        );
    }
}

/// The decode path for every type, every row count it takes, F32 and BF16
/// I/O, n not a multiple of the 64-row tile.
fn check_decode_path(dev: &MlxDevice) {
    let path = QuantizedMatmulPath::Decode;
    let n = if dev.is_cuda() { 301 } else { 37 };
    for (t, ty) in GgmlType::ALL.into_iter().enumerate() {
        for (ki, k) in k_values(dev, ty).into_iter().enumerate() {
            for m in 1..=DECODE_MAX_ROWS {
                // The CPU has one path, checked above: keep its run short.
                if !dev.is_cuda() && (ki > 0 || ![1, DECODE_MAX_ROWS].contains(&m)) {
                    continue;
                }
                let case = Case::new(ty, m, n, k, (5000 + t * 100 + ki * 20 + m) as u64);
                for dtype in [DType::F32, DType::BF16] {
                    case.check(dev, dtype, path, tolerance(dev, dtype, path, m, ty));
                }
            }
        }
    }
}

/// Rows long enough that each CTA of a cluster streams many stages (k =
/// 14336 at the targeted types; a float k that leaves a partial 32-element
/// block), and 4 × 14336, where a CTA converts its input in several phases
/// (the last one partial) at m = 5 and 8; n spans three 64-row tiles with a
/// tail.
fn check_decode_long_rows(dev: &MlxDevice) {
    let path = QuantizedMatmulPath::Decode;
    let (n, big) = if dev.is_cuda() {
        (130, 14336)
    } else {
        (3, 512)
    };
    for (t, ty) in [
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::F16,
        GgmlType::F32,
    ]
    .into_iter()
    .enumerate()
    {
        for (ki, k) in [big, 4 * big].into_iter().enumerate() {
            let k = if ty.block_size() == 1 { k + 7 } else { k };
            for m in [1, 5, DECODE_MAX_ROWS] {
                let case = Case::new(ty, m, n, k, (8000 + t * 10 + ki * 100 + m) as u64);
                case.check(
                    dev,
                    DType::F32,
                    path,
                    tolerance(dev, DType::F32, path, m, ty),
                );
            }
        }
    }
}

fn check_weight_views(dev: &MlxDevice) {
    let paths = [QuantizedMatmulPath::Decode, QuantizedMatmulPath::Prefill];
    weight_views_on(dev, &paths, &VIEW_TYPES, 5, &[3]);
}

fn check_decode_weight_views(dev: &MlxDevice) {
    weight_views_on(dev, &[QuantizedMatmulPath::Decode], &VIEW_TYPES, 5, &[3]);
}

const VIEW_TYPES: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::F16,
];

/// The weight is a slice of a larger allocation, starting `lead` blocks in
/// (2 bytes in for a lead of 0), and the input and output are views too.
fn weight_views_on(
    dev: &MlxDevice,
    paths: &[QuantizedMatmulPath],
    types: &[GgmlType],
    m: usize,
    leads: &[usize],
) {
    for (&ty, &lead) in types.iter().flat_map(|t| leads.iter().map(move |l| (t, l))) {
        let (n, k) = (19, 512);
        let case = Case::new(ty, m, n, k, 31 + ty.id() as u64);
        let row_bytes = ty.row_bytes(k as u64).unwrap();
        let lead = if lead == 0 { 2 } else { lead * ty.type_size() };
        let mut bytes = vec![0xEEu8; lead + case.weight.len() + 64];
        bytes[lead..lead + case.weight.len()].copy_from_slice(&case.weight);
        let whole = MlxBuffer::from_bytes(dev, &bytes, DType::U8, &[bytes.len()]).unwrap();
        let weight = whole.slice_view(lead, n * row_bytes).unwrap();
        let mut x = vec![9.0f32; 7];
        x.extend_from_slice(&case.x);
        // Views at 7 elements: 28 bytes (F32) or 14 (BF16), so the prefill
        // path converts or realigns the input rows before its TMA reads.
        for dtype in [DType::F32, DType::BF16] {
            let input_all = float_buffer(dev, &x, dtype, &[x.len()]);
            let input = input_all.slice_view(7 * dtype.size_of(), m * k).unwrap();
            let out_all = poisoned(dev, dtype, &[m * n + 11]);
            let output = out_all.slice_view(5 * dtype.size_of(), m * n).unwrap();
            for &path in paths {
                let mut enc = dev.command_encoder().unwrap();
                quantized_matmul_ggml_via(&mut enc, &input, &weight, &output, &case.p, path)
                    .unwrap();
                enc.commit_and_wait().unwrap();
                let all = read_f32(&out_all);
                assert!(
                    all[..5].iter().chain(&all[5 + m * n..]).all(|v| v.is_nan()),
                    "{ty:?} {dtype}: wrote outside the output view"
                );
                let tol = tolerance(dev, dtype, path, m, ty);
                let quantized = case.reference_for(dev, &input, path, tol);
                let want = quantized.as_ref().unwrap_or(&case.want);
                for (i, &g) in all[5..5 + m * n].iter().enumerate() {
                    let bound = want.bound(i, k, tol);
                    assert!(
                        (g as f64 - want.want[i]).abs() <= bound,
                        "{ty:?} {path:?} {dtype} view: output {i}: got {g}, want {}",
                        want.want[i]
                    );
                }
            }
        }
    }
}

/// The vector path for every type it takes: F32 and BF16 I/O, one block
/// per row (so that three quarters of the warps have no blocks) up to many
/// segments per row, k not a multiple of 256 where the type allows, n from
/// one row to several 32-row tiles per CTA, with odd tails.
fn check_vector_path(dev: &MlxDevice) {
    let path = QuantizedMatmulPath::Vector;
    let cuda = dev.is_cuda();
    for (t, ty) in GgmlType::ALL.into_iter().enumerate() {
        if !QuantizedMatmulPath::takes_vector(ty) {
            continue;
        }
        let b = ty.block_size();
        let mut shapes = vec![(37, b), (19, 3 * b), (1, 5 * b)];
        if cuda {
            shapes.extend([(301, 2816), (3, 4096 + b), (8500, 512), (2113, 1024 + b)]);
        }
        for (si, (n, k)) in shapes.into_iter().enumerate() {
            let case = Case::new(ty, 1, n, k, (11000 + t * 100 + si) as u64);
            for dtype in [DType::F32, DType::BF16] {
                case.check(dev, dtype, path, tolerance(dev, dtype, path, 1, ty));
            }
        }
    }
}

/// Long rows: the Llama-3-8B FFN's k, k that fills the x buffer exactly
/// (32768, one phase), just past it (two phases, the second one block) and
/// 57344 and 65536 + 256 (two and three phases, a partial last one); then
/// two phases over more 32-row tiles than an H200 has multiprocessors, so
/// that a CTA keeps the partial sums of two tiles.
fn check_vector_long_rows(dev: &MlxDevice) {
    let path = QuantizedMatmulPath::Vector;
    let (n, ks): (usize, &[usize]) = if dev.is_cuda() {
        (67, &[14336, 32768, 32768 + 256, 57344, 65536 + 256])
    } else {
        (3, &[2048])
    };
    for (t, ty) in GgmlType::ALL.into_iter().enumerate() {
        if !QuantizedMatmulPath::takes_vector(ty) {
            continue;
        }
        for (ki, &k) in ks.iter().enumerate() {
            // A Q4_0 / Q8_0 row may end 32 elements past a multiple of 256.
            let k = if ty.block_size() == 32 && ki % 2 == 1 {
                k + 32
            } else {
                k
            };
            let case = Case::new(ty, 1, n, k, (12000 + t * 100 + ki) as u64);
            let dtype = if ki % 2 == 0 { DType::F32 } else { DType::BF16 };
            case.check(dev, dtype, path, tolerance(dev, dtype, path, 1, ty));
        }
    }
    if dev.is_cuda() {
        let (ty, dtype) = (GgmlType::Q4_0, DType::F32);
        let case = Case::new(ty, 1, 4300, 32768 + 64, 12999);
        case.check(dev, dtype, path, tolerance(dev, dtype, path, 1, ty));
    }
}

/// Weight views at offsets of 2 bytes and of 1, 3 and 7 blocks: rows start
/// at several even offsets mod 16 (all of them for Q4_0, whose rows of 16
/// blocks are 16-byte multiples).
fn check_vector_weight_views(dev: &MlxDevice) {
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];
    let path = [QuantizedMatmulPath::Vector];
    weight_views_on(dev, &path, &types, 1, &[0, 1, 3, 7]);
}

/// The vector path takes one row of the types it has kernels for, and says
/// so otherwise, on every backend.
fn check_vector_errors(dev: &MlxDevice) {
    let path = QuantizedMatmulPath::Vector;
    let run = |m: usize, ty: GgmlType| {
        let k = 256;
        let p = GgmlQuantizedMatmulParams {
            m,
            n: 3,
            k,
            ggml_type: ty,
        };
        let row_bytes = ty.row_bytes(k as u64).unwrap();
        let input = MlxBuffer::zeros(dev, DType::F32, &[m, k]).unwrap();
        let weight = MlxBuffer::zeros(dev, DType::U8, &[3, row_bytes]).unwrap();
        let output = MlxBuffer::zeros(dev, DType::F32, &[m, 3]).unwrap();
        let mut enc = dev.command_encoder().unwrap();
        quantized_matmul_ggml_via(&mut enc, &input, &weight, &output, &p, path)
            .unwrap_err()
            .to_string()
    };
    let e = run(2, GgmlType::Q4_0);
    assert!(
        e.contains("quantized_matmul_ggml") && e.contains("one input row; m = 2"),
        "{e}"
    );
    for ty in [
        GgmlType::Q4_1,
        GgmlType::Q2_K,
        GgmlType::IQ4_XS,
        GgmlType::F16,
    ] {
        let e = run(1, ty);
        assert!(
            e.contains("quantized_matmul_ggml") && e.contains(&format!("no {} kernels", ty.name())),
            "{e}"
        );
    }
    // Auto sends one row of those types elsewhere, and several rows of the
    // vector types to the decode path.
    assert_eq!(
        QuantizedMatmulPath::Auto.resolve(1, GgmlType::Q4_1),
        QuantizedMatmulPath::Decode
    );
    assert_eq!(
        QuantizedMatmulPath::Auto.resolve(1, GgmlType::Q6_K),
        QuantizedMatmulPath::Vector
    );
    assert_eq!(
        QuantizedMatmulPath::Auto.resolve(2, GgmlType::Q6_K),
        QuantizedMatmulPath::Decode
    );
}

fn check_errors(dev: &MlxDevice) {
    let (m, n, k) = (2, 3, 64);
    let ty = GgmlType::Q4_0;
    let row_bytes = ty.row_bytes(k as u64).unwrap();
    let p = GgmlQuantizedMatmulParams {
        m,
        n,
        k,
        ggml_type: ty,
    };
    let input = MlxBuffer::zeros(dev, DType::F32, &[m, k]).unwrap();
    let weight = MlxBuffer::zeros(dev, DType::U8, &[n, row_bytes]).unwrap();
    let output = MlxBuffer::zeros(dev, DType::F32, &[m, n]).unwrap();
    let mut enc = dev.command_encoder().unwrap();
    let mut run = |input: &MlxBuffer,
                   weight: &MlxBuffer,
                   output: &MlxBuffer,
                   p: GgmlQuantizedMatmulParams| {
        quantized_matmul_ggml(&mut enc, input, weight, output, &p).unwrap_err()
    };
    let expect = |e: MlxError, needle: &str| {
        let s = e.to_string();
        assert!(
            s.contains("quantized_matmul_ggml") && s.contains(needle),
            "{s:?} lacks {needle:?}"
        );
    };
    expect(
        run(
            &input,
            &weight,
            &output,
            GgmlQuantizedMatmulParams { k: 48, ..p },
        ),
        "not a multiple",
    );
    let small = MlxBuffer::zeros(dev, DType::U8, &[n * row_bytes - 1]).unwrap();
    expect(run(&input, &small, &output, p), "weight holds");
    let padded = MlxBuffer::zeros(dev, DType::U8, &[n * row_bytes + 2]).unwrap();
    let odd = padded.slice_view(1, n * row_bytes).unwrap();
    expect(run(&input, &odd, &output, p), "multiple of 2");
    let f16_in = MlxBuffer::zeros(dev, DType::F16, &[m, k]).unwrap();
    expect(run(&f16_in, &weight, &output, p), "input");
    let bf16_out = MlxBuffer::zeros(dev, DType::BF16, &[m, n]).unwrap();
    expect(run(&input, &weight, &bf16_out, p), "output");
    let f32_weight = MlxBuffer::zeros(dev, DType::F32, &[n, row_bytes / 4]).unwrap();
    expect(run(&input, &f32_weight, &output, p), "weight");
    expect(
        run(
            &input,
            &weight,
            &output,
            GgmlQuantizedMatmulParams { n: 4, ..p },
        ),
        "output",
    );
    expect(
        run(
            &input,
            &weight,
            &output,
            GgmlQuantizedMatmulParams { m: 0, ..p },
        ),
        "positive",
    );
    let other = if dev.is_cuda() {
        MlxDevice::cpu()
    } else {
        dev.clone()
    };
    if dev.is_cuda() {
        let cpu_out = MlxBuffer::zeros(&other, DType::F32, &[m, n]).unwrap();
        expect(run(&input, &weight, &cpu_out, p), "output");
    }
    let big = GgmlQuantizedMatmulParams { m: 9, ..p };
    let input9 = MlxBuffer::zeros(dev, DType::F32, &[9, k]).unwrap();
    let output9 = MlxBuffer::zeros(dev, DType::F32, &[9, n]).unwrap();
    let mut enc = dev.command_encoder().unwrap();
    let e = quantized_matmul_ggml_via(
        &mut enc,
        &input9,
        &weight,
        &output9,
        &big,
        QuantizedMatmulPath::Decode,
    )
    .unwrap_err();
    expect(e, "at most 8 rows");
    let aliased = MlxBuffer::zeros(dev, DType::F32, &[m * k]).unwrap();
    let out_alias = aliased.slice_view(0, m * n).unwrap();
    let mut enc = dev.command_encoder().unwrap();
    let e = quantized_matmul_ggml(
        &mut enc,
        &aliased.with_shape(&[m, k]).unwrap(),
        &weight,
        &out_alias,
        &p,
    )
    .unwrap_err();
    expect(e, "overlaps");
}

/// A NaN input element makes every output NaN on every path (the vector
/// path's input quantization must not turn it into a zero code).
fn check_nan_propagates(dev: &MlxDevice) {
    let paths = [
        QuantizedMatmulPath::Auto,
        QuantizedMatmulPath::Decode,
        QuantizedMatmulPath::Prefill,
    ];
    for ty in [GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K] {
        let (n, k) = (37, 512);
        let case = Case::new(ty, 1, n, k, 400 + ty.id() as u64);
        let mut x = case.x.clone();
        x[300] = f32::NAN;
        let row_bytes = ty.row_bytes(k as u64).unwrap();
        let weight = MlxBuffer::from_bytes(dev, &case.weight, DType::U8, &[n, row_bytes]).unwrap();
        for dtype in [DType::F32, DType::BF16] {
            let input = float_buffer(dev, &x, dtype, &[1, k]);
            for path in paths {
                let output = MlxBuffer::zeros(dev, dtype, &[1, n]).unwrap();
                let mut enc = dev.command_encoder().unwrap();
                quantized_matmul_ggml_via(&mut enc, &input, &weight, &output, &case.p, path)
                    .unwrap();
                enc.commit_and_wait().unwrap();
                let got = read_f32(&output);
                assert!(
                    got.iter().all(|v| v.is_nan()),
                    "{ty:?} {dtype} {path:?}: a NaN input gave {got:?}"
                );
            }
        }
    }
}
