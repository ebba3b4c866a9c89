//! A first-order Markov model of event symbols (`event_type:status`) learned from normal sagas.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::trace::{SagaTrace, TraceEvent, TraceStatus};
use crate::error::{AiError, Result};

/// The symbol before a saga's first event.
pub const START: &str = "<start>";
/// The symbol after its last event.
pub const END: &str = "<end>";

/// Transition counts with additive smoothing: an unseen transition gets a small, non-zero
/// probability, so it scores high but finite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionModel {
    /// `counts[from][to]`.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Transitions out of each symbol.
    pub totals: BTreeMap<String, u64>,
    /// Distinct symbols seen (the end symbol included).
    pub vocabulary: usize,
    /// Pseudo-count added to every transition.
    pub alpha: f64,
}

/// One step of a sequence, with how surprising it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// From symbol.
    pub from: String,
    /// To symbol.
    pub to: String,
    /// Its smoothed probability.
    pub probability: f64,
    /// Times it was seen in training.
    pub seen: u64,
    /// Whether it repeats the same step (a retry).
    pub repeat: bool,
}

impl Transition {
    /// `-ln(probability)`.
    pub fn surprise(&self) -> f64 {
        -self.probability.ln()
    }
}

impl TransitionModel {
    /// Counts transitions in normal sagas; `alpha` > 0 is the smoothing pseudo-count.
    pub fn fit(traces: &[SagaTrace], alpha: f64) -> Result<Self> {
        if !alpha.is_finite() || alpha <= 0.0 {
            return Err(AiError::InvalidInput(format!(
                "alpha must be > 0, got {alpha}"
            )));
        }
        if traces.is_empty() {
            return Err(AiError::NotEnoughData(
                "no sagas to learn transitions from".into(),
            ));
        }
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        let mut symbols = BTreeSet::new();
        for t in traces {
            let seq = Self::symbols(t);
            for w in seq.windows(2) {
                *counts
                    .entry(w[0].clone())
                    .or_default()
                    .entry(w[1].clone())
                    .or_default() += 1;
                *totals.entry(w[0].clone()).or_default() += 1;
                symbols.insert(w[1].clone());
            }
        }
        Ok(Self {
            counts,
            totals,
            vocabulary: symbols.len(),
            alpha,
        })
    }

    /// The events the sequence model reads: replied ones. Pending and timed-out events are the
    /// duration model's business (a running saga is not an odd sequence).
    fn replied(trace: &SagaTrace) -> impl Iterator<Item = &TraceEvent> {
        trace
            .events
            .iter()
            .filter(|e| !matches!(e.status, TraceStatus::Pending | TraceStatus::TimedOut))
    }

    /// Whether the saga may still go on (a step waits for its reply): no end symbol then.
    fn running(trace: &SagaTrace) -> bool {
        trace
            .events
            .iter()
            .any(|e| e.status == TraceStatus::Pending)
    }

    fn symbols(trace: &SagaTrace) -> Vec<String> {
        let end = (!Self::running(trace)).then(|| END.to_string());
        std::iter::once(START.to_string())
            .chain(Self::replied(trace).map(|e| e.symbol()))
            .chain(end)
            .collect()
    }

    /// Smoothed `P(to | from)`; one extra slot in the vocabulary stands for unseen symbols.
    pub fn probability(&self, from: &str, to: &str) -> (f64, u64) {
        let seen = self
            .counts
            .get(from)
            .and_then(|m| m.get(to))
            .copied()
            .unwrap_or(0);
        let total = self.totals.get(from).copied().unwrap_or(0);
        let p = (seen as f64 + self.alpha)
            / (total as f64 + self.alpha * (self.vocabulary as f64 + 1.0));
        (p, seen)
    }

    /// The transitions of `trace`, start and end included.
    pub fn transitions(&self, trace: &SagaTrace) -> Vec<Transition> {
        let seq = Self::symbols(trace);
        let end = (!Self::running(trace)).then_some(None);
        let steps: Vec<Option<&str>> = std::iter::once(None)
            .chain(Self::replied(trace).map(|e| Some(e.step.as_str())))
            .chain(end)
            .collect();
        seq.windows(2)
            .zip(steps.windows(2))
            .map(|(w, s)| {
                let (probability, seen) = self.probability(&w[0], &w[1]);
                Transition {
                    from: w[0].clone(),
                    to: w[1].clone(),
                    probability,
                    seen,
                    repeat: s[0].is_some() && s[0] == s[1],
                }
            })
            .collect()
    }

    /// Negative log-likelihood of the whole sequence.
    pub fn surprise(&self, trace: &SagaTrace) -> f64 {
        self.transitions(trace)
            .iter()
            .map(Transition::surprise)
            .sum()
    }
}
