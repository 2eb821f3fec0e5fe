//! Bad calls fail with an error naming the op, before any kernel runs.

use mlx_native::ops::gdn::reference::GdnShape;
use mlx_native::ops::gdn::{
    gated_delta_net_decode, gated_delta_net_prefill, gated_delta_net_prefill_scratch_bytes,
    GdnDecodeParams, GdnPrefillParams,
};
use mlx_native::{DType, MlxBuffer, MlxDevice, Result};

use crate::harness::{float_buffer, poisoned, Rng};

backend_tests! {
    prefill_rejects_bad_inputs => prefill_rejects_bad_inputs,
    decode_rejects_bad_inputs => decode_rejects_bad_inputs,
}

/// The scratch size follows the op's own rules and never overflows.
#[test]
fn scratch_bytes_checks_its_shape() {
    const OP: &str = "gated_delta_net_prefill_scratch_bytes";
    let shape = GdnShape {
        batch: 1,
        seq_len: 100,
        num_key_heads: 1,
        num_value_heads: 2,
        key_dim: 128,
        value_dim: 128,
    };
    let ok = gated_delta_net_prefill_scratch_bytes(&shape, DType::BF16, None).unwrap();
    let packed =
        gated_delta_net_prefill_scratch_bytes(&shape, DType::BF16, Some(&[0, 30, 100])).unwrap();
    assert!(ok > 0 && packed >= ok, "{ok} {packed}");
    let size = |s: &GdnShape, cu: Option<&[usize]>| {
        gated_delta_net_prefill_scratch_bytes(s, DType::BF16, cu).map(|_| ())
    };
    let two = GdnShape { batch: 2, ..shape };
    expect_err("packed batch 2", OP, size(&two, Some(&[0, 100])), "batch 1");
    expect_err(
        "offsets end short",
        OP,
        size(&shape, Some(&[0, 50])),
        "end at seq_len",
    );
    let huge = GdnShape {
        seq_len: usize::MAX / 2,
        ..shape
    };
    expect_err("huge", OP, size(&huge, None), "would not fit");
    let zero = GdnShape {
        key_dim: 0,
        ..shape
    };
    expect_err("zero key_dim", OP, size(&zero, None), "positive");
}

struct Call {
    q: MlxBuffer,
    k: MlxBuffer,
    v: MlxBuffer,
    g: MlxBuffer,
    beta: MlxBuffer,
    state: MlxBuffer,
    o: MlxBuffer,
}

/// A valid call: B=1, T=10, H_k=1, H_v=2, K=64, V=128.
fn valid(dev: &MlxDevice, dtype: DType) -> Call {
    let mut rng = Rng::new(9);
    let (t, hk, hv, kd, vd) = (10, 1, 2, 64, 128);
    let f = |rng: &mut Rng, n: usize, dt: DType, shape: &[usize]| {
        float_buffer(dev, &rng.vec(n, -0.1, 0.1), dt, shape)
    };
    Call {
        q: f(&mut rng, t * hk * kd, dtype, &[1, t, hk, kd]),
        k: f(&mut rng, t * hk * kd, dtype, &[1, t, hk, kd]),
        v: f(&mut rng, t * hv * vd, dtype, &[1, t, hv, vd]),
        g: float_buffer(dev, &vec![-0.1; t * hv], DType::F32, &[1, t, hv]),
        beta: float_buffer(dev, &vec![0.5; t * hv], DType::F32, &[1, t, hv]),
        state: f(&mut rng, hv * vd * kd, DType::F32, &[1, hv, vd, kd]),
        o: poisoned(dev, dtype, &[1, t, hv, vd]),
    }
}

fn prefill(dev: &MlxDevice, c: &Call, params: &GdnPrefillParams<'_>) -> Result<()> {
    let mut enc = dev.command_encoder()?;
    gated_delta_net_prefill(
        &mut enc,
        &c.q,
        &c.k,
        &c.v,
        &c.g,
        &c.beta,
        Some(&c.state),
        &c.o,
        Some(&c.state),
        params,
    )?;
    enc.commit_and_wait()
}

fn decode(dev: &MlxDevice, c: &Call) -> Result<()> {
    let mut enc = dev.command_encoder()?;
    gated_delta_net_decode(
        &mut enc,
        &c.q,
        &c.k,
        &c.v,
        &c.g,
        &c.beta,
        &c.state,
        &c.o,
        &GdnDecodeParams::default(),
    )?;
    enc.commit_and_wait()
}

fn expect_err(what: &str, op: &str, r: Result<()>, needle: &str) {
    match r {
        Ok(()) => panic!("{what}: accepted"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(op),
                "{what}: message {msg:?} does not start with {op}"
            );
            assert!(
                msg.contains(needle),
                "{what}: message {msg:?} lacks {needle:?}"
            );
        }
    }
}

/// `c` with one field replaced.
fn with(dev: &MlxDevice, f: impl FnOnce(&mut Call)) -> Call {
    let mut c = valid(dev, DType::BF16);
    f(&mut c);
    c
}

fn prefill_rejects_bad_inputs(dev: &MlxDevice) {
    const OP: &str = "gated_delta_net_prefill";
    let p = GdnPrefillParams::default();
    // The valid call itself runs (state in place).
    prefill(dev, &valid(dev, DType::BF16), &p).unwrap();
    prefill(dev, &valid(dev, DType::F32), &p).unwrap();

    let cases: Vec<(&str, Call, &str)> = vec![
        (
            "f16 q",
            with(dev, |c| c.q = poisoned(dev, DType::F16, &[1, 10, 1, 64])),
            "dtype",
        ),
        (
            "f32 k with bf16 q",
            with(dev, |c| c.k = poisoned(dev, DType::F32, &[1, 10, 1, 64])),
            "dtype",
        ),
        (
            "bf16 g",
            with(dev, |c| c.g = poisoned(dev, DType::BF16, &[1, 10, 2])),
            "dtype",
        ),
        (
            "bf16 state",
            with(dev, |c| {
                c.state = poisoned(dev, DType::BF16, &[1, 2, 128, 64])
            }),
            "dtype",
        ),
        (
            "3-D q",
            with(dev, |c| c.q = poisoned(dev, DType::BF16, &[10, 1, 64])),
            "shape",
        ),
        (
            "k shape",
            with(dev, |c| c.k = poisoned(dev, DType::BF16, &[1, 10, 2, 64])),
            "shape",
        ),
        (
            "v batch",
            with(dev, |c| c.v = poisoned(dev, DType::BF16, &[1, 9, 2, 128])),
            "shape",
        ),
        (
            "g length",
            with(dev, |c| c.g = poisoned(dev, DType::F32, &[1, 10, 3])),
            "elements",
        ),
        (
            "o length",
            with(dev, |c| c.o = poisoned(dev, DType::BF16, &[1, 10, 2, 64])),
            "elements",
        ),
        (
            "state length",
            with(dev, |c| {
                c.state = poisoned(dev, DType::F32, &[1, 2, 64, 64])
            }),
            "elements",
        ),
        (
            "K = 96",
            with(dev, |c| {
                c.q = poisoned(dev, DType::BF16, &[1, 10, 1, 96]);
                c.k = poisoned(dev, DType::BF16, &[1, 10, 1, 96]);
            }),
            "not supported",
        ),
        (
            "H_v not a multiple",
            with(dev, |c| {
                c.q = poisoned(dev, DType::BF16, &[1, 10, 3, 64]);
                c.k = poisoned(dev, DType::BF16, &[1, 10, 3, 64]);
            }),
            "multiple",
        ),
        (
            "o aliases q",
            with(dev, |c| {
                c.o = c.v.clone();
            }),
            "overlaps",
        ),
        (
            "misaligned q view",
            with(dev, |c| {
                let big = poisoned(dev, DType::BF16, &[640 + 2]);
                c.q = big
                    .slice_view(4, 640)
                    .unwrap()
                    .with_shape(&[1, 10, 1, 64])
                    .unwrap();
            }),
            "aligned",
        ),
    ];
    for (what, c, needle) in &cases {
        expect_err(what, OP, prefill(dev, c, &p), needle);
    }

    let c = valid(dev, DType::BF16);
    let bad_offsets: [(&str, &[usize], &str); 4] = [
        ("offsets not monotone", &[0, 6, 4, 10], "non-decreasing"),
        ("offsets end short", &[0, 4, 9], "end at seq_len"),
        ("offsets start late", &[1, 10], "start at 0"),
        ("no sequence", &[0], "sequences"),
    ];
    for (what, offsets, needle) in bad_offsets {
        let params = GdnPrefillParams {
            cu_seqlens: Some(offsets),
            ..p
        };
        expect_err(what, OP, prefill(dev, &c, &params), needle);
    }
    // Two packed sequences need two states.
    let params = GdnPrefillParams {
        cu_seqlens: Some(&[0, 4, 10]),
        ..p
    };
    expect_err(
        "state count for packed",
        OP,
        prefill(dev, &c, &params),
        "elements",
    );
    let small = poisoned(dev, DType::U8, &[64]);
    let params = GdnPrefillParams {
        scratch: Some(&small),
        ..p
    };
    expect_err(
        "scratch too small",
        OP,
        prefill(dev, &c, &params),
        "scratch",
    );
    let chunks = poisoned(dev, DType::F32, &[2, 2, 128, 64]);
    let params = GdnPrefillParams {
        chunk_states: Some(&chunks),
        ..p
    };
    expect_err(
        "chunk_states count",
        OP,
        prefill(dev, &c, &params),
        "elements",
    );
    let params = GdnPrefillParams {
        scale: Some(f32::NAN),
        ..p
    };
    expect_err("NaN scale", OP, prefill(dev, &c, &params), "finite");

    if dev.is_cuda() {
        // A host buffer given to a CUDA encoder.
        let cpu = MlxDevice::cpu();
        let host = with(dev, |c| {
            c.g = float_buffer(&cpu, &[-0.1; 20], DType::F32, &[1, 10, 2])
        });
        expect_err(
            "g on the CPU",
            OP,
            prefill(dev, &host, &p),
            "different devices",
        );
    }
}

fn decode_rejects_bad_inputs(dev: &MlxDevice) {
    const OP: &str = "gated_delta_net_decode";
    decode(dev, &valid(dev, DType::BF16)).unwrap();
    let cases: Vec<(&str, Call, &str)> = vec![
        (
            "bf16 state",
            with(dev, |c| {
                c.state = poisoned(dev, DType::BF16, &[1, 2, 128, 64])
            }),
            "dtype",
        ),
        (
            "state length",
            with(dev, |c| {
                c.state = poisoned(dev, DType::F32, &[2, 2, 128, 64])
            }),
            "elements",
        ),
        (
            "state aliases o",
            with(dev, |c| c.o = c.v.clone()),
            "overlaps",
        ),
        (
            "V = 32",
            with(dev, |c| c.v = poisoned(dev, DType::BF16, &[1, 10, 2, 32])),
            "not supported",
        ),
        (
            "f16 v",
            with(dev, |c| c.v = poisoned(dev, DType::F16, &[1, 10, 2, 128])),
            "dtype",
        ),
    ];
    for (what, c, needle) in &cases {
        expect_err(what, OP, decode(dev, c), needle);
    }
}
