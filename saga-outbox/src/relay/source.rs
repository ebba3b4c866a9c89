//! What a relay needs from a database: claim, publish and complete a batch; prune; wake-ups.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use saga_core::{Publisher, Result};
use tokio::sync::Notify;

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batch {
    /// How many events were published (and marked or deleted).
    pub published: usize,
    /// When the oldest of them was written.
    pub oldest: Option<DateTime<Utc>>,
}

/// A database the [`Relay`](super::Relay) drains. Implemented by
/// [`SqliteRelaySource`](crate::sqlite::SqliteRelaySource) and
/// [`PgRelaySource`](crate::postgres::PgRelaySource); the difference between the two
/// (claiming rows, leases, notify) sits behind this trait.
#[async_trait]
pub trait RelaySource: Send + Sync + 'static {
    /// Housekeeping before a claim (Postgres: heartbeat and partition leases). Default: none.
    async fn maintain(&self) -> Result<()> {
        Ok(())
    }

    /// Claims up to `limit` unpublished rows in `seq` order, publishes them in that order
    /// through `publisher` (which returns after the broker's confirms), then marks them
    /// published (or deletes them when `delete`). If publishing fails the rows stay
    /// unpublished and are claimed again.
    async fn relay_batch(
        &self,
        limit: usize,
        publisher: &dyn Publisher,
        delete: bool,
    ) -> Result<Batch>;

    /// Deletes rows published before `before`.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64>;

    /// Gives up whatever this relay holds (Postgres: its leases). Default: nothing.
    async fn release(&self) -> Result<()> {
        Ok(())
    }

    /// Notified when new rows may be waiting (commits in this process, Postgres NOTIFY).
    fn wakeups(&self) -> Arc<Notify>;

    /// Whether to claim again at once after a batch that published something, though it was
    /// not full (Postgres: after a `NOTIFY`, so that producers elsewhere may skip theirs
    /// until the relay reports idle). Default: no, wait for the next wake-up.
    fn claim_again(&self) -> bool {
        false
    }

    /// The current time, from the store's clock.
    fn now(&self) -> DateTime<Utc>;
}
