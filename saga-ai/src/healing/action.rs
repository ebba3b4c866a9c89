//! The record a policy leaves of each decision.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    /// A saga step past its deadline.
    StuckSaga,
    /// A message its handler cannot process.
    PoisonMessage,
    /// A dependency failing often.
    CircuitBreaker,
    /// A saga step getting slower.
    DurationDrift,
}

impl PolicyName {
    /// The name as it is serialised (`stuck_saga`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::StuckSaga => "stuck_saga",
            PolicyName::PoisonMessage => "poison_message",
            PolicyName::CircuitBreaker => "circuit_breaker",
            PolicyName::DurationDrift => "duration_drift",
        }
    }
}

/// What a policy did, as a kind a program can filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A timed-out step was sent again.
    RetryStep,
    /// A timed-out saga was compensated.
    Compensate,
    /// A message was dead-lettered at once, with a diagnosis.
    DeadLetter,
    /// A failure was judged passing: the message is retried with backoff.
    Retry,
    /// The circuit opened: calls fail fast or wait.
    OpenCircuit,
    /// The pause is over: a few probe calls go through.
    HalfOpenCircuit,
    /// The probes succeeded: calls flow again.
    CloseCircuit,
    /// A step's durations drifted above its baseline.
    FlagDrift,
    /// A flagged step is back to its baseline.
    ClearDrift,
}

/// One decision of a policy: what it saw, what it did, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealingAction {
    /// The policy that decided.
    pub policy: PolicyName,
    /// What the decision is about: a saga id, a message id, a dependency, a step.
    pub subject: String,
    /// What the policy saw, in plain words with the figures it used.
    pub observed: String,
    /// What it did, in plain words.
    pub action: String,
    /// The kind of action.
    pub kind: ActionKind,
    /// How it went, when known (the application fills it in, e.g. "compensated", "replayed").
    pub outcome: Option<String>,
    /// When it decided.
    pub at: DateTime<Utc>,
}

impl HealingAction {
    /// A record of a policy's decision, its outcome not known yet.
    pub fn new(
        policy: PolicyName,
        kind: ActionKind,
        subject: impl Into<String>,
        observed: impl Into<String>,
        action: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            policy,
            subject: subject.into(),
            observed: observed.into(),
            action: action.into(),
            kind,
            outcome: None,
            at,
        }
    }

    /// The record of the saga engine's decision on a timed-out step: `retried` says whether
    /// the step was sent again (first time out) or the saga compensated.
    pub fn stuck_saga(
        saga_id: impl Into<String>,
        step: &str,
        overdue: chrono::Duration,
        retried: bool,
        at: DateTime<Utc>,
    ) -> Self {
        let overdue_ms = overdue.num_milliseconds().max(0);
        let observed = format!("step `{step}` passed its deadline by {overdue_ms} ms");
        let (kind, action) = if retried {
            (
                ActionKind::RetryStep,
                format!("sent step `{step}` again (first time-out)"),
            )
        } else {
            (
                ActionKind::Compensate,
                format!("compensated the saga (step `{step}` timed out after its retry)"),
            )
        };
        Self::new(PolicyName::StuckSaga, kind, saga_id, observed, action, at)
    }

    /// The same record with its outcome.
    pub fn with_outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stuck_saga_records_say_retry_or_compensate() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        let retry =
            HealingAction::stuck_saga("s1", "payment", chrono::Duration::seconds(2), true, at);
        assert_eq!(retry.kind, ActionKind::RetryStep);
        assert!(retry.observed.contains("2000 ms"), "{}", retry.observed);
        let comp =
            HealingAction::stuck_saga("s1", "payment", chrono::Duration::seconds(2), false, at)
                .with_outcome("compensated");
        assert_eq!(comp.kind, ActionKind::Compensate);
        assert_eq!(comp.outcome.as_deref(), Some("compensated"));
        let json = serde_json::to_value(&comp).unwrap();
        assert_eq!(json["policy"], "stuck_saga");
        assert_eq!(json["kind"], "compensate");
    }
}
