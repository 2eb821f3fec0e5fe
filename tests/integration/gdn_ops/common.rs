//! Running the device ops on a test case, and the tolerances.
//!
//! Inputs are rounded to the call's dtype before the f64 reference sees
//! them, so the error measured is the op's own. Bounds on ‖Δ‖/‖ref‖:
//! - CPU F32: 2e-5, the f32 chunked reference's own bound (its tests).
//! - CPU BF16: 4e-3 for o: the f32 result rounded once to bf16 (half an ulp
//!   is 2^-9 ≈ 2e-3 relative); the state stays f32 (2e-5).
//! - CUDA F32: 2e-3. The matrix products round their operands to tf32
//!   (2^-11 ≈ 5e-4 relative); the triangular solve, W/U and the state
//!   carried over many chunks grow that by a small factor (measured on the
//!   H200: up to 5e-4).
//! - CUDA BF16: 1e-2. Products round to bf16 (2^-9 ≈ 2e-3), the
//!   intermediates W, U, P, V_new and the state operand are stored in bf16,
//!   and o is rounded to bf16, as in FLA's kernels (measured: up to 4e-3).
//!
//! Every element is also checked against 12× that bound times the RMS of
//! the reference, so one wrong row cannot hide in the norm.

use mlx_native::ops::gdn::{
    gated_delta_net_prefill, gated_delta_net_prefill_scratch_bytes, GdnPrefillParams,
};
use std::ops::Range;

use mlx_native::{DType, MlxBuffer, MlxDevice};

use crate::gdn_reference::common::{rel_err, Case, CaseData};
use crate::harness::{float_buffer, poisoned, read_f32};

pub use crate::gdn_reference::common::{run_recurrent, Decay};

/// (o, state) tolerances of a backend and dtype; see the module doc.
pub fn tolerance(dev: &MlxDevice, dtype: DType) -> (f64, f64) {
    match (dev.is_cuda(), dtype) {
        (false, DType::F32) => (2e-5, 2e-5),
        (false, _) => (4e-3, 2e-5),
        (true, DType::F32) => (2e-3, 2e-3),
        (true, _) => (1e-2, 1e-2),
    }
}

/// Rounds q, k, v to `dtype` (what the device sees).
pub fn round_to(data: &mut CaseData, dtype: DType) {
    if dtype == DType::BF16 {
        for x in [&mut data.q, &mut data.k, &mut data.v] {
            x.iter_mut()
                .for_each(|v| *v = half::bf16::from_f32(*v).to_f32());
        }
    }
}

/// Relative L2 error within `tol`, and every element within 12·tol·RMS.
pub fn check(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let err = rel_err(got, want);
    let rms = (want.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / want.len() as f64).sqrt();
    let worst = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - f64::from(w)).abs())
        .fold(0.0, f64::max);
    println!(
        "{what}: rel {err:.2e} (tol {tol:.1e}), max |Δ|/rms {:.2e}",
        worst / rms
    );
    assert!(err <= tol, "{what}: relative error {err:.3e} > {tol:.1e}");
    assert!(
        worst <= 12.0 * tol * rms,
        "{what}: an element is off by {worst:.3e}, rms {rms:.3e}"
    );
}

/// Device buffers of a case's inputs.
pub struct DeviceInputs {
    pub q: MlxBuffer,
    pub k: MlxBuffer,
    pub v: MlxBuffer,
    pub g: MlxBuffer,
    pub beta: MlxBuffer,
    pub initial_state: Option<MlxBuffer>,
}

pub fn upload(dev: &MlxDevice, case: &Case, data: &CaseData, dtype: DType) -> DeviceInputs {
    let (b, t) = (case.batch, case.seq_len);
    DeviceInputs {
        q: float_buffer(dev, &data.q, dtype, &[b, t, case.key_heads, case.key_dim]),
        k: float_buffer(dev, &data.k, dtype, &[b, t, case.key_heads, case.key_dim]),
        v: float_buffer(
            dev,
            &data.v,
            dtype,
            &[b, t, case.value_heads, case.value_dim],
        ),
        g: float_buffer(dev, &data.g, DType::F32, &[b, t, case.value_heads]),
        beta: float_buffer(dev, &data.beta, DType::F32, &[b, t, case.value_heads]),
        initial_state: data.initial_state.as_ref().map(|s| {
            float_buffer(
                dev,
                s,
                DType::F32,
                &[
                    case.num_sequences(),
                    case.value_heads,
                    case.value_dim,
                    case.key_dim,
                ],
            )
        }),
    }
}

pub fn state_shape(case: &Case) -> Vec<usize> {
    vec![
        case.num_sequences(),
        case.value_heads,
        case.value_dim,
        case.key_dim,
    ]
}

/// Output, final state and (when asked) chunk states of one device prefill,
/// every output poisoned first. `own_scratch` passes a scratch buffer.
pub struct DeviceRun {
    pub o: Vec<f32>,
    pub final_state: Vec<f32>,
    pub chunk_states: Option<Vec<f32>>,
}

pub fn run_prefill(
    dev: &MlxDevice,
    case: &Case,
    data: &CaseData,
    dtype: DType,
    own_scratch: bool,
    num_chunks: Option<usize>,
) -> DeviceRun {
    let inputs = upload(dev, case, data, dtype);
    let (b, t) = (case.batch, case.seq_len);
    let o = poisoned(dev, dtype, &[b, t, case.value_heads, case.value_dim]);
    let final_state = poisoned(dev, DType::F32, &state_shape(case));
    let chunk_states = num_chunks.map(|n| {
        poisoned(
            dev,
            DType::F32,
            &[n, case.value_heads, case.value_dim, case.key_dim],
        )
    });
    let scratch = own_scratch.then(|| {
        let bytes =
            gated_delta_net_prefill_scratch_bytes(&case.shape(), dtype, case.cu_seqlens.as_deref())
                .unwrap();
        poisoned(dev, DType::U8, &[bytes])
    });
    let params = GdnPrefillParams {
        scale: None,
        l2_normalize_qk: case.l2_norm,
        cu_seqlens: case.cu_seqlens.as_deref(),
        chunk_states: chunk_states.as_ref(),
        scratch: scratch.as_ref(),
    };
    let mut enc = dev.command_encoder().unwrap();
    gated_delta_net_prefill(
        &mut enc,
        &inputs.q,
        &inputs.k,
        &inputs.v,
        &inputs.g,
        &inputs.beta,
        inputs.initial_state.as_ref(),
        &o,
        Some(&final_state),
        &params,
    )
    .unwrap();
    enc.commit_and_wait().unwrap();
    DeviceRun {
        o: read_f32(&o),
        final_state: read_f32(&final_state),
        chunk_states: chunk_states.as_ref().map(read_f32),
    }
}

/// Tokens `range` of every batch row of `case`'s data, with `state` as the
/// initial state.
pub fn tokens_of(
    case: &Case,
    data: &CaseData,
    range: Range<usize>,
    state: Option<Vec<f32>>,
) -> CaseData {
    let rows = |x: &[f32], width: usize| -> Vec<f32> {
        (0..case.batch)
            .flat_map(|r| {
                let row = r * case.seq_len;
                x[(row + range.start) * width..(row + range.end) * width].to_vec()
            })
            .collect()
    };
    let (qk, v) = (
        case.key_heads * case.key_dim,
        case.value_heads * case.value_dim,
    );
    CaseData {
        q: rows(&data.q, qk),
        k: rows(&data.k, qk),
        v: rows(&data.v, v),
        g: rows(&data.g, case.value_heads),
        beta: rows(&data.beta, case.value_heads),
        initial_state: state,
    }
}
