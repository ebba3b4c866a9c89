//! The outbox: events waiting to be published, written with the state change that caused them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::error::Result;

/// A row of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// Position in the outbox (insertion order; not commit order across transactions).
    pub seq: i64,
    /// The event to publish.
    pub envelope: Envelope,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was published, if it was.
    pub published_at: Option<DateTime<Utc>>,
}

/// Storage of outgoing events.
///
/// SQL adapters append on the caller's transaction (see `saga-outbox`); this trait is what a
/// relay needs: claim, mark, prune.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Appends events (in the given order) and returns their sequence numbers.
    async fn append(&self, events: &[Envelope]) -> Result<Vec<i64>>;
    /// Up to `limit` unpublished records, by `seq`. Per aggregate, records come in `seq` order.
    async fn unpublished(&self, limit: usize) -> Result<Vec<OutboxRecord>>;
    /// Marks records published at `at`. Marking twice is harmless.
    async fn mark_published(&self, seqs: &[i64], at: DateTime<Utc>) -> Result<()>;
    /// Deletes published records published before `before`; returns how many.
    async fn prune_published(&self, before: DateTime<Utc>) -> Result<u64>;
    /// How many records wait to be published.
    async fn pending_count(&self) -> Result<u64>;
}
