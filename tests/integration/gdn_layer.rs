//! The Gated DeltaNet layer ops (short conv, gates, gated RMS norm) on every
//! backend against the reference math of `ops::gdn::reference`, computed
//! here from the inputs as the device holds them (rounded to their dtype).

mod conv;
mod gates_norm;

use mlx_native::{CommandEncoder, DType, MlxBuffer, MlxDevice};

use crate::harness::{float_buffer, poisoned, rounding_rtol, Rng};
use conv::{check_conv_chain, check_conv_errors, check_ssm_conv, check_ssm_conv_views};
use gates_norm::{check_gates, check_gates_norm_errors, check_norm};

backend_tests! {
    ssm_conv_matches_reference => check_ssm_conv,
    ssm_conv_views_and_in_place_state => check_ssm_conv_views,
    ssm_conv_prefill_then_decode_equals_one_conv => check_conv_chain,
    ssm_conv_rejects_bad_inputs => check_conv_errors,
    gdn_gates_match_reference => check_gates,
    rms_norm_gated_matches_reference => check_norm,
    gates_and_norm_reject_bad_inputs => check_gates_norm_errors,
}

/// Tolerance of an output rounded to `dtype`, computed in f32 (GPU) or f64
/// (CPU) from the same inputs: one rounding plus a few f32 ulps of the sum.
fn tol(dtype: DType) -> (f64, f64) {
    (rounding_rtol(dtype) + 1e-5, 1e-6)
}

fn random_buffer(
    dev: &MlxDevice,
    rng: &mut Rng,
    dtype: DType,
    n: usize,
    lo: f64,
    hi: f64,
) -> MlxBuffer {
    float_buffer(dev, &rng.vec(n, lo, hi), dtype, &[n])
}

/// `n` elements at element `offset` of a poisoned buffer with `pad` more
/// poisoned elements after: a view whose surroundings must stay untouched.
fn view_in_poison(
    dev: &MlxDevice,
    dtype: DType,
    offset: usize,
    n: usize,
    pad: usize,
) -> (MlxBuffer, MlxBuffer) {
    let all = poisoned(dev, dtype, &[offset + n + pad]);
    let view = all.slice_view(offset * dtype.size_of(), n).unwrap();
    (all, view)
}

/// Every byte of `all` outside elements `offset..offset + n` is still 0xFF.
fn assert_untouched(what: &str, all: &MlxBuffer, offset: usize, n: usize) {
    let size = all.dtype().size_of();
    let bytes = all.read_bytes().unwrap();
    let (lo, hi) = (offset * size, (offset + n) * size);
    assert!(
        bytes[..lo].iter().chain(&bytes[hi..]).all(|&b| b == 0xFF),
        "{what}: bytes outside the output view were written"
    );
}

fn wait(enc: &mut CommandEncoder) {
    enc.commit_and_wait().unwrap();
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn expect_err(what: &str, op: &str, r: mlx_native::Result<()>) {
    match r {
        Ok(()) => panic!("{what}: accepted"),
        Err(e) => assert!(
            e.to_string().starts_with(&format!("{op}: ")),
            "{what}: message '{e}' does not start with '{op}: '"
        ),
    }
}
