//! [`SqlBroker`]: opening, migrations, publish (fan-out), subscribe, replay, close.

use std::collections::VecDeque;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use saga_core::broker::{DeadLetterReplay, DeliveryStream, Publisher, Subscriber, Subscription};
use saga_core::dead_letter::{DeadLetterStore, ReplayOutcome};
use saga_core::topic::matches_any;
use saga_core::{Envelope, Error, Result, TopicPattern};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool};
use uuid::Uuid;

use super::consumer::Consumer;
use super::db::{Db, INSERT_CHUNK, db_err, notify_in, on_db, on_db_read, sql};
use super::listen::listen;
use super::options::SqlOptions;
use super::settle::SettleStats;
use super::shared::Shared;

/// A durable queue in SQLite or Postgres. Clones share one pool and one set of wake-ups.
#[derive(Clone)]
pub struct SqlBroker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SqlBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlBroker")
            .field("db", &self.shared.db)
            .field("options", &self.shared.options)
            .field("closed", &self.shared.is_closed())
            .finish_non_exhaustive()
    }
}

impl SqlBroker {
    /// Opens (creating it if missing) a SQLite database file: WAL journal, `synchronous` as
    /// [`SqlOptions::sqlite_full_sync`] says, and runs the migrations.
    pub async fn open_sqlite(
        path: impl AsRef<Path>,
        dead_letters: Arc<dyn DeadLetterStore>,
        options: SqlOptions,
    ) -> Result<Self> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::sqlite_with(connect, dead_letters, options).await
    }

    /// Connects by URL: `sqlite:path/to/file.db` (created if missing) or
    /// `postgres://user@host/db`.
    pub async fn connect(
        url: &str,
        dead_letters: Arc<dyn DeadLetterStore>,
        options: SqlOptions,
    ) -> Result<Self> {
        if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::InvalidArgument(format!("SQLite URL: {e}")))?
                .create_if_missing(true);
            Self::sqlite_with(connect, dead_letters, options).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            options.validate()?;
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .connect(url)
                .await
                .map_err(db_err)?;
            Self::from_postgres_pool(pool, dead_letters, options).await
        } else {
            Err(Error::InvalidArgument(
                "the URL must start with sqlite: or postgres://".into(),
            ))
        }
    }

    async fn sqlite_with(
        connect: SqliteConnectOptions,
        dead_letters: Arc<dyn DeadLetterStore>,
        options: SqlOptions,
    ) -> Result<Self> {
        options.validate()?;
        let connect = connect
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.sqlite_full_sync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(options.sqlite_max_connections)
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        Self::from_sqlite_pool(pool, dead_letters, options).await
    }

    /// A broker on an open SQLite pool (WAL and a busy timeout recommended); runs the
    /// migrations.
    pub async fn from_sqlite_pool(
        pool: SqlitePool,
        dead_letters: Arc<dyn DeadLetterStore>,
        options: SqlOptions,
    ) -> Result<Self> {
        Self::open(Db::sqlite(pool), dead_letters, options).await
    }

    /// A broker on a Postgres pool; runs the migrations (in [`SqlOptions::schema`], created
    /// if missing) and starts listening for wake-ups from other processes.
    pub async fn from_postgres_pool(
        pool: PgPool,
        dead_letters: Arc<dyn DeadLetterStore>,
        options: SqlOptions,
    ) -> Result<Self> {
        let broker = Self::open(Db::Postgres(pool.clone()), dead_letters, options).await?;
        let shared = &broker.shared;
        let task = tokio::spawn(listen(
            pool,
            shared.sql.channel.clone(),
            Arc::downgrade(shared),
            shared.stop_listener.clone(),
        ));
        *shared.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(broker)
    }

    async fn open(
        db: Db,
        dead_letters: Arc<dyn DeadLetterStore>,
        options: SqlOptions,
    ) -> Result<Self> {
        options.validate()?;
        let shared = Arc::new(Shared::new(db, options, dead_letters)?);
        migrate(&shared).await?;
        Ok(Self { shared })
    }

    /// The store dead letters go to.
    pub fn dead_letters(&self) -> &Arc<dyn DeadLetterStore> {
        &self.shared.dead_letters
    }

    /// The SQLite pool, if this broker runs on SQLite.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.shared.db {
            Db::Sqlite(p, _) => Some(p),
            Db::Postgres(_) => None,
        }
    }

    /// The Postgres pool, if this broker runs on Postgres.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.shared.db {
            Db::Postgres(p) => Some(p),
            Db::Sqlite(..) => None,
        }
    }

    /// How many messages a subscription holds (waiting, delayed or in flight).
    pub async fn queued(&self, subscription: &str) -> Result<u64> {
        let s = &self.shared;
        let q = self.qualified("messages");
        let stmt: Arc<str> = if matches!(s.db, Db::Postgres(_)) {
            Arc::from(format!(
                "SELECT COUNT(*) AS n FROM {q} WHERE subscription = $1"
            ))
        } else {
            Arc::from(format!(
                "SELECT COUNT(*) AS n FROM {q} WHERE subscription = ?1"
            ))
        };
        let n: i64 = on_db_read!(&s.db, |pool| {
            sqlx::query(sql(&stmt))
                .bind(subscription)
                .fetch_one(pool)
                .await
                .and_then(|r| r.try_get::<i64, _>("n"))
                .map_err(db_err)?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn qualified(&self, table: &str) -> String {
        let o = &self.shared.options;
        match self.shared.db {
            Db::Postgres(_) => format!("{}.{}{table}", o.schema, o.table_prefix),
            Db::Sqlite(..) => format!("{}{table}", o.table_prefix),
        }
    }

    /// Shuts down gracefully: every stream ends (claimed but not yet handed out messages are
    /// given back), the Postgres listener stops, publish and subscribe fail with
    /// [`Error::Closed`]. Deliveries already handed out may still be settled (the settlement
    /// task runs until the last handle, stream and delivery are gone); the pool closes when
    /// the last handle and delivery are gone.
    pub async fn close(&self) {
        self.shared.mark_closed();
        let task = self
            .shared
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// What the group commit of acks and retries has done since this broker opened: commits,
    /// the settlements they carried, failed batches. `settled / commits` is the mean batch.
    pub fn settle_stats(&self) -> SettleStats {
        self.shared.settler.stats()
    }

    /// Whether [`SqlBroker::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    fn ensure_open(&self) -> Result<()> {
        if self.shared.is_closed() {
            Err(Error::Closed("sql broker".into()))
        } else {
            Ok(())
        }
    }

    async fn ensure_subscription(&self, name: &str) -> Result<()> {
        let s = &self.shared;
        let found = on_db_read!(&s.db, |pool| {
            sqlx::query(sql(&s.sql.select_subscription))
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(db_err)?
                .is_some()
        });
        if found {
            Ok(())
        } else {
            Err(Error::NotFound {
                entity: "subscription",
                id: name.to_owned(),
            })
        }
    }

    /// Replays a dead letter: marks it replayed and queues its message again for its
    /// subscription only, at the head of its key (its old position) if the key is parked, and
    /// unparks the key. Returns `false` if it was replayed or discarded before.
    pub async fn replay_dead_letter(&self, id: Uuid) -> Result<bool> {
        let letter = self.shared.dead_letters.get(id).await?;
        self.ensure_subscription(&letter.subscription).await?;
        let s = &self.shared;
        let letter_id = id.to_string();
        let sub = letter.subscription.clone();
        match s.dead_letters.replay(id).await? {
            ReplayOutcome::Replayed(letter) => {
                let envelope = letter.envelope;
                let event_id = envelope.event_id.to_string();
                let json =
                    serde_json::to_string(&envelope).map_err(|e| Error::InvalidEnvelope {
                        reason: e.to_string(),
                    })?;
                let now = s.now_us();
                on_db!(&s.db, |pool, begin| {
                    let mut tx = pool.begin_with(begin).await.map_err(db_err)?;
                    let ord = sqlx::query(sql(&s.sql.unpark))
                        .bind(&sub)
                        .bind(&letter_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?
                        .map(|r| r.try_get::<i64, _>("ord"))
                        .transpose()
                        .map_err(db_err)?;
                    // After a crash between storing the letter and deleting the row, the row
                    // is still there: it flows again once unparked, no second copy.
                    let exists = sqlx::query(sql(&s.sql.message_exists))
                        .bind(&sub)
                        .bind(&event_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?
                        .is_some();
                    if !exists {
                        match ord {
                            // Its old id: ahead of every later message of its key.
                            Some(ord) => sqlx::query(sql(&s.sql.insert_message_at)).bind(ord),
                            None => sqlx::query(sql(&s.sql.insert_values(1))),
                        }
                        .bind(&sub)
                        .bind(&event_id)
                        .bind(&envelope.aggregate_id)
                        .bind(&json)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    }
                    notify_in!(s, tx, &sub);
                    tx.commit().await.map_err(db_err)?;
                });
                s.wake(&sub);
                Ok(true)
            }
            ReplayOutcome::AlreadyDone(_) => {
                self.unpark(&sub, &letter_id, None).await?;
                Ok(false)
            }
        }
    }

    /// Discards a dead letter: marks it discarded and unparks its key, so the key's later
    /// messages flow in order. Returns `false` if it was not pending.
    pub async fn discard_dead_letter(&self, id: Uuid) -> Result<bool> {
        let letter = self.shared.dead_letters.get(id).await?;
        self.ensure_subscription(&letter.subscription).await?;
        let discarded = self.shared.dead_letters.discard(id).await?;
        let event_id = letter.envelope.event_id.to_string();
        self.unpark(&letter.subscription, &id.to_string(), Some(&event_id))
            .await?;
        Ok(discarded)
    }

    /// Lifts the park of letter `letter_id`; removes a leftover row of `event_id` (a crash
    /// between storing the letter and deleting the row).
    async fn unpark(&self, sub: &str, letter_id: &str, event_id: Option<&str>) -> Result<()> {
        let s = &self.shared;
        on_db!(&s.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await.map_err(db_err)?;
            sqlx::query(sql(&s.sql.unpark))
                .bind(sub)
                .bind(letter_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            if let Some(event_id) = event_id {
                sqlx::query(sql(&s.sql.delete_by_event))
                    .bind(sub)
                    .bind(event_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            notify_in!(s, tx, sub);
            tx.commit().await.map_err(db_err)?;
        });
        s.wake(sub);
        Ok(())
    }
}

/// Creates the schema and applies the embedded migrations not applied yet, in one
/// transaction (serialised by an advisory lock on Postgres, by `BEGIN IMMEDIATE` on SQLite).
async fn migrate(s: &Shared) -> Result<()> {
    let now = s.now_us();
    on_db!(&s.db, |pool, begin| {
        let mut tx = pool.begin_with(begin).await.map_err(db_err)?;
        if matches!(s.db, Db::Postgres(_)) {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(&s.sql.channel)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        sqlx::raw_sql(AssertSqlSafe(s.sql.bootstrap.clone()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let current: i64 = sqlx::query(sql(&s.sql.select_version))
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get::<Option<i64>, _>("v"))
            .map_err(db_err)?
            .unwrap_or(0);
        for (version, script) in &s.sql.migrations {
            if *version <= current {
                continue;
            }
            sqlx::raw_sql(AssertSqlSafe(script.clone()))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(sql(&s.sql.insert_version))
                .bind(*version)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
    });
    Ok(())
}

/// The stored subscriptions: each name with its parsed patterns.
fn subscriptions<R>(s: &Shared, rows: &[R]) -> Result<Vec<Subscribed>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| {
            let name: String = r.try_get(0).map_err(db_err)?;
            let patterns: String = r.try_get(1).map_err(db_err)?;
            Ok((name, s.patterns(&patterns)?))
        })
        .collect()
}

/// Binds the five values of each of `rows` (event index in `batch`, subscription index) to
/// [`Statements::insert_values`](super::db::Statements::insert_values)`(rows.len())`.
fn bind_rows<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    rows: &[(usize, usize)],
    subs: &'q [Subscribed],
    batch: &'q [Envelope],
    encoded: &'q [(String, String)],
    now: i64,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for &(i, j) in rows {
        q = q
            .bind(subs[j].0.as_str())
            .bind(encoded[i].0.as_str())
            .bind(batch[i].aggregate_id.as_str())
            .bind(encoded[i].1.as_str())
            .bind(now);
    }
    q
}

/// A subscription's name and patterns.
type Subscribed = (String, Arc<Vec<TopicPattern>>);

/// Fan-out at publish time: one row per matching subscription, in batch order.
struct FanOut {
    /// (event index in the batch, subscription index).
    rows: Vec<(usize, usize)>,
    /// Per subscription: whether any row is its.
    hit: Vec<bool>,
}

impl FanOut {
    fn of(subs: &[Subscribed], batch: &[Envelope]) -> Self {
        let mut rows = Vec::new();
        let mut hit = vec![false; subs.len()];
        for (i, envelope) in batch.iter().enumerate() {
            for (j, (_, patterns)) in subs.iter().enumerate() {
                if matches_any(patterns, &envelope.event_type) {
                    rows.push((i, j));
                    hit[j] = true;
                }
            }
        }
        Self { rows, hit }
    }

    /// The names of the subscriptions that got rows.
    fn touched(self, subs: Vec<Subscribed>) -> Vec<String> {
        subs.into_iter()
            .zip(self.hit)
            .filter_map(|((name, _), hit)| hit.then_some(name))
            .collect()
    }
}

#[async_trait]
impl Publisher for SqlBroker {
    async fn publish(&self, batch: &[Envelope]) -> Result<()> {
        self.ensure_open()?;
        if batch.is_empty() {
            return Ok(());
        }
        let s = &self.shared;
        let encoded = batch
            .iter()
            .map(|e| {
                serde_json::to_string(e)
                    .map(|json| (e.event_id.to_string(), json))
                    .map_err(|err| Error::InvalidEnvelope {
                        reason: err.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let now = s.now_us();
        if let Db::Sqlite(pool, gate) = &s.db {
            // Most batches fit one `INSERT`: the subscriptions are read first, outside the
            // write gate, and the rows written by that one autocommit statement, so the gate
            // is held for one call instead of four (BEGIN, read, insert, COMMIT). A
            // subscription created meanwhile misses this batch, as if it had been created
            // just after it; one removed meanwhile is handled as on the transaction's path.
            let rows = sqlx::query(sql(&s.sql.select_subscriptions))
                .fetch_all(pool)
                .await
                .map_err(db_err)?;
            let subs = subscriptions(s, &rows)?;
            let fan = FanOut::of(&subs, batch);
            if fan.rows.len() <= INSERT_CHUNK {
                if !fan.rows.is_empty() {
                    let stmt = s.sql.insert_values(fan.rows.len());
                    let q = bind_rows(
                        sqlx::query(sql(&stmt)),
                        &fan.rows,
                        &subs,
                        batch,
                        &encoded,
                        now,
                    );
                    let _writing = gate.lock().await;
                    q.execute(pool).await.map_err(db_err)?;
                }
                fan.touched(subs).iter().for_each(|name| s.wake(name));
                return Ok(());
            }
        }
        let touched: Vec<String> = on_db!(&s.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await.map_err(db_err)?;
            let rows = sqlx::query(sql(&s.sql.select_subscriptions))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            let subs = subscriptions(s, &rows)?;
            let fan = FanOut::of(&subs, batch);
            for chunk in fan.rows.chunks(INSERT_CHUNK) {
                let stmt = s.sql.insert_values(chunk.len());
                bind_rows(sqlx::query(sql(&stmt)), chunk, &subs, batch, &encoded, now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            let touched = fan.touched(subs);
            for name in &touched {
                notify_in!(s, tx, name);
            }
            tx.commit().await.map_err(db_err)?;
            touched
        });
        touched.iter().for_each(|name| s.wake(name));
        Ok(())
    }
}

#[async_trait]
impl Subscriber for SqlBroker {
    async fn subscribe(&self, subscription: &Subscription) -> Result<DeliveryStream> {
        self.ensure_open()?;
        if subscription.name.is_empty() {
            return Err(Error::InvalidArgument(
                "the subscription name is empty".into(),
            ));
        }
        if subscription.patterns.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "subscription `{}` has no topic patterns",
                subscription.name
            )));
        }
        for p in &subscription.patterns {
            TopicPattern::parse(p)?;
        }
        let mut patterns = subscription.patterns.clone();
        patterns.sort_unstable();
        patterns.dedup();
        let json =
            serde_json::to_string(&patterns).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let s = &self.shared;
        let now = s.now_us();
        let (stored, ordered): (String, i64) = on_db!(&s.db, |pool, _begin| {
            sqlx::query(sql(&s.sql.insert_subscription))
                .bind(&subscription.name)
                .bind(&json)
                .bind(i64::from(subscription.ordered))
                .bind(now)
                .execute(pool)
                .await
                .map_err(db_err)?;
            let row = sqlx::query(sql(&s.sql.select_subscription))
                .bind(&subscription.name)
                .fetch_one(pool)
                .await
                .map_err(db_err)?;
            (
                row.try_get("patterns").map_err(db_err)?,
                row.try_get("ordered").map_err(db_err)?,
            )
        });
        let stored: Vec<String> = serde_json::from_str(&stored).unwrap_or_default();
        if stored != patterns || (ordered != 0) != subscription.ordered {
            return Err(Error::InvalidArgument(format!(
                "subscription `{}` exists with other patterns or ordering",
                subscription.name
            )));
        }
        let consumer = Consumer {
            shared: s.clone(),
            subscription: Arc::from(subscription.name.as_str()),
            id: Arc::from(Uuid::now_v7().to_string()),
            ordered: subscription.ordered,
            prefetch: usize::from(subscription.prefetch.max(1)),
            notify: s.notify_for(&subscription.name),
            in_flight: Arc::new(AtomicUsize::new(0)),
            drained_at: None,
            buffer: VecDeque::new(),
            backoff: None,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            consumer,
            |mut consumer| async move {
                let item = consumer.next().await?;
                Some((item, consumer))
            },
        )))
    }

    /// Deletes the subscription's row, its messages and its parked keys in one transaction.
    /// A publish running at the same moment may have read the subscription before it went
    /// and still write its messages for the name; removing the name again drops them.
    async fn remove_subscription(&self, name: &str) -> Result<()> {
        self.ensure_open()?;
        let s = &self.shared;
        on_db!(&s.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await.map_err(db_err)?;
            for stmt in &s.sql.remove_subscription {
                sqlx::query(sql(stmt))
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
        });
        // Consumers of the name (there should be none) look again and find nothing.
        s.wake(name);
        Ok(())
    }
}

#[async_trait]
impl DeadLetterReplay for SqlBroker {
    async fn replay_dead_letter(&self, id: Uuid) -> Result<bool> {
        SqlBroker::replay_dead_letter(self, id).await
    }

    async fn discard_dead_letter(&self, id: Uuid) -> Result<bool> {
        SqlBroker::discard_dead_letter(self, id).await
    }
}
