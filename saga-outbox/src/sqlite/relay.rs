//! The SQLite relay source: read a batch by `seq`, publish it, mark (or delete) it on the
//! single writer. One relay per database file.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use saga_core::{OutboxStore, Publisher, Result};
use tokio::sync::Notify;

use super::SqliteStore;
use crate::relay::{Batch, RelaySource};
use crate::sql::error::db_err;

/// Feeds a [`Relay`](crate::relay::Relay) from a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteRelaySource {
    store: SqliteStore,
}

impl SqliteRelaySource {
    /// The relay source of `store` (run one relay per database file).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl RelaySource for SqliteRelaySource {
    async fn relay_batch(
        &self,
        limit: usize,
        publisher: &dyn Publisher,
        delete: bool,
    ) -> Result<Batch> {
        let records = self.store.unpublished(limit).await?;
        if records.is_empty() {
            return Ok(Batch::default());
        }
        let envelopes: Vec<_> = records.iter().map(|r| r.envelope.clone()).collect();
        publisher.publish(&envelopes).await?;
        let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
        let now = self.store.clock().now();
        let mut conn = self.store.write_pool().acquire().await.map_err(db_err)?;
        self.store
            .complete_on(&mut conn, &seqs, now, delete)
            .await?;
        Ok(Batch {
            published: records.len(),
            oldest: records.iter().map(|r| r.created_at).min(),
        })
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.store.prune_published(before).await
    }

    fn wakeups(&self) -> Arc<Notify> {
        self.store.commit_signal()
    }

    fn now(&self) -> DateTime<Utc> {
        self.store.clock().now()
    }
}
