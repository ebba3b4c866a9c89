//! The order-aware model: EASE's long-term taste blended with item-to-item transitions from the
//! customer's most recent items.
//!
//! For a customer whose history ends `…, h₂, h₁, h₀` (h₀ the latest), the transition part of
//! item `j` is `Σ_{t < recent} recency_decay^t · P(j | h_t)`, with `P` the normalised
//! [`Transitions`]. Both parts are scaled to a maximum of 1 over the items the customer has not
//! bought, then `score = alpha · transitions + (1 - alpha) · EASE`. All settings are chosen on a
//! validation split ([`tune`](super::tune)). Transitions update online with every order; EASE
//! refits on demand.

use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};
use crate::recommend::ease::Ease;
use crate::recommend::interactions::{Interactions, ObservedOrder};
use crate::recommend::scorer::ItemScorer;
use crate::recommend::transitions::Transitions;

/// The settings of [`SequentialEase`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialParams {
    /// EASE's L2 weight.
    pub lambda: f64,
    /// Successions are counted up to this many steps apart.
    pub gap_window: usize,
    /// A succession `d` steps apart weighs `gap_decay^(d-1)`.
    pub gap_decay: f64,
    /// How many of the customer's latest items feed the transition part.
    pub recent: usize,
    /// The `t`-th latest item (0 = latest) weighs `recency_decay^t`.
    pub recency_decay: f64,
    /// Weight of the transition part in the blend, in `[0, 1]`.
    pub alpha: f64,
}

impl SequentialParams {
    /// Checks every setting is in range (invalid input otherwise).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(AiError::InvalidInput(m));
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return bad(format!("lambda must be positive, got {}", self.lambda));
        }
        if self.gap_window == 0 || self.recent == 0 {
            return bad("gap_window and recent must be at least 1".into());
        }
        for (name, v) in [
            ("gap_decay", self.gap_decay),
            ("recency_decay", self.recency_decay),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(format!("{name} must be in (0, 1], got {v}"));
            }
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad(format!("alpha must be in [0, 1], got {}", self.alpha));
        }
        Ok(())
    }
}

impl Default for SequentialParams {
    /// The settings tuning picks on MovieLens 100k (`recommend eval`, ties by item id); tune on
    /// your own data with [`tune_sequential`](super::tune::tune_sequential).
    fn default() -> Self {
        Self {
            lambda: 400.0,
            gap_window: 10,
            gap_decay: 0.8,
            recent: 5,
            recency_decay: 0.8,
            alpha: 0.7,
        }
    }
}

/// EASE blended with recent-item transitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialEase {
    params: SequentialParams,
    ease: Ease,
    transitions: Transitions,
}

impl SequentialEase {
    /// Fits EASE and counts transitions on all of `data`.
    pub fn fit(data: &Interactions, params: SequentialParams) -> Result<Self> {
        params.validate()?;
        let ease = Ease::fit(data, params.lambda)?;
        let transitions = Transitions::fit(data, params.gap_window, params.gap_decay)?;
        Self::from_parts(params, ease, transitions)
    }

    /// Assembles from an already fitted EASE and transition counts (used by tuning, which
    /// reuses them across settings). Their settings must match `params`.
    pub fn from_parts(
        params: SequentialParams,
        ease: Ease,
        transitions: Transitions,
    ) -> Result<Self> {
        params.validate()?;
        if ease.lambda() != params.lambda
            || transitions.window() != params.gap_window
            || transitions.decay() != params.gap_decay
        {
            return Err(AiError::InvalidInput(
                "EASE or transitions fitted with other settings than params".into(),
            ));
        }
        Ok(Self {
            params,
            ease,
            transitions,
        })
    }

    /// The settings.
    pub fn params(&self) -> &SequentialParams {
        &self.params
    }

    /// The EASE part, unscaled.
    pub fn ease_scores(&self, data: &Interactions, history: &[u32], scores: &mut [f64]) {
        self.ease.score(data, history, scores);
    }

    /// The transition part, unscaled.
    pub fn transition_scores(&self, history: &[u32], scores: &mut [f64]) {
        transition_scores(
            &self.transitions,
            history,
            self.params.recent,
            self.params.recency_decay,
            scores,
        );
    }
}

/// `Σ_{t < recent} recency_decay^t · P(j | h_t)` over the latest items of `history`.
pub fn transition_scores(
    transitions: &Transitions,
    history: &[u32],
    recent: usize,
    recency_decay: f64,
    scores: &mut [f64],
) {
    let mut w = 1.0;
    for &i in history.iter().rev().take(recent) {
        transitions.add_successors(i, w, scores);
        w *= recency_decay;
    }
}

/// Scale of `v` to a maximum of 1 over items not `seen` (1 when that maximum is not positive).
pub fn unit_scale(v: &[f64], seen: &[bool]) -> f64 {
    let max = v
        .iter()
        .zip(seen)
        .filter(|(_, s)| !**s)
        .map(|(x, _)| *x)
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if max > 0.0 { 1.0 / max } else { 1.0 }
}

/// Writes `alpha · trans/max + (1 - alpha) · ease/max` into `out` (maxima over unseen items).
pub fn blend(alpha: f64, ease: &[f64], trans: &[f64], seen: &[bool], out: &mut [f64]) {
    let se = (1.0 - alpha) * unit_scale(ease, seen);
    let st = alpha * unit_scale(trans, seen);
    for ((o, e), t) in out.iter_mut().zip(ease).zip(trans) {
        *o = se * e + st * t;
    }
}

impl ItemScorer for SequentialEase {
    fn kind(&self) -> &'static str {
        "recommend.sequential_ease"
    }

    fn score(&self, data: &Interactions, history: &[u32], scores: &mut [f64]) {
        let n = scores.len();
        let mut ease = vec![0.0; n];
        let mut trans = vec![0.0; n];
        self.ease_scores(data, history, &mut ease);
        self.transition_scores(history, &mut trans);
        let mut seen = vec![false; n];
        for &i in history {
            if let Some(s) = seen.get_mut(i as usize) {
                *s = true;
            }
        }
        blend(self.params.alpha, &ease, &trans, &seen, scores);
    }

    fn observe(&mut self, data: &Interactions, order: &ObservedOrder) {
        self.transitions
            .extend(data.history(order.customer), order.before);
    }

    fn refit(&mut self, data: &Interactions) -> Result<()> {
        self.ease = Ease::fit(data, self.params.lambda)?;
        self.transitions = Transitions::fit(data, self.params.gap_window, self.params.gap_decay)?;
        Ok(())
    }
}
