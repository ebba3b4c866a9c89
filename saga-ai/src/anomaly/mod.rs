//! Saga anomaly detection: which saga executions look wrong, and why.
//!
//! A [`SagaTrace`] is a saga's commands and compensations with their timing (independent of
//! saga-core; [`SagaTrace::from_log`] builds traces from `saga_core`'s log entries). The
//! [`SagaDetector`] learns from normal sagas:
//!
//! 1. [`StepDurationModel`]: per step, the median and MAD of log-durations; a step far above its
//!    median is a slow step, or a stuck one if it got no reply before its deadline.
//! 2. [`TransitionModel`]: a first-order Markov model of `event_type:status` symbols with
//!    additive smoothing; a sequence normal sagas never take (a refund without a payment) or a
//!    step repeated again and again scores high.
//! 3. [`CompensationRateModel`]: the share of sagas compensating in a sliding window, against
//!    the normal share; a spike is a compensation storm.
//!
//! Each finding is scored against the limit normal sagas reached in training (1.0 = the edge
//! of normal) and explained in a sentence. [`TimeoutRule`] is the baseline, and
//! [`evaluate_anomaly`] measures both on generated traces with injected anomalies.
//!
//! ```
//! use saga_ai::anomaly::{generate_traces, DetectorConfig, SagaAnomalyDetector, SagaDetector, TraceGeneratorConfig};
//! let normal = generate_traces(&TraceGeneratorConfig { minutes: 30, anomaly_rate: 0.0, storms: 0, ..Default::default() }).unwrap();
//! let traces: Vec<_> = normal.traces.into_iter().map(|t| t.trace).collect();
//! let detector = SagaDetector::fit(&traces, &DetectorConfig::default()).unwrap();
//! let mut odd = traces[0].clone();
//! odd.events.swap(2, 3); // payment before inventory
//! let report = detector.score(&odd).unwrap();
//! println!("{}", report.top().unwrap().explanation);
//! ```

mod detector;
mod duration;
mod evaluate;
mod generator;
mod kind;
mod markov;
mod rate;
mod trace;

pub use detector::{ANOMALY_FORMAT, ANOMALY_KIND, DetectorConfig, SagaDetector, TimeoutRule};
pub use duration::{DurationStats, StepDurationModel};
pub use evaluate::{AnomalyEvalConfig, AnomalyEvaluation, KindRow, StormDelay, evaluate_anomaly};
pub use generator::{
    DEADLINE_MS, GeneratedTraces, LabelledTrace, TraceGeneratorConfig, generate_traces,
};
pub use kind::{Anomaly, AnomalyKind, AnomalyReport};
pub use markov::{END, START, Transition, TransitionModel};
pub use rate::{CompensationRateModel, RateReading, RateWindow};
pub use trace::{SagaTrace, TraceEvent, TraceStatus};

use crate::error::Result;

/// Anything that scores saga executions for anomalies.
pub trait SagaAnomalyDetector {
    /// Scores one saga on its own (durations, sequence). Invalid times are an
    /// [`AiError::InvalidInput`](crate::AiError::InvalidInput).
    fn score(&self, trace: &SagaTrace) -> Result<AnomalyReport>;

    /// Scores sagas that ran over a period together, which lets a detector add findings that
    /// need several sagas (compensation storms). The default scores each on its own.
    fn score_all(&self, traces: &[SagaTrace]) -> Result<Vec<AnomalyReport>> {
        traces.iter().map(|t| self.score(t)).collect()
    }
}
