//! Seeded data and the comparisons the GDN tests share.

use mlx_native::ops::gdn::reference::{GdnConfig, GdnInputs, GdnOutputs, GdnShape};

pub use crate::harness::Rng;

/// ‖a − b‖₂ / ‖b‖₂ in f64.
pub fn rel_err(got: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(got.len(), reference.len());
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&g, &r) in got.iter().zip(reference) {
        assert!(g.is_finite(), "non-finite output {g}");
        diff += (f64::from(g) - f64::from(r)).powi(2);
        norm += f64::from(r).powi(2);
    }
    assert!(norm > 0.0, "reference is all zero: the test could not fail");
    (diff / norm).sqrt()
}

/// Range of the log-decays g, drawn log-uniformly in magnitude.
#[derive(Debug, Clone, Copy)]
pub enum Decay {
    /// g ∈ [−20, −1e-4]: mostly mild, sometimes a near-total reset.
    Full,
    /// g ∈ [−0.05, −1e-4]: long memory, so the state accumulates over many tokens.
    Slow,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub batch: usize,
    pub seq_len: usize,
    pub key_heads: usize,
    pub value_heads: usize,
    pub key_dim: usize,
    pub value_dim: usize,
    pub l2_norm: bool,
    pub initial_state: bool,
    pub decay: Decay,
    pub cu_seqlens: Option<Vec<usize>>,
    pub seed: u64,
}

impl Case {
    pub fn new(batch: usize, seq_len: usize, heads: (usize, usize), dims: (usize, usize)) -> Self {
        Case {
            batch,
            seq_len,
            key_heads: heads.0,
            value_heads: heads.1,
            key_dim: dims.0,
            value_dim: dims.1,
            l2_norm: false,
            initial_state: false,
            decay: Decay::Full,
            cu_seqlens: None,
            seed: 1,
        }
    }

    pub fn shape(&self) -> GdnShape {
        GdnShape {
            batch: self.batch,
            seq_len: self.seq_len,
            num_key_heads: self.key_heads,
            num_value_heads: self.value_heads,
            key_dim: self.key_dim,
            value_dim: self.value_dim,
        }
    }

    pub fn config(&self) -> GdnConfig {
        GdnConfig {
            l2_normalize_qk: self.l2_norm,
            ..GdnConfig::new(self.key_dim)
        }
    }

    pub fn num_sequences(&self) -> usize {
        self.cu_seqlens.as_ref().map_or(self.batch, |c| c.len() - 1)
    }

    pub fn state_len(&self) -> usize {
        self.num_sequences() * self.value_heads * self.value_dim * self.key_dim
    }

    pub fn data(&self) -> CaseData {
        let mut rng = Rng::new(self.seed);
        let tokens = self.batch * self.seq_len;
        let qk_len = tokens * self.key_heads * self.key_dim;
        let q = rng.vec(qk_len, -1.0, 1.0);
        // Without L2 norm keep ‖k‖² ≈ 0.8 < 2, where the delta rule is
        // stable (the write I − β k kᵀ has eigenvalues in (−1, 1]).
        let k_amp = if self.l2_norm {
            1.0
        } else {
            0.9 * (3.0 / self.key_dim as f64).sqrt()
        };
        let k = rng.vec(qk_len, -k_amp, k_amp);
        let v = rng.vec(tokens * self.value_heads * self.value_dim, -1.0, 1.0);
        let (lo, hi): (f64, f64) = match self.decay {
            Decay::Full => (1e-4, 20.0),
            Decay::Slow => (1e-4, 0.05),
        };
        let g = (0..tokens * self.value_heads)
            .map(|_| -(lo.ln() + (hi.ln() - lo.ln()) * rng.unit()).exp() as f32)
            .collect();
        let beta = rng.vec(tokens * self.value_heads, 0.0, 1.0);
        let initial_state = self
            .initial_state
            .then(|| rng.vec(self.state_len(), -1.0, 1.0));
        CaseData {
            q,
            k,
            v,
            g,
            beta,
            initial_state,
        }
    }
}

pub struct CaseData {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub g: Vec<f32>,
    pub beta: Vec<f32>,
    pub initial_state: Option<Vec<f32>>,
}

impl CaseData {
    pub fn inputs<'a>(&'a self, case: &'a Case) -> GdnInputs<'a> {
        GdnInputs {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            g: &self.g,
            beta: &self.beta,
            initial_state: self.initial_state.as_deref(),
            cu_seqlens: case.cu_seqlens.as_deref(),
        }
    }
}

/// Output and final state of one run, poisoned with NaN before the call.
pub struct RunResult {
    pub o: Vec<f32>,
    pub final_state: Vec<f32>,
}

pub fn poisoned(len: usize) -> Vec<f32> {
    vec![f32::NAN; len]
}

pub fn run_recurrent(case: &Case, data: &CaseData) -> RunResult {
    let mut o = poisoned(case.batch * case.seq_len * case.value_heads * case.value_dim);
    let mut final_state = poisoned(case.state_len());
    let outputs = GdnOutputs {
        o: &mut o,
        final_state: Some(&mut final_state),
    };
    mlx_native::ops::gdn::reference::gdn_recurrent_f64(
        &case.shape(),
        &case.config(),
        &data.inputs(case),
        outputs,
    )
    .expect("recurrent reference");
    RunResult { o, final_state }
}

pub fn run_chunked(case: &Case, data: &CaseData, chunk_size: usize) -> RunResult {
    let mut o = poisoned(case.batch * case.seq_len * case.value_heads * case.value_dim);
    let mut final_state = poisoned(case.state_len());
    let outputs = GdnOutputs {
        o: &mut o,
        final_state: Some(&mut final_state),
    };
    mlx_native::ops::gdn::reference::gdn_chunked(
        &case.shape(),
        &case.config(),
        &data.inputs(case),
        chunk_size,
        outputs,
        None,
    )
    .expect("chunked");
    RunResult { o, final_state }
}
