//! What a detector reports: the kind of anomaly, a score and an explanation.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of anomaly the detectors look for (and the generator injects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A step took far longer than it normally does.
    SlowStep,
    /// A step got no reply until its deadline (or has none yet, far beyond normal).
    StuckStep,
    /// Many sagas compensating at once.
    CompensationStorm,
    /// The same step attempted again and again.
    RetryLoop,
    /// Steps in an order normal sagas never take (payment before reservation, refund without
    /// payment).
    ImpossibleSequence,
}

impl AnomalyKind {
    /// Every kind.
    pub const ALL: [AnomalyKind; 5] = [
        AnomalyKind::SlowStep,
        AnomalyKind::StuckStep,
        AnomalyKind::CompensationStorm,
        AnomalyKind::RetryLoop,
        AnomalyKind::ImpossibleSequence,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::SlowStep => "slow_step",
            AnomalyKind::StuckStep => "stuck_step",
            AnomalyKind::CompensationStorm => "compensation_storm",
            AnomalyKind::RetryLoop => "retry_loop",
            AnomalyKind::ImpossibleSequence => "impossible_sequence",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about a saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What kind of anomaly it looks like.
    pub kind: AnomalyKind,
    /// How abnormal, relative to the normal limit: 1.0 is the edge of what normal sagas showed
    /// in training, above it is an alarm.
    pub score: f64,
    /// The step concerned, if one.
    pub step: Option<String>,
    /// A sentence a person can act on: which step, how many MADs, which transition.
    pub explanation: String,
}

/// Everything a detector found about one saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyReport {
    /// The saga's id.
    pub saga_id: String,
    /// The highest finding's score (0 with no findings).
    pub score: f64,
    /// Findings, highest score first.
    pub anomalies: Vec<Anomaly>,
}

impl AnomalyReport {
    /// A report from findings (sorted here, highest first).
    pub fn new(saga_id: impl Into<String>, mut anomalies: Vec<Anomaly>) -> Self {
        anomalies.sort_by(|a, b| b.score.total_cmp(&a.score));
        Self {
            saga_id: saga_id.into(),
            score: anomalies.first().map_or(0.0, |a| a.score),
            anomalies,
        }
    }

    /// Whether the highest finding is above the normal limit.
    pub fn is_anomalous(&self) -> bool {
        self.score > 1.0
    }

    /// The highest finding, if any.
    pub fn top(&self) -> Option<&Anomaly> {
        self.anomalies.first()
    }
}
