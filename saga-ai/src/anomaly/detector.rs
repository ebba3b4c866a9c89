//! The combined detector: step durations, event sequences and compensation-rate spikes,
//! each scored against the limit normal sagas showed in training.

use serde::{Deserialize, Serialize};

use super::SagaAnomalyDetector;
use super::duration::StepDurationModel;
use super::kind::{Anomaly, AnomalyKind, AnomalyReport};
use super::markov::TransitionModel;
use super::rate::CompensationRateModel;
use super::trace::{SagaTrace, TraceStatus};
use crate::error::{AiError, Result};

/// Model kind in saved files.
pub const ANOMALY_KIND: &str = "anomaly.saga";
/// Format version of saved [`SagaDetector`]s.
pub const ANOMALY_FORMAT: u32 = 1;

/// Settings of [`SagaDetector::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    /// Smoothing pseudo-count of the transition model.
    pub alpha: f64,
    /// Compensation-rate window, seconds.
    pub window_secs: i64,
    /// Quantile of normal training scores taken as each component's normal limit.
    pub quantile: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            window_secs: 300,
            quantile: 0.995,
        }
    }
}

/// Durations (median/MAD), sequences (Markov) and compensation rate, learned from normal sagas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaDetector {
    /// Per-step duration statistics.
    pub durations: StepDurationModel,
    /// Transition model.
    pub transitions: TransitionModel,
    /// Compensation-rate model.
    pub rate: CompensationRateModel,
    /// Normal limit of the worst robust duration z of a saga.
    pub duration_limit: f64,
    /// Normal limit of a saga's sequence surprise (negative log-likelihood).
    pub sequence_limit: f64,
    /// Normal sagas it learned from.
    pub trained_on: usize,
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

impl SagaDetector {
    /// Learns every component from normal sagas.
    pub fn fit(normal: &[SagaTrace], config: &DetectorConfig) -> Result<Self> {
        if !(0.5..1.0).contains(&config.quantile) {
            return Err(AiError::InvalidInput(format!(
                "quantile must be in [0.5, 1), got {}",
                config.quantile
            )));
        }
        if normal.len() < 20 {
            return Err(AiError::NotEnoughData(format!(
                "need at least 20 normal sagas, got {}",
                normal.len()
            )));
        }
        let durations = StepDurationModel::fit(normal)?;
        let transitions = TransitionModel::fit(normal, config.alpha)?;
        let rate = CompensationRateModel::fit(normal, config.window_secs)?;
        let worst: Vec<f64> = normal
            .iter()
            .map(|t| durations.worst(t).map_or(0.0, |w| w.1.max(0.0)))
            .collect();
        let surprise: Vec<f64> = normal.iter().map(|t| transitions.surprise(t)).collect();
        Ok(Self {
            duration_limit: quantile(worst, config.quantile).max(1.0),
            sequence_limit: quantile(surprise, config.quantile).max(1.0),
            durations,
            transitions,
            rate,
            trained_on: normal.len(),
        })
    }

    fn duration_finding(&self, trace: &SagaTrace) -> Option<Anomaly> {
        let (i, z) = self.durations.worst(trace)?;
        let e = trace.events.get(i)?;
        let stats = self.durations.stats.get(&e.event_type)?;
        let stuck = matches!(e.status, TraceStatus::TimedOut | TraceStatus::Pending);
        let explanation = if stuck {
            format!(
                "step {} ({}) has had no reply for {} ({}), {z:.1} MADs above its median of {}",
                e.step,
                e.event_type,
                fmt_ms(e.duration_ms),
                if e.status == TraceStatus::Pending {
                    "still waiting"
                } else {
                    "deadline passed"
                },
                fmt_ms(stats.median_ms())
            )
        } else {
            format!(
                "step {} ({}) took {}, {z:.1} MADs above its median of {}",
                e.step,
                e.event_type,
                fmt_ms(e.duration_ms),
                fmt_ms(stats.median_ms())
            )
        };
        Some(Anomaly {
            kind: if stuck {
                AnomalyKind::StuckStep
            } else {
                AnomalyKind::SlowStep
            },
            score: z.max(0.0) / self.duration_limit,
            step: Some(e.step.clone()),
            explanation,
        })
    }

    fn sequence_finding(&self, trace: &SagaTrace) -> Option<Anomaly> {
        let transitions = self.transitions.transitions(trace);
        let total: f64 = transitions.iter().map(|t| t.surprise()).sum();
        let repeat: f64 = transitions
            .iter()
            .filter(|t| t.repeat)
            .map(|t| t.surprise())
            .sum();
        let worst = transitions
            .iter()
            .max_by(|a, b| a.surprise().total_cmp(&b.surprise()))?;
        let (kind, step, explanation) = if repeat > total - repeat {
            // The longest run of one step.
            let (mut best, mut run, mut step) = (1usize, 1usize, String::new());
            for w in trace.events.windows(2) {
                run = if w[0].step == w[1].step { run + 1 } else { 1 };
                if run >= best {
                    best = run;
                    step = w[1].step.clone();
                }
            }
            (
                AnomalyKind::RetryLoop,
                Some(step.clone()),
                format!(
                    "step {step} was attempted {best} times in a row; the repeats cost {repeat:.1} \
                     of the sequence's {total:.1} nats (normal limit {:.1})",
                    self.sequence_limit
                ),
            )
        } else {
            let step = trace
                .events
                .iter()
                .find(|e| e.symbol() == worst.to)
                .map(|e| e.step.clone());
            (
                AnomalyKind::ImpossibleSequence,
                step,
                format!(
                    "transition {} -> {} has probability {:.1e} (seen {} times in {} normal sagas); \
                     sequence surprise {total:.1} nats, normal limit {:.1}",
                    worst.from,
                    worst.to,
                    worst.probability,
                    worst.seen,
                    self.trained_on,
                    self.sequence_limit
                ),
            )
        };
        Some(Anomaly {
            kind,
            score: total / self.sequence_limit,
            step,
            explanation,
        })
    }
}

impl SagaAnomalyDetector for SagaDetector {
    fn score(&self, trace: &SagaTrace) -> Result<AnomalyReport> {
        trace.validate()?;
        let findings = [self.duration_finding(trace), self.sequence_finding(trace)];
        Ok(AnomalyReport::new(
            trace.id.clone(),
            findings.into_iter().flatten().collect(),
        ))
    }

    fn score_all(&self, traces: &[SagaTrace]) -> Result<Vec<AnomalyReport>> {
        let mut reports: Vec<AnomalyReport> = traces
            .iter()
            .map(|t| self.score(t))
            .collect::<Result<_>>()?;
        let readings = self.rate.readings(traces);
        for ((report, trace), r) in reports.iter_mut().zip(traces).zip(readings) {
            if !trace.compensated() || r.z <= 0.0 {
                continue;
            }
            let mut anomalies = std::mem::take(&mut report.anomalies);
            anomalies.push(Anomaly {
                kind: AnomalyKind::CompensationStorm,
                score: r.z / self.rate.threshold,
                step: None,
                explanation: format!(
                    "{} of {} sagas compensated in the {} s before this one ended (normal rate \
                     {:.1}%, z = {:.1}, alarm at {:.1})",
                    r.compensated,
                    r.sagas,
                    self.rate.window_secs,
                    100.0 * self.rate.baseline_rate,
                    r.z,
                    self.rate.threshold
                ),
            });
            *report = AnomalyReport::new(report.saga_id.clone(), anomalies);
        }
        Ok(reports)
    }
}

/// The baseline: flag a saga when any step ran longer than a fixed timeout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeoutRule {
    /// The timeout, milliseconds.
    pub timeout_ms: f64,
}

impl SagaAnomalyDetector for TimeoutRule {
    fn score(&self, trace: &SagaTrace) -> Result<AnomalyReport> {
        trace.validate()?;
        let hit = trace
            .events
            .iter()
            .find(|e| e.duration_ms >= self.timeout_ms || e.status == TraceStatus::TimedOut);
        let findings = hit.map(|e| Anomaly {
            kind: if matches!(e.status, TraceStatus::TimedOut | TraceStatus::Pending) {
                AnomalyKind::StuckStep
            } else {
                AnomalyKind::SlowStep
            },
            score: 2.0,
            step: Some(e.step.clone()),
            explanation: format!(
                "step {} ran {}, over the {} timeout",
                e.step,
                fmt_ms(e.duration_ms),
                fmt_ms(self.timeout_ms)
            ),
        });
        Ok(AnomalyReport::new(
            trace.id.clone(),
            findings.into_iter().collect(),
        ))
    }
}
