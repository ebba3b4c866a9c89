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
//!
//! Every claimed row leaves a dead tuple in the outbox table and its `seq` index, and the
//! claim scans the index from its low end, stepping over all of them until a `VACUUM`
//! removes them. Autovacuum looks at a table once a minute at most; at a few thousand events
//! a second that is enough dead rows to slow every claim (measured: commit-to-publish p99
//! 20-50 ms after 20,000 events instead of 3 ms; decision 0018). So the source vacuums the
//! outbox itself, in the background, after every [`vacuum_every`](PgRelaySource::with_vacuum_every)
//! claimed rows: `VACUUM (SKIP_LOCKED)` of a table that holds only pending rows is quick and
//! does not block producers or claims. It also vacuums after its first claim, for what an
//! earlier relay left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    sweeper: Arc<Sweeper>,
    /// A `NOTIFY` woke this relay: once a claim finds nothing, it reports idle on the store's
    /// idle channel (producers elsewhere hold their `NOTIFY`s back until then; see
    /// [`PgOptions::with_idle_wait`](super::PgOptions::with_idle_wait)).
    owed: Arc<AtomicBool>,
    idle_channel: String,
}

/// The source's own `VACUUM` of the outbox table, run after every `every` claimed rows.
struct Sweeper {
    vacuum: SqlStr,
    /// 0: never (autovacuum alone).
    every: AtomicU64,
    claimed: AtomicU64,
    running: AtomicBool,
}

impl std::fmt::Debug for PgRelaySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRelaySource")
            .field("leases", &self.leases)
            .finish_non_exhaustive()
    }
}

impl PgRelaySource {
    /// Claimed rows between two vacuums of the outbox by this source, unless set otherwise.
    pub const DEFAULT_VACUUM_EVERY: u64 = 5_000;

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
        let owed = Arc::new(AtomicBool::new(false));
        let idle_channel = store.idle_channel();
        let listener = tokio::spawn(listen(store.clone(), owed.clone()));
        let sweeper = Arc::new(Sweeper {
            vacuum: render("VACUUM (SKIP_LOCKED) {outbox}"),
            every: AtomicU64::new(Self::DEFAULT_VACUUM_EVERY),
            // The first claim vacuums too: the table may hold what a relay before this one
            // (or a bulk delete) left behind.
            claimed: AtomicU64::new(u64::MAX),
            running: AtomicBool::new(false),
        });
        Self {
            store,
            leases,
            claim_delete,
            claim_mark,
            listener,
            sweeper,
            idle_channel,
            owed,
        }
    }

    /// Vacuums the outbox table after the first claim and then after every `rows` rows this
    /// source claimed (default [`DEFAULT_VACUUM_EVERY`](Self::DEFAULT_VACUUM_EVERY)); 0
    /// leaves it to autovacuum. Needs the database user to own the table (it does when it ran
    /// the migrations); if the server refuses for lack of privilege, the source logs it once
    /// and stops trying. Other failures (a lost connection) are logged and tried again at the
    /// next threshold.
    #[must_use]
    pub fn with_vacuum_every(self, rows: u64) -> Self {
        self.sweeper.every.store(rows, Ordering::Relaxed);
        self
    }

    /// Counts claimed rows; past the threshold, starts a background `VACUUM` unless one runs.
    fn claimed(&self, rows: usize) {
        let sweeper = &self.sweeper;
        let every = sweeper.every.load(Ordering::Relaxed);
        if every == 0 {
            return;
        }
        let rows = u64::try_from(rows).unwrap_or(u64::MAX);
        let total = sweeper
            .claimed
            .fetch_add(rows, Ordering::Relaxed)
            .saturating_add(rows);
        if total < every || sweeper.running.swap(true, Ordering::AcqRel) {
            return;
        }
        sweeper.claimed.store(0, Ordering::Relaxed);
        let (sweeper, pool) = (self.sweeper.clone(), self.store.write_pool().clone());
        tokio::spawn(async move {
            match sqlx::raw_sql(sweeper.vacuum.clone()).execute(&pool).await {
                Ok(_) => {}
                Err(_) if pool.is_closed() => {}
                Err(e) if is_insufficient_privilege(&e) => {
                    tracing::warn!(error = %e, "outbox VACUUM refused; the relay leaves the table to autovacuum from now on");
                    sweeper.every.store(0, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "outbox VACUUM failed; trying again later"),
            }
            sweeper.running.store(false, Ordering::Release);
        });
    }

    /// If a report is owed, `NOTIFY`s the idle channel on `tx` (or on a transaction of its
    /// own) and commits it with `synchronous_commit = off` (a report lost in a server crash
    /// only makes producers wait out their idle wait). If that fails, the report stays owed.
    async fn report_idle_if_owed(&self, tx: Option<sqlx::PgTransaction<'static>>) -> Result<()> {
        if !self.owed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let sent = async {
            let mut tx = match tx {
                // The claim's transaction: already asynchronous.
                Some(tx) => tx,
                None => {
                    let mut tx = self.store.write_pool().begin().await?;
                    sqlx::query("SET LOCAL synchronous_commit = off")
                        .execute(&mut *tx)
                        .await?;
                    tx
                }
            };
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(self.idle_channel.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = sent {
            self.owed.store(true, Ordering::Release);
            return Err(db_err(e));
        }
        Ok(())
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

/// SQLSTATE 42501: the user may not vacuum the table (it does not own it).
fn is_insufficient_privilege(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "42501")
}

/// Forwards notifications on the store's channel to its commit signal (and owes an idle
/// report for them); reconnects after a lost connection (waking the relay once, in case a
/// notification was missed).
async fn listen(store: PgStore, owed: Arc<AtomicBool>) {
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
                owed.store(true, Ordering::Release);
                signal.notify_one();
                while l.recv().await.is_ok() {
                    owed.store(true, Ordering::Release);
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
            self.report_idle_if_owed(None).await?;
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
            self.report_idle_if_owed(Some(tx)).await?;
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
        self.claimed(envelopes.len());
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

    /// Woken by a `NOTIFY`: claims until a claim finds nothing, then reports idle.
    fn claim_again(&self) -> bool {
        self.owed.load(Ordering::Acquire)
    }

    fn now(&self) -> DateTime<Utc> {
        self.store.clock().now()
    }
}
