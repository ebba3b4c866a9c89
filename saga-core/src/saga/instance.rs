//! A running (or finished) saga: where each step stands.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::transition::SagaCommand;
use uuid::Uuid;

/// Where a saga stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Steps are running forward.
    Running,
    /// A step failed; completed steps are being undone in reverse order.
    Compensating,
    /// Every step succeeded. Terminal.
    Completed,
    /// A step failed and every completed step was undone. Terminal.
    Compensated,
    /// A step failed and some compensation could not be confirmed: an operator must look.
    /// Terminal.
    Failed,
}

impl SagaStatus {
    /// Whether nothing more will happen to the saga.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed
        )
    }

    /// Lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::Failed => "failed",
        }
    }
}

/// Where one step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not reached yet.
    NotStarted,
    /// Command sent, reply awaited.
    Started,
    /// Success reply received.
    Completed,
    /// Failure reply received: the participant did nothing to undo.
    Failed,
    /// No reply before the deadline (after retries): its effect is uncertain, so it is
    /// compensated like a completed step.
    TimedOut,
    /// Compensation sent, confirmation awaited.
    Compensating,
    /// Compensation confirmed (or sent, if fire-and-forget).
    Compensated,
    /// The compensation's confirmation did not come before its deadline.
    CompensationFailed,
}

/// The state of one step of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    /// Where it stands.
    pub status: StepStatus,
    /// Ids of the commands sent for it, one per attempt; a reply must be caused by one of them.
    pub command_ids: Vec<Uuid>,
    /// Id of the compensation command, once sent.
    pub compensation_id: Option<Uuid>,
    /// When the current command was first sent.
    pub started_at: Option<DateTime<Utc>>,
    /// When it settled.
    pub finished_at: Option<DateTime<Utc>>,
    /// The payload of its success reply (a reservation id, a transaction id, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Arc<serde_json::Value>>,
}

impl StepState {
    pub(crate) fn new() -> Self {
        Self {
            status: StepStatus::NotStarted,
            command_ids: Vec::new(),
            compensation_id: None,
            started_at: None,
            finished_at: None,
            result: None,
        }
    }
}

/// A saga instance: what the orchestrator loads, transitions and saves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaInstance {
    /// The instance id; also the correlation id of every message of the saga.
    pub id: Uuid,
    /// The definition's name.
    pub saga: String,
    /// The aggregate the saga is about (the order id); commands carry it as `aggregate_id`.
    pub aggregate_id: String,
    /// Overall status.
    pub status: SagaStatus,
    /// One entry per step of the definition.
    pub steps: Vec<StepState>,
    /// The saga's start data. Every command carries it as payload; it is shared (`Arc`), so a
    /// transition never copies it. Each step's reply payload is kept in its
    /// [`StepState::result`].
    pub data: Arc<serde_json::Value>,
    /// Why the saga is compensating or failed.
    pub failure: Option<String>,
    /// When the awaited reply is due; `None` when nothing is awaited with a deadline.
    pub deadline: Option<DateTime<Utc>>,
    /// Commands decided but not yet confirmed as published, kept in the instance so that
    /// deciding and remembering to send are one write. Shells without a transactional outbox
    /// (the [`Orchestrator`](super::Orchestrator)) save them with the state, publish them, then
    /// clear them; a shell that finds some left after a crash publishes them again (their ids
    /// are derived, so consumers' inboxes absorb the repeat).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsent: Vec<SagaCommand>,
    /// Optimistic concurrency version: 0 when started, +1 per applied transition.
    pub version: u64,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl SagaInstance {
    /// Whether the saga has ended.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// The index of the step awaiting a forward reply, if any.
    pub fn active_step(&self) -> Option<usize> {
        if self.status != SagaStatus::Running {
            return None;
        }
        self.steps
            .iter()
            .position(|s| s.status == StepStatus::Started)
    }
}
