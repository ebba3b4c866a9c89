//! Connecting a Postgres store: a pool, the service's schema, the migrations.

use std::sync::Arc;
use std::time::Duration;

use saga_core::clock::{SharedClock, SystemClock};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, Postgres};
use tokio::sync::Notify;

use crate::names::Tables;
use crate::sql::error::db_err;
use crate::sql::statements::{Dialect, Statements};
use crate::sql::store::{Inner, SqlStore};

/// The stores of one service in a Postgres schema.
pub type PgStore = SqlStore<Postgres>;

/// Where and how to connect a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    url: String,
    schema: String,
    max_connections: u32,
    partitions: u16,
    notify_gap: Duration,
    clock: SharedClock,
}

impl PgOptions {
    /// The database at `url` (`postgres://user@host/db`), schema `saga`, 16 connections,
    /// 16 partitions, at most one `NOTIFY` per millisecond, the system clock.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "saga".into(),
            max_connections: 16,
            partitions: 16,
            notify_gap: Duration::from_millis(1),
            clock: Arc::new(SystemClock),
        }
    }

    /// The service's schema (`[a-z_][a-z0-9_]*`), created if missing.
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Pool size.
    #[must_use]
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(2);
        self
    }

    /// Number of partitions of the aggregate id (relays lease them). Every process of a
    /// service must use the same number; change it only with an empty outbox.
    #[must_use]
    pub fn with_partitions(mut self, n: u16) -> Self {
        self.partitions = n.max(1);
        self
    }

    /// The least time between two `NOTIFY`s of this store's notifier (commits in between are
    /// covered by the next one). Only relays in *other* processes wait on it (those sharing
    /// the store are woken at once); each `NOTIFY` is a server transaction that takes the
    /// global notify lock, so a gap of zero costs producing throughput under load.
    #[must_use]
    pub fn with_notify_gap(mut self, gap: Duration) -> Self {
        self.notify_gap = gap;
        self
    }

    /// The clock timestamps and leases come from (tests pass a `ManualClock`).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl SqlStore<Postgres> {
    /// Connects, creates the schema if needed and applies the migrations.
    pub async fn connect(options: PgOptions) -> saga_core::Result<Self> {
        let tables = Tables::in_schema(&options.schema)?;
        let connect: PgConnectOptions = options
            .url
            .parse()
            .map_err(|e| saga_core::Error::InvalidArgument(format!("database url: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        {
            let mut conn = pool.acquire().await.map_err(db_err)?;
            super::migrations::migrate(&mut conn, &options.schema, &tables).await?;
        }
        let channel = format!("{}_outbox", options.schema);
        let (wake, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(notifier(
            pool.clone(),
            channel.clone(),
            options.notify_gap,
            rx,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                read: pool.clone(),
                write: pool,
                sql: Statements::new(&tables, Dialect::Postgres),
                tables,
                clock: options.clock,
                partitions: options.partitions,
                signal: Arc::new(Notify::new()),
                channel,
                remote_wake: Some(wake),
                local_parts: Some(Arc::new(crate::partition::LocalHolders::new(
                    options.partitions,
                ))),
            }),
        })
    }

    /// The `LISTEN/NOTIFY` channel units of work notify on commit.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }
}

/// Sends `NOTIFY channel` once per request, outside any unit of work, until the store is
/// dropped (its sender with it) or the pool closed.
///
/// A `NOTIFY` inside a producer's transaction would take Postgres's global notify lock
/// across that transaction's commit (and its WAL flush), serialising every producing commit
/// of the database. Sent afterwards from here, one at a time, commits keep flushing in
/// groups; requests arriving while one is in flight or within `gap` after it coalesce into
/// the next. The notification is a hint: a relay that misses it (process killed between
/// commit and notify, server crash before the notifying commit reached the disk) still
/// finds the rows at its fallback poll. So the notifier's connection commits with
/// `synchronous_commit = off`: its transactions (each `NOTIFY` is one, with a commit
/// record) do not wait for a WAL flush of their own. That setting must not reach a
/// producer, so the connection is detached from the pool: one connection beyond
/// `max_connections`, closed when the pool closes.
async fn notifier(
    pool: sqlx::PgPool,
    channel: String,
    gap: Duration,
    mut requests: tokio::sync::mpsc::Receiver<()>,
) {
    use sqlx::Connection as _;
    // Kept between notifications, opened again after an error.
    let mut conn: Option<PgConnection> = None;
    let closing = pool.close_event();
    tokio::pin!(closing);
    loop {
        let request = tokio::select! {
            r = requests.recv() => r,
            _ = &mut closing => None,
        };
        if request.is_none() || pool.is_closed() {
            break;
        }
        let sent = async {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => {
                    let mut c = pool.acquire().await?.detach();
                    sqlx::raw_sql("SET synchronous_commit = off")
                        .execute(&mut c)
                        .await?;
                    conn.insert(c)
                }
            };
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(channel.as_str())
                .execute(&mut *c)
                .await
        }
        .await;
        if let Err(e) = sent {
            conn = None;
            tracing::warn!(error = %e, "outbox NOTIFY failed; relays elsewhere wait for their poll");
        }
        if !gap.is_zero() {
            // Commits meanwhile leave one request in the channel: one NOTIFY covers them.
            tokio::select! {
                _ = tokio::time::sleep(gap) => {}
                _ = &mut closing => break,
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

crate::sql::backend::impl_sql_backend!(Postgres, PgConnection);
