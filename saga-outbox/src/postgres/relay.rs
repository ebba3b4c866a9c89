//! The Postgres relay source: within the partitions this relay leases, claim by `seq` with
//! `FOR UPDATE`, publish, then mark or delete, all on one transaction; wake on `NOTIFY`.
//!
//! Claiming and completing are one statement (`DELETE`/`UPDATE ... WHERE seq =
//! ANY(ARRAY(SELECT ... FOR UPDATE)) RETURNING ...`; the `ARRAY` form makes the planner look
//! the claimed rows up by primary key instead of hash-joining a scan of the whole outbox), run before publishing on the same transaction: the rows stay
//! locked until the commit, and a failed publish rolls the transaction back, so they are
//! claimed again (the same guarantee as marking after publishing, one round trip less). In
//! mark mode the same statement moves them to the published table, `published_at` being the
//! claim time. The relay's transaction commits with
//! `synchronous_commit = off`: a commit lost in a server crash only republishes its rows.
//!
//! `FOR UPDATE` (waiting) rather than `SKIP LOCKED`: if a relay whose lease just expired is
//! still publishing a row, skipping that row would let the new owner publish a later row of
//! the same aggregate first. Waiting keeps the order; with live leases nobody else touches
//! the partition, so in the normal case nothing waits.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use saga_core::{OutboxStore, Publisher, Result};

use sqlx::postgres::PgListener;
use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{LeaseConfig, Leases, PgStore};
use crate::relay::{Batch, RelaySource};
use crate::sql::error::db_err;
use crate::time::to_nanos;

/// Feeds a [`Relay`](crate::relay::Relay) from a [`PgStore`], sharing the outbox with other
/// relays by partition leases.
pub struct PgRelaySource {
    store: PgStore,
    leases: Arc<Leases>,
    claim_delete: SqlStr,
    claim_mark: SqlStr,
    listener: JoinHandle<()>,
}

impl std::fmt::Debug for PgRelaySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRelaySource")
            .field("leases", &self.leases)
            .finish_non_exhaustive()
    }
}

impl PgRelaySource {
    /// A relay source on `store` holding leases as `lease` says; starts a `LISTEN` task that
    /// wakes the relay on every commit that appended (in any process).
    pub fn new(store: PgStore, lease: LeaseConfig) -> Self {
        let leases = Leases::new(&store, lease);
        let render = |template: &str| {
            AssertSqlSafe(Arc::<str>::from(store.tables().render(template))).into_sql_str()
        };
        let pick = "SELECT seq FROM {outbox} WHERE published_at IS NULL AND part = ANY($1) \
                    ORDER BY seq LIMIT $2 FOR UPDATE";
        let claim_delete = render(&format!(
            "DELETE FROM {{outbox}} WHERE seq = ANY(ARRAY({pick})) \
             RETURNING seq, envelope, created_at"
        ));
        // Mark mode: the claimed rows move to the published table in the same statement.
        let claim_mark = render(&format!(
            "WITH claimed AS (DELETE FROM {{outbox}} WHERE seq = ANY(ARRAY({pick})) \
               RETURNING seq, event_id, aggregate_id, part, envelope, created_at), \
             kept AS (INSERT INTO {{outbox_published}} \
               (seq, event_id, aggregate_id, part, envelope, created_at, published_at) \
               SELECT seq, event_id, aggregate_id, part, envelope, created_at, $3 FROM claimed) \
             SELECT seq, envelope, created_at FROM claimed"
        ));
        let listener = tokio::spawn(listen(store.clone()));
        Self {
            store,
            leases,
            claim_delete,
            claim_mark,
            listener,
        }
    }

    /// The leases this source holds.
    pub fn leases(&self) -> &Arc<Leases> {
        &self.leases
    }
}

impl Drop for PgRelaySource {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Forwards notifications on the store's channel to its commit signal; reconnects after a
/// lost connection (waking the relay once, in case a notification was missed).
async fn listen(store: PgStore) {
    let signal = store.commit_signal();
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(store.read_pool()).await?;
            l.listen(store.channel()).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        match listener {
            Ok(mut l) => {
                signal.notify_one();
                while l.recv().await.is_ok() {
                    signal.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "outbox LISTEN failed; retrying"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[async_trait]
impl RelaySource for PgRelaySource {
    async fn maintain(&self) -> Result<()> {
        self.leases.maintain().await
    }

    async fn relay_batch(
        &self,
        limit: usize,
        publisher: &dyn Publisher,
        delete: bool,
    ) -> Result<Batch> {
        let parts = self.leases.owned();
        if parts.is_empty() {
            return Ok(Batch::default());
        }
        let mut tx = self.store.write_pool().begin().await.map_err(db_err)?;
        // The claim's commit need not wait for its WAL flush: losing it in a server crash
        // only brings the rows back to be published again (at least once, as after a relay
        // crash between publish and commit), and an asynchronous commit loses a suffix of the
        // WAL, never an earlier batch alone, so the order per aggregate holds.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let query = if delete {
            sqlx::query(self.claim_delete.clone())
                .bind(&parts)
                .bind(limit)
        } else {
            sqlx::query(self.claim_mark.clone())
                .bind(&parts)
                .bind(limit)
                .bind(to_nanos(self.store.clock().now()))
        };
        let rows = query.fetch_all(&mut *tx).await.map_err(db_err)?;
        if rows.is_empty() {
            return Ok(Batch::default());
        }
        let mut records = rows
            .iter()
            .map(PgStore::record_from)
            .collect::<Result<Vec<_>>>()?;
        drop(rows);
        // RETURNING follows no particular order: publish in commit (`seq`) order.
        records.sort_unstable_by_key(|r| r.seq);
        let oldest = records.iter().map(|r| r.created_at).min();
        let envelopes: Vec<_> = records.into_iter().map(|r| r.envelope).collect();
        publisher.publish(&envelopes).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Batch {
            published: envelopes.len(),
            oldest,
        })
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.store.prune_published(before).await
    }

    async fn release(&self) -> Result<()> {
        self.leases.release_all().await
    }

    fn wakeups(&self) -> Arc<Notify> {
        self.store.commit_signal()
    }

    fn now(&self) -> DateTime<Utc> {
        self.store.clock().now()
    }
}
