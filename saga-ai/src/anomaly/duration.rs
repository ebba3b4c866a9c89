//! Robust per-step duration scores: median and MAD of log-durations learned from normal sagas.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::trace::{SagaTrace, TraceEvent, TraceStatus};
use crate::error::{AiError, Result};

/// Median and scale of one event type's log-duration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DurationStats {
    /// Median of `ln(1 + duration_ms)`.
    pub median: f64,
    /// `1.4826 * MAD` of `ln(1 + duration_ms)` (a robust standard deviation), floored.
    pub scale: f64,
    /// Events it was learned from.
    pub count: usize,
}

impl DurationStats {
    /// The median duration in milliseconds.
    pub fn median_ms(&self) -> f64 {
        self.median.exp() - 1.0
    }
}

/// Per event type, the robust centre and spread of normal durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDurationModel {
    /// Statistics by event type.
    pub stats: BTreeMap<String, DurationStats>,
}

/// Smallest scale, so a step with near-constant durations does not make every jitter huge.
const MIN_SCALE: f64 = 0.05;
/// Fewest events of a type to learn its durations.
const MIN_EVENTS: usize = 5;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl StepDurationModel {
    /// Learns from the replied events (completed, failed, compensated) of normal sagas.
    pub fn fit(traces: &[SagaTrace]) -> Result<Self> {
        let mut by_type: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for t in traces {
            t.validate()?;
            for e in &t.events {
                if matches!(e.status, TraceStatus::Pending | TraceStatus::TimedOut) {
                    continue;
                }
                by_type
                    .entry(e.event_type.clone())
                    .or_default()
                    .push(e.duration_ms.ln_1p());
            }
        }
        let stats: BTreeMap<String, DurationStats> = by_type
            .into_iter()
            .filter(|(_, v)| v.len() >= MIN_EVENTS)
            .map(|(k, mut v)| {
                let m = median(&mut v);
                let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
                let mad = median(&mut dev);
                let stats = DurationStats {
                    median: m,
                    scale: (1.4826 * mad).max(MIN_SCALE),
                    count: v.len(),
                };
                (k, stats)
            })
            .collect();
        if stats.is_empty() {
            return Err(AiError::NotEnoughData(format!(
                "no event type with at least {MIN_EVENTS} replied events"
            )));
        }
        Ok(Self { stats })
    }

    /// How many robust standard deviations (MADs scaled) above its type's median `event` lasted;
    /// `None` for an event type never learned.
    pub fn robust_z(&self, event: &TraceEvent) -> Option<f64> {
        let s = self.stats.get(&event.event_type)?;
        Some((event.duration_ms.max(0.0).ln_1p() - s.median) / s.scale)
    }

    /// The event of `trace` with the highest robust z, with that z.
    pub fn worst(&self, trace: &SagaTrace) -> Option<(usize, f64)> {
        trace
            .events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| self.robust_z(e).map(|z| (i, z)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}
