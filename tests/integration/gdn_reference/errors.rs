//! Bad shapes and arguments are errors naming the op, never panics.

use mlx_native::ops::gdn::reference::{
    gdn_chunked, gdn_gates, gdn_recurrent_f64, l2_normalize_rows, rms_norm_gated, ssm_conv,
    ssm_conv_decode, ChunkLayout, GdnOutputs, SsmConvShape,
};
use mlx_native::MlxError;

use super::common::{poisoned, Case};

fn assert_error(result: mlx_native::Result<()>, op: &str, shape_error: bool) {
    match result {
        Err(err @ MlxError::ShapeMismatch { .. }) if shape_error => {
            assert!(err.to_string().starts_with(op), "{err}")
        }
        Err(err @ MlxError::InvalidArgument { .. }) if !shape_error => {
            assert!(err.to_string().starts_with(op), "{err}")
        }
        other => panic!(
            "{op}: expected a {} error, got {other:?}",
            if shape_error { "shape" } else { "argument" }
        ),
    }
}

/// Runs both GDN forms on a case whose data was altered by `spoil`.
fn check_gdn(
    case: &Case,
    spoil: impl Fn(&mut super::common::CaseData),
    o_len: usize,
    shape_error: bool,
) {
    let mut data = case.data();
    spoil(&mut data);
    let inputs = data.inputs(case);
    let mut o = poisoned(o_len);
    let result = gdn_recurrent_f64(
        &case.shape(),
        &case.config(),
        &inputs,
        GdnOutputs {
            o: &mut o,
            final_state: None,
        },
    );
    assert_error(result, "gdn_recurrent_f64", shape_error);
    let result = gdn_chunked(
        &case.shape(),
        &case.config(),
        &inputs,
        64,
        GdnOutputs {
            o: &mut o,
            final_state: None,
        },
        None,
    );
    assert_error(result, "gdn_chunked", shape_error);
}

#[test]
fn gdn_rejects_bad_shapes() {
    let case = Case {
        initial_state: true,
        ..Case::new(2, 5, (1, 2), (8, 4))
    };
    let o_len = 2 * 5 * 2 * 4;
    check_gdn(&case, |d| d.k.truncate(d.k.len() - 1), o_len, true);
    check_gdn(&case, |d| d.beta.push(0.5), o_len, true);
    check_gdn(&case, |d| d.initial_state = Some(vec![0.5; 3]), o_len, true);
    check_gdn(&case, |_| (), o_len + 1, true);
    // Value heads not a multiple of key heads.
    let odd_groups = Case::new(2, 5, (2, 3), (8, 4));
    check_gdn(&odd_groups, |_| (), 2 * 5 * 3 * 4, false);
    // cu_seqlens with batch 2, and offsets not ending at seq_len.
    check_gdn(
        &Case {
            cu_seqlens: Some(vec![0, 5, 10]),
            ..case.clone()
        },
        |_| (),
        o_len,
        false,
    );
    let packed = Case {
        cu_seqlens: Some(vec![0, 3, 4]),
        ..Case::new(1, 5, (1, 2), (8, 4))
    };
    check_gdn(&packed, |_| (), 5 * 2 * 4, false);
    let decreasing = Case {
        cu_seqlens: Some(vec![0, 3, 2, 5]),
        ..Case::new(1, 5, (1, 2), (8, 4))
    };
    check_gdn(&decreasing, |_| (), 5 * 2 * 4, false);
    assert!(matches!(
        ChunkLayout::new(&case.shape(), None, 0),
        Err(MlxError::InvalidArgument { .. })
    ));
}

#[test]
fn chunked_rejects_wrong_chunk_states_length() {
    let case = Case::new(1, 70, (1, 1), (8, 4));
    let data = case.data();
    let mut o = poisoned(70 * 4);
    let mut states = poisoned(32); // two chunks need 2 · 4 · 8 = 64
    let result = gdn_chunked(
        &case.shape(),
        &case.config(),
        &data.inputs(&case),
        64,
        GdnOutputs {
            o: &mut o,
            final_state: None,
        },
        Some(&mut states),
    );
    assert_error(result, "gdn_chunked", true);
}

#[test]
fn conv_gates_and_norms_reject_bad_shapes() {
    let shape = SsmConvShape {
        channels: 3,
        kernel_width: 4,
    };
    let (w, mut state, mut y) = (vec![0.1; 12], vec![0.1; 9], poisoned(6));
    assert_error(
        ssm_conv(&shape, &[0.5; 7], &w, None, &mut state, &mut y),
        "ssm_conv",
        true,
    );
    assert_error(
        ssm_conv(&shape, &[0.5; 6], &w[..11], None, &mut state, &mut y),
        "ssm_conv",
        true,
    );
    assert_error(
        ssm_conv(&shape, &[0.5; 6], &w, Some(&[0.1; 2]), &mut state, &mut y),
        "ssm_conv",
        true,
    );
    assert_error(
        ssm_conv(&shape, &[0.5; 6], &w, None, &mut state[..6], &mut y),
        "ssm_conv",
        true,
    );
    let narrow = SsmConvShape {
        channels: 3,
        kernel_width: 1,
    };
    assert_error(
        ssm_conv(&narrow, &[0.5; 6], &w[..3], None, &mut [], &mut y),
        "ssm_conv",
        false,
    );
    assert_error(
        ssm_conv_decode(&shape, &[0.5; 6], &w, None, &mut state, &mut y[..3]),
        "ssm_conv_decode",
        true,
    );

    let (mut g, mut beta) = (poisoned(4), poisoned(4));
    assert_error(
        gdn_gates(
            2, &[0.0; 2], &[0.0; 2], &[0.0; 4], &[0.0; 3], &mut g, &mut beta,
        ),
        "gdn_gates",
        true,
    );
    assert_error(
        gdn_gates(
            3, &[0.0; 3], &[0.0; 3], &[0.0; 4], &[0.0; 4], &mut g, &mut beta,
        ),
        "gdn_gates",
        true,
    );
    assert_error(
        gdn_gates(
            2, &[0.0; 1], &[0.0; 2], &[0.0; 4], &[0.0; 4], &mut g, &mut beta,
        ),
        "gdn_gates",
        true,
    );

    let mut out = poisoned(6);
    assert_error(
        rms_norm_gated(&[1.0; 6], &[1.0; 5], &[1.0; 3], 1e-6, &mut out),
        "rms_norm_gated",
        true,
    );
    assert_error(
        rms_norm_gated(&[1.0; 6], &[1.0; 6], &[1.0; 4], 1e-6, &mut out),
        "rms_norm_gated",
        true,
    );
    assert_error(
        rms_norm_gated(&[1.0; 6], &[1.0; 6], &[1.0; 3], -1.0, &mut out),
        "rms_norm_gated",
        false,
    );
    assert_error(
        l2_normalize_rows(&[1.0; 6], 4, 1e-6, &mut out),
        "l2_normalize_rows",
        true,
    );
}
