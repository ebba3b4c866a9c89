//! Partition leases: several relays share the outbox without a leader.
//!
//! Every relay heartbeats a row in `relays`; the number of live relays gives each a fair
//! share `ceil(partitions / live)`. A relay renews the leases it holds, releases those above
//! its share (between batches, so nothing it claimed is in flight) and takes free or expired
//! partitions up to its share. A dead relay's partitions become free when its leases expire.
//! Taking a lease is one conditional upsert, so two relays never hold one partition at once
//! by the database's clock of record (the injected [`Clock`](saga_core::Clock)).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use saga_core::Result;
use sqlx::{AssertSqlSafe, PgPool, Row, SqlSafeStr, SqlStr};

use super::PgStore;
use crate::sql::error::db_err;
use crate::time::to_nanos;

/// How leases are held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// This relay's name (unique among the relays of a service).
    pub owner: String,
    /// How long a lease lasts without renewal (by the store's clock).
    pub ttl: Duration,
    /// How often (real time) leases are renewed and rebalanced; well below `ttl`.
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// `owner` with a 15 s lease renewed every 3 s.
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            ttl: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
        }
    }
}

struct Sql {
    heartbeat: SqlStr,
    live: SqlStr,
    renew: SqlStr,
    release: SqlStr,
    free: SqlStr,
    take: SqlStr,
    release_all: SqlStr,
    leave: SqlStr,
}

/// The partition leases of one relay.
pub struct Leases {
    pool: PgPool,
    clock: saga_core::clock::SharedClock,
    config: LeaseConfig,
    partitions: u16,
    sql: Sql,
    owned: Mutex<BTreeSet<i32>>,
    last: Mutex<Option<Instant>>,
    /// The store's record of what relays of this process hold.
    holders: Option<Arc<crate::partition::LocalHolders>>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("config", &self.config)
            .field("owned", &self.owned())
            .finish_non_exhaustive()
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        // Dropped without `release_all` (a stopped relay, an aborted task): this process no
        // longer relays these partitions; their leases run out in the database.
        self.set_owned(BTreeSet::new());
    }
}

impl Leases {
    /// Leases on `store`'s partitions for the relay named in `config`.
    pub fn new(store: &PgStore, config: LeaseConfig) -> Arc<Self> {
        let t = store.tables();
        let s = |template: &str| AssertSqlSafe(Arc::<str>::from(t.render(template))).into_sql_str();
        Arc::new(Self {
            pool: store.write_pool().clone(),
            clock: Arc::clone(store.clock()),
            partitions: store.partitions(),
            sql: Sql {
                heartbeat: s("INSERT INTO {relays} (owner, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at"),
                live: s("SELECT COUNT(*) FROM {relays} WHERE expires_at > $1"),
                renew: s("UPDATE {leases} SET expires_at = $2 \
                     WHERE owner = $1 AND part = ANY($3) RETURNING part"),
                release: s("UPDATE {leases} SET owner = '', expires_at = 0 \
                     WHERE owner = $1 AND part = ANY($2)"),
                free: s("SELECT p FROM generate_series(0, $1 - 1) AS p \
                     LEFT JOIN {leases} l ON l.part = p \
                     WHERE l.part IS NULL OR l.expires_at <= $2 OR l.owner = $3 ORDER BY p"),
                take: s("INSERT INTO {leases} AS l (part, owner, expires_at) \
                     SELECT p, $1, $2 FROM unnest($3::int[]) AS p \
                     ON CONFLICT (part) DO UPDATE SET owner = excluded.owner, \
                     expires_at = excluded.expires_at \
                     WHERE l.expires_at <= $4 OR l.owner = $1 RETURNING part"),
                release_all: s("UPDATE {leases} SET owner = '', expires_at = 0 WHERE owner = $1"),
                leave: s("DELETE FROM {relays} WHERE owner = $1"),
            },
            config,
            owned: Mutex::new(BTreeSet::new()),
            last: Mutex::new(None),
            holders: store.inner.local_parts.clone(),
        })
    }

    /// Replaces the set of held partitions, telling the store which were taken and lost.
    fn set_owned(&self, owned: BTreeSet<i32>) {
        let mut held = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = &self.holders {
            owned.difference(&held).for_each(|p| h.hold(*p));
            held.difference(&owned).for_each(|p| h.release(*p));
        }
        *held = owned;
    }

    /// The partitions held now.
    pub fn owned(&self) -> Vec<i32> {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Renews and rebalances if `renew_every` has passed since the last time (or if nothing
    /// is held yet).
    pub async fn maintain(&self) -> Result<()> {
        let due = {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            last.is_none_or(|at| at.elapsed() >= self.config.renew_every)
        };
        if due {
            self.rebalance().await?;
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        Ok(())
    }

    /// Heartbeat, renew, release the surplus, take free partitions up to the fair share
    /// (a relay restarted under the same name takes its own leases back at once).
    pub async fn rebalance(&self) -> Result<()> {
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(self.config.ttl).unwrap_or(chrono::Duration::MAX);
        let now_n = to_nanos(now);
        let until = to_nanos(now.checked_add_signed(ttl).unwrap_or(now));
        let me = self.config.owner.as_str();
        sqlx::query(self.sql.heartbeat.clone())
            .bind(me)
            .bind(until)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        let live: i64 = sqlx::query(self.sql.live.clone())
            .bind(now_n)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?
            .try_get(0)
            .map_err(db_err)?;
        let parts = i64::from(self.partitions);
        let share = usize::try_from((parts + live.max(1) - 1) / live.max(1)).unwrap_or(0);

        let held = self.owned();
        let renewed: Vec<i32> = sqlx::query(self.sql.renew.clone())
            .bind(me)
            .bind(until)
            .bind(&held)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .filter_map(|r| r.try_get::<i32, _>(0).ok())
            .collect();
        let mut owned: BTreeSet<i32> = renewed.into_iter().collect();

        if owned.len() > share {
            let surplus: Vec<i32> = owned
                .iter()
                .rev()
                .take(owned.len() - share)
                .copied()
                .collect();
            sqlx::query(self.sql.release.clone())
                .bind(me)
                .bind(&surplus)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            for p in surplus {
                owned.remove(&p);
            }
        } else if owned.len() < share {
            let free: Vec<i32> = sqlx::query(self.sql.free.clone())
                .bind(i32::from(self.partitions))
                .bind(now_n)
                .bind(me)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?
                .iter()
                .filter_map(|r| r.try_get::<i32, _>(0).ok())
                .filter(|p| !owned.contains(p))
                .take(share - owned.len())
                .collect();
            if !free.is_empty() {
                let taken = sqlx::query(self.sql.take.clone())
                    .bind(me)
                    .bind(until)
                    .bind(&free)
                    .bind(now_n)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                owned.extend(taken.iter().filter_map(|r| r.try_get::<i32, _>(0).ok()));
            }
        }
        self.set_owned(owned);
        Ok(())
    }

    /// Gives every lease back and leaves the set of live relays (on graceful stop).
    pub async fn release_all(&self) -> Result<()> {
        let me = self.config.owner.as_str();
        self.set_owned(BTreeSet::new());
        sqlx::query(self.sql.release_all.clone())
            .bind(me)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query(self.sql.leave.clone())
            .bind(me)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
