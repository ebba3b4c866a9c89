//! Saga log entries: the audit trail of every step, reply and compensation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a step, as the saga log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStatus {
    /// The step's command was sent.
    Started,
    /// The step succeeded.
    Completed,
    /// The step failed (failure reply or deadline), or a compensation was given up on.
    Failed,
    /// The step's compensation was sent.
    Compensating,
    /// The step's compensation was confirmed (or sent, if fire-and-forget).
    Compensated,
    /// A reply that changed nothing: a duplicate, a late reply, or one after the saga ended.
    Ignored,
}

impl LogStatus {
    /// Lower-case name (`started`, `completed`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            LogStatus::Started => "started",
            LogStatus::Completed => "completed",
            LogStatus::Failed => "failed",
            LogStatus::Compensating => "compensating",
            LogStatus::Compensated => "compensated",
            LogStatus::Ignored => "ignored",
        }
    }
}

/// One line of a saga's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaLogEntry {
    /// The saga instance.
    pub saga_id: Uuid,
    /// The step's name (or `saga` for saga-level lines).
    pub step: String,
    /// The event type of the command sent or reply received.
    pub event_type: String,
    /// The id of that command or reply.
    pub event_id: Uuid,
    /// What happened.
    pub status: LogStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// A human-readable detail: failure reason, "retry 1 after deadline", "duplicate".
    pub detail: Option<String>,
}
