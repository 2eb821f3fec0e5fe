//! CPU quantization: bytes against the `gguf` Python quantizer where it has
//! one, and round-trip error bounds for every type.

use mlx_native::formats::{dequantize_to_vec, quantize, quantize_to_vec};
use mlx_native::GgmlType;

use super::{fixture_path, floats, from_hex, Rng};

#[test]
fn quantize_matches_gguf_python_bytes() {
    let text = std::fs::read_to_string(fixture_path("blocks.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut compared = 0;
    for f in json["types"].as_array().unwrap() {
        let Some(input) = f.get("quantize_input") else {
            continue;
        };
        let ty = GgmlType::from_name(f["type"].as_str().unwrap()).unwrap();
        let expected = from_hex(f["quantized_hex"].as_str().unwrap());
        let got = quantize_to_vec(ty, &floats(input)).unwrap();
        let size = ty.type_size();
        let differing: Vec<usize> = (0..expected.len() / size)
            .filter(|&b| got[b * size..(b + 1) * size] != expected[b * size..(b + 1) * size])
            .collect();
        assert!(
            differing.is_empty(),
            "{ty}: blocks {differing:?} differ from gguf"
        );
        compared += 1;
    }
    // F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
    assert_eq!(compared, 7);
}

/// Relative RMS error of quantize → dequantize on `n_blocks` blocks of
/// normal values with a per-block scale spread over several decades.
fn round_trip_rel_rms(ty: GgmlType, seed: u64) -> f64 {
    let mut rng = Rng::new(seed);
    let n_blocks = 37;
    let block = ty.block_size().max(32);
    let mut x = Vec::with_capacity(n_blocks * block);
    for _ in 0..n_blocks {
        let scale = (rng.unit_f32() * 8.0 - 5.0).exp();
        x.extend((0..block).map(|_| rng.normal() * scale));
    }
    let q = quantize_to_vec(ty, &x).unwrap();
    assert_eq!(q.len(), ty.row_bytes(x.len() as u64).unwrap());
    let y = dequantize_to_vec(ty, &q).unwrap();
    // Per block relative error, then averaged, so small blocks count too.
    let mut total = 0.0f64;
    for (xb, yb) in x.chunks(block).zip(y.chunks(block)) {
        let err: f64 = xb
            .iter()
            .zip(yb)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let norm: f64 = xb.iter().map(|a| f64::from(*a).powi(2)).sum();
        total += (err / norm).sqrt();
    }
    total / n_blocks as f64
}

#[test]
fn quantize_round_trip_error_is_small() {
    // Bounds: the error of a uniform b-bit quantizer over a Gaussian block
    // is about range / 2^b / sqrt(12) relative to sigma, range ≈ 5 sigma,
    // with headroom (about 1.3x what this quantizer measures, so a
    // regression shows). F16/BF16 are bounded by their mantissa width.
    let bounds = [
        (GgmlType::F32, 0.0),
        (GgmlType::F16, 1e-3),
        (GgmlType::BF16, 4e-3),
        (GgmlType::Q8_0, 0.0065),
        (GgmlType::Q6_K, 0.022),
        (GgmlType::Q5_0, 0.05),
        (GgmlType::Q5_1, 0.05),
        (GgmlType::Q5_K, 0.045),
        (GgmlType::Q4_0, 0.10),
        (GgmlType::Q4_1, 0.10),
        (GgmlType::Q4_K, 0.09),
        (GgmlType::IQ4_NL, 0.095),
        (GgmlType::Q3_K, 0.19),
        (GgmlType::Q2_K, 0.35),
        (GgmlType::IQ4_XS, 0.095),
    ];
    for (ty, bound) in bounds {
        let e = round_trip_rel_rms(ty, 7 + u64::from(ty.id()));
        eprintln!("{ty}: relative RMS round-trip error {e:.5}");
        assert!(e <= bound, "{ty}: relative RMS error {e} > {bound}");
    }
}

#[test]
fn k_quants_beat_their_legacy_counterparts() {
    // Q4_K's per-32 affine scales with a refined fit should be no worse than
    // Q4_0's symmetric absmax scale; same for Q5_K vs Q5_0. Catches a
    // quantizer that is valid but lazy.
    for (k, legacy) in [
        (GgmlType::Q4_K, GgmlType::Q4_0),
        (GgmlType::Q5_K, GgmlType::Q5_0),
    ] {
        let ek = round_trip_rel_rms(k, 99);
        let el = round_trip_rel_rms(legacy, 99);
        assert!(ek < el, "{k} error {ek} not below {legacy} error {el}");
    }
}

#[test]
fn quantize_handles_zero_constant_and_spike_blocks() {
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q3_K,
        GgmlType::Q2_K,
    ] {
        let n = ty.block_size();
        let zeros = vec![0.0f32; n];
        let y = dequantize_to_vec(ty, &quantize_to_vec(ty, &zeros).unwrap()).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "{ty}: zeros → {y:?}");
        let mut spike = vec![0.0f32; n];
        spike[n / 3] = -2.5;
        let y = dequantize_to_vec(ty, &quantize_to_vec(ty, &spike).unwrap()).unwrap();
        assert!((y[n / 3] + 2.5).abs() < 0.01, "{ty}: spike → {}", y[n / 3]);
        assert!(
            y.iter()
                .enumerate()
                .all(|(i, v)| i == n / 3 || v.abs() < 0.01),
            "{ty}"
        );
        let constant = vec![0.375f32; n];
        let y = dequantize_to_vec(ty, &quantize_to_vec(ty, &constant).unwrap()).unwrap();
        assert!(
            y.iter().all(|v| (v - 0.375).abs() < 0.01),
            "{ty}: constant → {:?}",
            &y[..4]
        );
    }
}

#[test]
fn iq4_levels_beat_uniform_4_bit_codes() {
    // The non-uniform levels fit Gaussian weights better than Q4_0's evenly
    // spaced ones; a lazy scale choice would lose that.
    let (nl, q4) = (
        round_trip_rel_rms(GgmlType::IQ4_NL, 99),
        round_trip_rel_rms(GgmlType::Q4_0, 99),
    );
    assert!(nl < q4, "IQ4_NL error {nl} not below Q4_0 error {q4}");
}

#[test]
fn iq4_quantize_zero_constant_and_spike_blocks() {
    // No IQ4 level is 0: the nearest to 0 is 1 (of 127), so the other
    // weights of a spike block come back as at most 1/127 of the spike.
    for ty in [GgmlType::IQ4_NL, GgmlType::IQ4_XS] {
        let n = ty.block_size();
        let round_trip =
            |x: &[f32]| dequantize_to_vec(ty, &quantize_to_vec(ty, x).unwrap()).unwrap();
        assert!(
            round_trip(&vec![0.0; n]).iter().all(|&v| v == 0.0),
            "{ty}: zeros"
        );
        let mut spike = vec![0.0f32; n];
        spike[n / 3] = -2.5;
        let y = round_trip(&spike);
        assert!((y[n / 3] + 2.5).abs() < 0.01, "{ty}: spike → {}", y[n / 3]);
        let rest = y.iter().enumerate().filter(|&(i, _)| i != n / 3);
        assert!(
            rest.clone().all(|(_, v)| v.abs() <= 2.5 / 127.0 * 1.01),
            "{ty}"
        );
        let y = round_trip(&vec![0.375; n]);
        assert!(
            y.iter().all(|v| (v - 0.375).abs() < 0.01),
            "{ty}: constant → {:?}",
            &y[..4]
        );
    }
}

#[test]
fn quantize_rejects_bad_input() {
    assert!(quantize_to_vec(GgmlType::Q4_0, &[1.0; 31]).is_err());
    let mut x = vec![1.0f32; 32];
    x[5] = f32::NAN;
    let err = quantize_to_vec(GgmlType::Q8_0, &x).unwrap_err().to_string();
    assert!(err.contains("not finite"), "{err}");
    let mut out = vec![0u8; 83];
    let err = quantize(GgmlType::Q2_K, &[0.0; 256], &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("84"), "{err}");
}
