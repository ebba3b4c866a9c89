//! The inbox: which messages each consumer has already processed.

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::Result;

/// Records `(consumer, event_id)` pairs so that a message delivered twice has one effect.
///
/// SQL adapters mark the inbox on the same transaction as the handler's effects (see
/// `saga-outbox`); this trait is the standalone form, for stores without transactions.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Marks the message processed by `consumer`. Returns `true` the first time, `false` if it
    /// was already marked (a duplicate: skip its effects, ack it). Atomic under concurrency:
    /// of N concurrent calls for one pair, exactly one returns `true`.
    async fn try_mark(&self, consumer: &str, event_id: Uuid) -> Result<bool>;
    /// Whether the message was processed by `consumer`.
    async fn is_processed(&self, consumer: &str, event_id: Uuid) -> Result<bool>;
}
