//! Decode steps that start before the previous kernel finishes (their state
//! is a `ReadEarly` buffer): which steps the encoder starts early, and that
//! every result still equals the f64 recurrence.

use mlx_native::ops::copy::copy;
use mlx_native::ops::gdn::{
    gated_delta_net_decode, gated_delta_net_prefill, GdnDecodeParams, GdnPrefillParams,
};
use mlx_native::{CommandEncoder, DType, GraphExecutor, MlxBuffer, MlxDevice, Result};

use super::common::{check, round_to, run_recurrent, state_shape, tokens_of, tolerance, upload};
use crate::gdn_reference::common::{Case, CaseData};
use crate::harness::{float_buffer, poisoned, read_f32};

backend_tests! {
    decode_starts_early_only_where_it_is_safe => decode_starts_early_only_where_it_is_safe,
}

const SEQUENCES: usize = 3;
const TOKENS: usize = 4;

/// One operation of the sequence the test queues.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A copy kernel writes the sequence's initial state into its state.
    Init(usize),
    /// Prefill of the sequence's token 0 from its initial state into its
    /// state, with encoder scratch (allocated and freed on the stream).
    Prefill(usize),
    /// Decode of (sequence, token); whether it may start early.
    Decode(usize, usize, bool),
    /// An event signalled and waited for.
    Event,
}

use Step::{Decode, Event, Init, Prefill};

/// Each early start, or not, follows from the step before (and the one
/// before that when the previous step started early itself).
const STEPS: [Step; 15] = [
    Init(0),
    Decode(0, 0, false), // the copy kernel wrote this state
    Init(1),
    Decode(1, 0, false),
    Prefill(2),
    Decode(0, 1, false), // scratch was freed on the stream since
    Decode(1, 1, true),
    Decode(2, 1, true),  // two back wrote state 0, the last state 1
    Decode(1, 2, false), // two back wrote this state, and the last started early
    Decode(1, 3, false), // the last wrote this state
    Decode(0, 2, true),
    Event,
    Decode(2, 2, false),
    Decode(0, 3, true),
    Decode(2, 3, false), // the last started early, two back wrote this state
];

/// Everything one run of `STEPS` touches.
#[derive(Clone)]
struct Buffers {
    /// Per (sequence, token): q, k, v, g, β.
    tokens: Vec<Vec<[MlxBuffer; 5]>>,
    initial: Vec<MlxBuffer>,
    /// Adjacent views of one allocation.
    states: Vec<MlxBuffer>,
    /// Per (sequence, token).
    outs: Vec<Vec<MlxBuffer>>,
}

/// Queues `STEPS`; returns how many kernels each step launched early.
fn queue_steps(enc: &mut CommandEncoder, b: &Buffers) -> Result<Vec<u64>> {
    let decode = GdnDecodeParams {
        scale: None,
        l2_normalize_qk: true,
    };
    let prefill = GdnPrefillParams {
        l2_normalize_qk: true,
        ..GdnPrefillParams::default()
    };
    let mut early = Vec::new();
    for step in STEPS {
        let before = enc.stats().early_launches;
        match step {
            Init(s) => copy(enc, &b.initial[s], &b.states[s])?,
            Prefill(s) => {
                let [q, k, v, g, beta] = &b.tokens[s][0];
                let (init, o) = (&b.initial[s], &b.outs[s][0]);
                let state = Some(&b.states[s]);
                gated_delta_net_prefill(enc, q, k, v, g, beta, Some(init), o, state, &prefill)?
            }
            Decode(s, t, _) => {
                let [q, k, v, g, beta] = &b.tokens[s][t];
                let (state, o) = (&b.states[s], &b.outs[s][t]);
                gated_delta_net_decode(enc, q, k, v, g, beta, state, o, &decode)?
            }
            Event => {
                let e = enc.signal_event()?;
                enc.wait_event(&e)?;
            }
        }
        early.push(enc.stats().early_launches - before);
    }
    Ok(early)
}

fn decode_starts_early_only_where_it_is_safe(dev: &MlxDevice) {
    let (hk, hv, kd, vd) = (2, 4, 128, 128);
    let capable = dev
        .cuda_properties()
        .is_some_and(|p| p.compute_capability.0 >= 9 && p.driver_version >= 12030);
    let expected: Vec<u64> = STEPS
        .iter()
        .map(|s| matches!(s, Decode(_, _, true)) as u64)
        .collect();
    for dtype in [DType::F32, DType::BF16] {
        let cases: Vec<Case> = (0..SEQUENCES as u64)
            .map(|i| Case {
                l2_norm: true,
                initial_state: true,
                seed: 900 + i,
                ..Case::new(1, TOKENS, (hk, hv), (kd, vd))
            })
            .collect();
        let data: Vec<CaseData> = cases
            .iter()
            .map(|c| {
                let mut d = c.data();
                round_to(&mut d, dtype);
                d
            })
            .collect();
        let reference: Vec<_> = cases
            .iter()
            .zip(&data)
            .map(|(c, d)| run_recurrent(c, d))
            .collect();
        let one_token = Case::new(1, 1, (hk, hv), (kd, vd));
        let tokens: Vec<Vec<[MlxBuffer; 5]>> = (0..SEQUENCES)
            .map(|s| {
                (0..TOKENS)
                    .map(|t| {
                        let piece = tokens_of(&cases[s], &data[s], t..t + 1, None);
                        let x = upload(dev, &one_token, &piece, dtype);
                        [x.q, x.k, x.v, x.g, x.beta]
                    })
                    .collect()
            })
            .collect();
        let shape = state_shape(&one_token);
        let initial: Vec<MlxBuffer> = data
            .iter()
            .map(|d| float_buffer(dev, d.initial_state.as_ref().unwrap(), DType::F32, &shape))
            .collect();
        let state_len = cases[0].state_len();
        let fresh = || {
            let all = poisoned(dev, DType::F32, &[SEQUENCES * state_len]);
            Buffers {
                tokens: tokens.clone(),
                initial: initial.clone(),
                states: (0..SEQUENCES)
                    .map(|s| {
                        let view = all.slice_view(s * state_len * 4, state_len).unwrap();
                        view.with_shape(&shape).unwrap()
                    })
                    .collect(),
                outs: (0..SEQUENCES)
                    .map(|_| {
                        (0..TOKENS)
                            .map(|_| poisoned(dev, dtype, &[1, 1, hv, vd]))
                            .collect()
                    })
                    .collect(),
            }
        };
        let (tol_o, tol_s) = tolerance(dev, dtype);
        for how in ["own stream", "own stream, timed", "shared stream", "graph"] {
            let b = fresh();
            let mut enc = match how {
                "shared stream" => dev.command_encoder().unwrap(),
                _ => dev.command_encoder_on_new_stream().unwrap(),
            };
            enc.enable_timing(how.ends_with("timed"));
            let what = format!("{dtype}, {how}");
            if how == "graph" {
                let recorded = b.clone();
                let mut graph = GraphExecutor::capture(&mut enc, move |e| {
                    queue_steps(e, &recorded).map(|_| ())
                })
                .unwrap();
                let want: u64 = if capable { expected.iter().sum() } else { 0 };
                assert_eq!(enc.stats().early_launches, want, "{what}: launched early");
                graph.replay(&mut enc).unwrap();
            } else {
                let early = queue_steps(&mut enc, &b).unwrap();
                let want = if capable && how == "own stream" {
                    expected.clone()
                } else {
                    vec![0; STEPS.len()]
                };
                assert_eq!(early, want, "{what}: kernels launched early per step");
            }
            enc.commit_and_wait().unwrap();
            let width = hv * vd;
            for (s, want) in reference.iter().enumerate() {
                for (t, out) in b.outs[s].iter().enumerate() {
                    let o = &want.o[t * width..(t + 1) * width];
                    let what = format!("{what}: o of sequence {s}, token {t}");
                    check(&what, &read_f32(out), o, tol_o);
                }
                let state = read_f32(&b.states[s]);
                check(
                    &format!("{what}: state {s}"),
                    &state,
                    &want.final_state,
                    tol_s,
                );
            }
        }
    }
}
