//! Connecting a Postgres store: a pool, the service's schema, the migrations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    idle_wait: Duration,
    clock: SharedClock,
}

impl PgOptions {
    /// The database at `url` (`postgres://user@host/db`), schema `saga`, 16 connections,
    /// 16 partitions, at most one `NOTIFY` per millisecond and none while relays elsewhere
    /// drain (for up to 20 ms), the system clock.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "saga".into(),
            max_connections: 16,
            partitions: 16,
            notify_gap: Duration::from_millis(1),
            idle_wait: Self::DEFAULT_IDLE_WAIT,
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

    /// After a `NOTIFY`, how long the notifier waits at most for a relay elsewhere to report
    /// that it drained the outbox before it notifies again (default
    /// [`DEFAULT_IDLE_WAIT`](Self::DEFAULT_IDLE_WAIT)).
    ///
    /// A relay woken by a `NOTIFY` claims until a claim finds nothing and then reports
    /// idle (a `NOTIFY` on [`PgStore::idle_channel`]); until then, commits here need no
    /// `NOTIFY` of their own: the relay's next claim sees them. When the report comes, one
    /// `NOTIFY` covers the commits made meanwhile. So under load, while relays elsewhere
    /// are busy anyway, producers send next to no `NOTIFY`s, and an idle relay is still
    /// woken by the first commit. The wait bounds how late a relay that never reports (an
    /// older version, or one that died) hears of a commit. Zero turns this off: a
    /// `NOTIFY` per commit, spaced by the [gap](Self::with_notify_gap).
    #[must_use]
    pub fn with_idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// The longest wait for a relay's idle report, unless set otherwise.
    pub const DEFAULT_IDLE_WAIT: Duration = Duration::from_millis(20);

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
            Pacing {
                gap: options.notify_gap,
                idle_wait: options.idle_wait,
            },
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

    /// The relays sharing this store's outbox now, by owner name (sorted): those whose
    /// heartbeat (renewed by [`Leases`](super::Leases) with their leases) has not run out.
    /// Replicas of a service each run one relay, so this also tells a replica whether it
    /// has live peers.
    pub async fn live_relays(&self) -> saga_core::Result<Vec<String>> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.tables()
                .render("SELECT owner FROM {relays} WHERE expires_at > $1 ORDER BY owner"),
        ))
        .bind(crate::time::to_nanos(self.clock().now()))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_err)
    }

    /// The channel a relay woken by a `NOTIFY` reports on once it has drained its partitions
    /// (see [`PgOptions::with_idle_wait`]).
    pub fn idle_channel(&self) -> String {
        idle_channel(&self.inner.channel)
    }
}

pub(crate) fn idle_channel(channel: &str) -> String {
    format!("{channel}_idle")
}

/// The least wait before a failed `NOTIFY` is sent again.
const NOTIFY_RETRY: Duration = Duration::from_millis(250);

/// How the notifier spaces its `NOTIFY`s.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    gap: Duration,
    idle_wait: Duration,
}

/// Listens on the idle channel for the notifier: `listening` while `LISTEN` holds, a
/// permit on `idle` per report (and one after every (re)connect, in case one was missed).
/// Its connection comes from a pool of its own (the store's pool keeps its size for
/// producers); it stops when the store's pool closes.
async fn listen_idle(
    pool: sqlx::PgPool,
    channel: String,
    idle: Arc<Notify>,
    listening: Arc<AtomicBool>,
) {
    use sqlx::postgres::PgListener;
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone());
    let closing = pool.close_event();
    tokio::pin!(closing);
    while !pool.is_closed() {
        let listener = async {
            let mut l = PgListener::connect_with(&own).await?;
            l.listen(&channel).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let listener = tokio::select! {
            l = listener => l,
            _ = &mut closing => break,
        };
        match listener {
            Ok(mut l) => {
                listening.store(true, Ordering::Release);
                idle.notify_one();
                loop {
                    tokio::select! {
                        r = l.recv() => if r.is_err() { break },
                        _ = &mut closing => {
                            listening.store(false, Ordering::Release);
                            drop(l);
                            own.close().await;
                            return;
                        }
                    }
                    idle.notify_one();
                }
                listening.store(false, Ordering::Release);
            }
            Err(e) => tracing::warn!(error = %e, "outbox LISTEN for idle relays failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut closing => break,
        }
    }
    own.close().await;
}

/// Sends `NOTIFY channel` after commits, outside any unit of work, until the store is
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
///
/// After a `NOTIFY` the notifier holds back (`armed` false) until a relay reports idle on
/// the idle channel or `idle_wait` passes: every relay the `NOTIFY` woke claims again until
/// a claim comes back empty, so a commit made before that claim is published without a
/// `NOTIFY` of its own, and one made after it is covered by the `NOTIFY` sent when the
/// report arrives (`pending`). A report from any relay re-arms (more `NOTIFY`s, never
/// fewer); without a `LISTEN` on the idle channel the notifier does not hold back at all.
async fn notifier(
    pool: sqlx::PgPool,
    channel: String,
    pacing: Pacing,
    mut requests: tokio::sync::mpsc::Receiver<()>,
) {
    use sqlx::Connection as _;
    let idle = Arc::new(Notify::new());
    let listening = Arc::new(AtomicBool::new(false));
    // Started with the first NOTIFY: a store whose commits never need one (its relays run
    // in this process) keeps no listening connection.
    let mut idle_listener: Option<tokio::task::JoinHandle<()>> = None;
    // Kept between notifications, opened again after an error.
    let mut conn: Option<PgConnection> = None;
    let closing = pool.close_event();
    tokio::pin!(closing);
    let (mut armed, mut pending) = (true, false);
    let mut held_until = tokio::time::Instant::now();
    loop {
        let send = tokio::select! {
            r = requests.recv() => match r {
                None => break,
                // Held back: the relays' drain or the NOTIFY after their report covers it.
                Some(()) if !armed && listening.load(Ordering::Acquire) => {
                    pending = true;
                    false
                }
                Some(()) => true,
            },
            // A report while armed needs nothing (taking it here keeps it from re-arming
            // the next hold at once).
            () = idle.notified() => {
                if !armed && !pending {
                    armed = true;
                }
                !armed && pending
            }
            // No report in time (a relay that died, or one that does not report).
            () = tokio::time::sleep_until(held_until), if !armed => {
                armed = !pending;
                pending
            }
            _ = &mut closing => break,
        };
        if pool.is_closed() {
            break;
        }
        if !send {
            continue;
        }
        if idle_listener.is_none() && !pacing.idle_wait.is_zero() {
            idle_listener = Some(tokio::spawn(listen_idle(
                pool.clone(),
                idle_channel(&channel),
                idle.clone(),
                listening.clone(),
            )));
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
        let failed = sent.is_err();
        if let Err(e) = sent {
            conn = None;
            tracing::warn!(error = %e, "outbox NOTIFY failed; trying again shortly");
        }
        // After a failure the commits it was for are still to be announced: the hold's end
        // sends again (not sooner than RETRY, so a server that is down is not hammered).
        (armed, pending) = (false, failed);
        held_until = tokio::time::Instant::now()
            + if failed {
                pacing.idle_wait.max(NOTIFY_RETRY)
            } else {
                pacing.idle_wait
            };
        if !pacing.gap.is_zero() {
            // Commits meanwhile leave one request in the channel: one NOTIFY covers them.
            tokio::select! {
                _ = tokio::time::sleep(pacing.gap) => {}
                _ = &mut closing => break,
            }
        }
    }
    if let Some(task) = idle_listener {
        task.abort();
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

crate::sql::backend::impl_sql_backend!(Postgres, PgConnection);
