//! Dead letters: messages given up on, kept with their reason until an operator acts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::Result;

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    /// Waiting for an operator.
    Pending,
    /// Handed back for delivery once; a second replay does nothing.
    Replayed,
    /// Dropped on purpose.
    Discarded,
}

impl DeadLetterStatus {
    /// The lower-case name used in storage and APIs.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadLetterStatus::Pending => "pending",
            DeadLetterStatus::Replayed => "replayed",
            DeadLetterStatus::Discarded => "discarded",
        }
    }
}

/// A message that was given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The dead letter's own id.
    pub id: Uuid,
    /// The subscription (consumer) that gave up.
    pub subscription: String,
    /// The message, as it was delivered.
    pub envelope: Envelope,
    /// Why it was given up on (permanent error, attempts exhausted, undecodable).
    pub reason: String,
    /// How many deliveries were tried.
    pub attempts: u32,
    /// The last handler error, if any.
    pub last_error: Option<String>,
    /// When it was dead-lettered.
    pub dead_lettered_at: DateTime<Utc>,
    /// Pending, replayed or discarded.
    pub status: DeadLetterStatus,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

impl DeadLetter {
    /// A pending dead letter with a fresh id.
    pub fn new(
        subscription: impl Into<String>,
        envelope: Envelope,
        reason: impl Into<String>,
        attempts: u32,
        last_error: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            subscription: subscription.into(),
            envelope,
            reason: reason.into(),
            attempts,
            last_error,
            dead_lettered_at: at,
            status: DeadLetterStatus::Pending,
            updated_at: at,
        }
    }
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Only this subscription's.
    pub subscription: Option<String>,
    /// Only in this status.
    pub status: Option<DeadLetterStatus>,
    /// At most this many (oldest first); `None` for all.
    pub limit: Option<usize>,
}

/// The answer to a replay.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayOutcome {
    /// The message to deliver again (to its subscription) is handed back; it is now `Replayed`.
    Replayed(Box<DeadLetter>),
    /// It was replayed or discarded before: nothing to do.
    AlreadyDone(DeadLetterStatus),
}

/// Storage of dead letters.
///
/// `replay` and `discard` are idempotent: only the first call on a pending letter changes it.
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    /// Stores a dead letter.
    async fn put(&self, letter: DeadLetter) -> Result<()>;
    /// Lists dead letters, oldest first.
    async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>>;
    /// One dead letter, or `Error::NotFound`.
    async fn get(&self, id: Uuid) -> Result<DeadLetter>;
    /// Marks a pending letter replayed and returns it for redelivery; a second call is a no-op.
    async fn replay(&self, id: Uuid) -> Result<ReplayOutcome>;
    /// Marks a pending letter discarded; returns false if it was not pending.
    async fn discard(&self, id: Uuid) -> Result<bool>;
    /// How many are pending.
    async fn pending_count(&self) -> Result<u64>;
}
