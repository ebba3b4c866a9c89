//! Publish + consume throughput of the SQL queue (SQLite, and Postgres when `DATABASE_URL` is
//! set) and of the in-memory broker, each against a ceiling measured in the same run: the same
//! work written directly (raw SQL: batched insert, claim with a lease, delete per message;
//! memory: a tokio channel).
//!
//! Two consumer shapes: one consumer acking one message after the other (every ack waits for
//! its own commit), and `CONSUMERS` competing consumers, each driven by its own task, with up
//! to `IN_FLIGHT` deliveries acked at once from spawned tasks, as the reference app's consumer
//! runner does (their acks can share commits). The ceiling of the concurrent shape deletes each claimed batch in one
//! statement and one commit.
//!
//! Run with `cargo bench -p saga-brokers --features sql --bench sql`; `BENCH_N` sets the
//! message count of the SQL runs (default 20000), `BENCH_MEMORY_N` the memory one (default
//! 1000000). Arguments after `--` pick rows by key (`memory`, `sqlite-full-sequential`,
//! `sqlite-normal-concurrent`, `postgres-sequential`, ...; any key containing one runs).
//! Results are recorded in docs/bench/brokers-sql.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use saga_brokers::memory::MemoryBroker;
use saga_brokers::sql::{SqlBroker, SqlOptions};
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::{Envelope, Publisher, Subscriber, Subscription, SystemClock};
use sqlx::{AssertSqlSafe, Connection, Row};

const BATCH: usize = 100;
const PREFETCH: u16 = 256;
/// Competing consumers of the concurrent shape.
const CONSUMERS: usize = 4;
/// Deliveries being acked at once in the concurrent shape, over all its consumers.
const IN_FLIGHT: usize = 64;

/// How the consumers settle.
#[derive(Clone, Copy)]
enum Shape {
    /// One consumer, one ack after the other.
    Sequential,
    /// `CONSUMERS` consumers, up to `IN_FLIGHT` acks at once.
    Concurrent,
}

impl Shape {
    fn key(self) -> &'static str {
        match self {
            Shape::Sequential => "sequential",
            Shape::Concurrent => "concurrent",
        }
    }

    fn label(self) -> String {
        match self {
            Shape::Sequential => "1 consumer, sequential acks".into(),
            Shape::Concurrent => format!("{CONSUMERS} consumers, {IN_FLIGHT} acks in flight"),
        }
    }
}

fn envelopes(n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|i| {
            Envelope::new(
                "order.placed",
                format!("order-{}", i % 100),
                serde_json::json!({ "seq": i, "total": 5000 }),
            )
        })
        .collect()
}

/// One publisher task (batches of `BATCH`) and one consumer acking every message.
async fn through_broker<B>(broker: Arc<B>, msgs: Arc<Vec<Envelope>>, batch: usize) -> Duration
where
    B: Publisher + Subscriber + 'static,
{
    let mut stream = broker
        .subscribe(&Subscription::new("bench", ["order.*"]).with_prefetch(PREFETCH))
        .await
        .expect("subscribe");
    let n = msgs.len();
    let start = Instant::now();
    let publisher = {
        let broker = broker.clone();
        tokio::spawn(async move {
            for chunk in msgs.chunks(batch) {
                broker.publish(chunk).await.expect("publish");
            }
        })
    };
    for _ in 0..n {
        let d = stream.next().await.expect("open").expect("delivery");
        d.ack().await.expect("ack");
    }
    let elapsed = start.elapsed();
    publisher.await.expect("publisher");
    elapsed
}

/// One publisher task (batches of `BATCH`) and `CONSUMERS` competing consumers, each driven
/// by its own task as the reference app's consumer runner does (a permit, then `next()`, then
/// the ack in a spawned task); at most `IN_FLIGHT` acks at once over all of them.
///
/// Each stream is polled to completion by its own task: a stream left pending in the middle
/// of a claim (say, merged with `select_all` while the caller waits for a permit) would keep
/// the claim's `UPDATE ... RETURNING` unfinished, and with it SQLite's write lock.
async fn through_broker_concurrent<B>(
    broker: Arc<B>,
    msgs: Arc<Vec<Envelope>>,
    batch: usize,
) -> Duration
where
    B: Publisher + Subscriber + 'static,
{
    let prefetch = PREFETCH / u16::try_from(CONSUMERS).expect("consumers");
    let mut streams = Vec::new();
    for _ in 0..CONSUMERS {
        streams.push(
            broker
                .subscribe(&Subscription::new("bench", ["order.*"]).with_prefetch(prefetch))
                .await
                .expect("subscribe"),
        );
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let all_acked = Arc::new(tokio::sync::Notify::new());
    let n = msgs.len();
    let start = Instant::now();
    let publisher = {
        let broker = broker.clone();
        tokio::spawn(async move {
            for chunk in msgs.chunks(batch) {
                broker.publish(chunk).await.expect("publish");
            }
        })
    };
    let consumers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let (permits, acked, all_acked) = (permits.clone(), acked.clone(), all_acked.clone());
            tokio::spawn(async move {
                loop {
                    let permit = permits.clone().acquire_owned().await.expect("permit");
                    // `None` once the broker closes, after the last ack.
                    let Some(d) = stream.next().await else { break };
                    let d = d.expect("delivery");
                    let (acked, all_acked) = (acked.clone(), all_acked.clone());
                    tokio::spawn(async move {
                        d.ack().await.expect("ack");
                        drop(permit);
                        if acked.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1 == n {
                            all_acked.notify_one();
                        }
                    });
                }
            })
        })
        .collect();
    all_acked.notified().await;
    let elapsed = start.elapsed();
    for consumer in &consumers {
        consumer.abort();
    }
    publisher.await.expect("publisher");
    elapsed
}

/// The ceiling of the memory broker: the same messages through a tokio channel.
async fn through_channel(msgs: Arc<Vec<Envelope>>, batch: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Envelope>();
    let n = msgs.len();
    let start = Instant::now();
    let publisher = tokio::spawn(async move {
        for chunk in msgs.chunks(batch) {
            for e in chunk {
                tx.send(e.clone()).expect("send");
            }
        }
    });
    for _ in 0..n {
        let e = rx.recv().await.expect("open");
        std::hint::black_box(e);
    }
    let elapsed = start.elapsed();
    publisher.await.expect("publisher");
    elapsed
}

/// Raw SQL doing the broker's work without the broker: a batched multi-row insert per publish
/// transaction, claims of up to `PREFETCH` rows with a lease (`UPDATE ... RETURNING`, `SKIP
/// LOCKED` on Postgres), envelope decoding, and one `DELETE` per message (with `$grouped`: one
/// `DELETE ... WHERE id IN (...)` and one commit per claimed batch). Woken by a Notify.
macro_rules! raw_sql_run {
    ($pool:expr, $postgres:expr, $table:expr, $msgs:expr, $grouped:expr) => {{
        let pool = $pool;
        let table: String = $table;
        let fix = |s: String| if $postgres { s } else { s.replace('$', "?") };
        let int = if $postgres { "BIGINT" } else { "INTEGER" };
        let id = if $postgres { "id BIGSERIAL PRIMARY KEY" } else { "id INTEGER PRIMARY KEY AUTOINCREMENT" };
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {table} ({id}, subscription TEXT NOT NULL, event_id TEXT NOT NULL, \
             agg_key TEXT NOT NULL, envelope TEXT NOT NULL, attempt {int} NOT NULL DEFAULT 0, \
             visible_at {int} NOT NULL, locked_by TEXT, locked_until {int}); \
             CREATE INDEX raw_messages_sub_id ON {table} (subscription, id);"
        )))
        .execute(&pool)
        .await
        .expect("create raw table");
        let skip = if $postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let claim = fix(format!(
            "UPDATE {table} SET attempt = attempt + 1, locked_by = $1, locked_until = $2 \
             WHERE id IN (SELECT id FROM {table} WHERE subscription = $3 AND visible_at <= $4 \
             AND (locked_until IS NULL OR locked_until <= $4) ORDER BY id LIMIT $5{skip}) \
             RETURNING id, envelope, attempt"
        ));
        let delete = fix(format!("DELETE FROM {table} WHERE id = $1"));
        let mut insert = format!(
            "INSERT INTO {table} (subscription, event_id, agg_key, envelope, visible_at) VALUES "
        );
        for r in 0..BATCH {
            let b = r * 5;
            if r > 0 {
                insert.push(',');
            }
            insert.push_str(&format!("(${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5));
        }
        let insert = fix(insert);
        let msgs: Arc<Vec<Envelope>> = $msgs;
        let n = msgs.len();
        let wake = Arc::new(tokio::sync::Notify::new());
        let start = Instant::now();
        let publisher = {
            let (pool, wake, msgs, insert) = (pool.clone(), wake.clone(), msgs.clone(), insert.clone());
            let begin = if $postgres { "BEGIN" } else { "BEGIN IMMEDIATE" };
            tokio::spawn(async move {
                for chunk in msgs.chunks(BATCH) {
                    assert_eq!(chunk.len(), BATCH, "BENCH_N must be a multiple of {BATCH}");
                    let encoded: Vec<(String, String)> = chunk
                        .iter()
                        .map(|e| (e.event_id.to_string(), serde_json::to_string(e).expect("json")))
                        .collect();
                    let now = chrono::Utc::now().timestamp_micros();
                    let mut tx = pool.begin_with(begin).await.expect("begin");
                    let mut q = sqlx::query(AssertSqlSafe(insert.clone()));
                    for (e, (id, json)) in chunk.iter().zip(&encoded) {
                        q = q.bind("bench").bind(id.as_str()).bind(e.aggregate_id.as_str()).bind(json.as_str()).bind(now);
                    }
                    q.execute(&mut *tx).await.expect("insert");
                    tx.commit().await.expect("commit");
                    wake.notify_waiters();
                }
            })
        };
        let mut done = 0;
        while done < n {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = chrono::Utc::now().timestamp_micros();
            let rows = sqlx::query(AssertSqlSafe(claim.clone()))
                .bind("raw-consumer")
                .bind(now + 30_000_000)
                .bind("bench")
                .bind(now)
                .bind(i64::from(PREFETCH))
                .fetch_all(&pool)
                .await
                .expect("claim");
            if rows.is_empty() {
                let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
                continue;
            }
            let mut claimed: Vec<(i64, String)> = rows
                .iter()
                .map(|r| (r.get::<i64, _>("id"), r.get::<String, _>("envelope")))
                .collect();
            claimed.sort_unstable_by_key(|r| r.0);
            if $grouped {
                for (_, json) in &claimed {
                    let e: Envelope = serde_json::from_str(json).expect("envelope");
                    std::hint::black_box(e);
                }
                let marks: Vec<String> = (1..=claimed.len()).map(|i| format!("${i}")).collect();
                let stmt = fix(format!("DELETE FROM {table} WHERE id IN ({})", marks.join(", ")));
                let mut q = sqlx::query(AssertSqlSafe(stmt));
                for (id, _) in &claimed {
                    q = q.bind(*id);
                }
                q.execute(&pool).await.expect("delete");
                done += claimed.len();
            } else {
                for (id, json) in claimed {
                    let e: Envelope = serde_json::from_str(&json).expect("envelope");
                    std::hint::black_box(e);
                    sqlx::query(AssertSqlSafe(delete.clone())).bind(id).execute(&pool).await.expect("delete");
                    done += 1;
                }
            }
        }
        let elapsed = start.elapsed();
        publisher.await.expect("publisher");
        elapsed
    }};
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn report(what: &str, n: usize, adapter: Duration, ceiling: Duration) {
    let (a, c) = (rate(n, adapter), rate(n, ceiling));
    println!("| {what} | {n} | {a:.0} | {c:.0} | {:.0}% |", 100.0 * a / c);
}

fn temp_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("saga-bench-{}.db", uuid::Uuid::now_v7().simple()))
}

fn remove(path: &std::path::Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

async fn sqlite(n: usize, full_sync: bool, shape: Shape) {
    let msgs = Arc::new(envelopes(n));
    let options = SqlOptions::default().with_sqlite_full_sync(full_sync);
    let path = temp_path();
    let broker = Arc::new(
        SqlBroker::open_sqlite(
            &path,
            Arc::new(MemoryDeadLetterStore::default()),
            options.clone(),
        )
        .await
        .expect("open"),
    );
    let adapter = run_shape(broker.clone(), msgs.clone(), shape).await;
    let pool = broker.sqlite_pool().expect("sqlite").clone();
    broker.close().await;
    // Same file, same pool settings (WAL, synchronous, connections): only the broker is gone.
    let grouped = matches!(shape, Shape::Concurrent);
    let ceiling = raw_sql_run!(
        pool.clone(),
        false,
        "raw_messages".to_owned(),
        msgs.clone(),
        grouped
    );
    pool.close().await;
    remove(&path);
    let sync = if full_sync { "FULL" } else { "NORMAL" };
    report(
        &format!("sql, SQLite (synchronous={sync}), {}", shape.label()),
        n,
        adapter,
        ceiling,
    );
}

async fn postgres(url: &str, n: usize, shape: Shape) {
    let msgs = Arc::new(envelopes(n));
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let broker = Arc::new(
        SqlBroker::connect(
            url,
            Arc::new(MemoryDeadLetterStore::default()),
            SqlOptions::default().with_schema(schema.clone()),
        )
        .await
        .expect("connect"),
    );
    let adapter = run_shape(broker.clone(), msgs.clone(), shape).await;
    let pool = broker.postgres_pool().expect("postgres").clone();
    broker.close().await;
    let ceiling = raw_sql_run!(
        pool.clone(),
        true,
        format!("{schema}.raw_messages"),
        msgs.clone(),
        matches!(shape, Shape::Concurrent)
    );
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .expect("drop schema");
    report(
        &format!("sql, Postgres, {}", shape.label()),
        n,
        adapter,
        ceiling,
    );
}

/// Runs `shape` and prints (to stderr) how many commits the broker's group commit took.
async fn run_shape(broker: Arc<SqlBroker>, msgs: Arc<Vec<Envelope>>, shape: Shape) -> Duration {
    let elapsed = match shape {
        Shape::Sequential => through_broker(broker.clone(), msgs, BATCH).await,
        Shape::Concurrent => through_broker_concurrent(broker.clone(), msgs, BATCH).await,
    };
    let stats = broker.settle_stats();
    eprintln!(
        "  {}: {} acks in {} commits ({:.1} per commit), {} failed batches",
        shape.label(),
        stats.settled,
        stats.commits,
        stats.settled as f64 / stats.commits.max(1) as f64,
        stats.failed_batches
    );
    elapsed
}

async fn memory(n: usize, runtime: &str) {
    let msgs = Arc::new(envelopes(n));
    let broker = Arc::new(MemoryBroker::new(
        Arc::new(MemoryDeadLetterStore::default()),
        Arc::new(SystemClock),
    ));
    let adapter = through_broker(broker, msgs.clone(), 1000).await;
    let ceiling = through_channel(msgs, 1000).await;
    report(
        &format!("memory, {runtime} runtime (ceiling: tokio mpsc)"),
        n,
        adapter,
        ceiling,
    );
}

fn env_n(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether the row keyed `key` runs: with no filter arguments every row does, otherwise
/// those whose key contains one of them (`cargo bench ... --bench sql -- postgres`).
fn selected(filters: &[String], key: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| key.contains(f.as_str()))
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments filter the rows by key.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n = env_n("BENCH_N", 20_000).div_ceil(BATCH) * BATCH;
    let memory_n = env_n("BENCH_MEMORY_N", 1_000_000);
    println!("| adapter | messages | adapter msg/s | ceiling msg/s | ratio |");
    println!("|---|---|---|---|---|");
    if selected(&filters, "memory") {
        // The memory broker serves tests and examples, most of them on `#[tokio::test]`'s
        // current-thread runtime: measured there, and on the two-worker runtime, where the
        // publisher allocates every copy on one thread and the consumer frees it on another.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(memory(memory_n, "current-thread"));
    }
    runtime.block_on(async {
        if selected(&filters, "memory") {
            memory(memory_n, "two-worker").await;
        }
        for shape in [Shape::Sequential, Shape::Concurrent] {
            for full_sync in [true, false] {
                let sync = if full_sync { "full" } else { "normal" };
                if selected(&filters, &format!("sqlite-{sync}-{}", shape.key())) {
                    sqlite(n, full_sync, shape).await;
                }
            }
        }
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                for shape in [Shape::Sequential, Shape::Concurrent] {
                    if selected(&filters, &format!("postgres-{}", shape.key())) {
                        postgres(&url, n, shape).await;
                    }
                }
            }
            _ => println!("SKIP postgres: DATABASE_URL not set"),
        }
    });
}
