//! Relay and producing benchmarks with ceilings measured in the same run.
//!
//! `cargo run --release -p saga-outbox --features bench --bin bench_relay -- [events]`
//! (Postgres parts need `DATABASE_URL`; each run uses a fresh schema and drops it.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use saga_core::{Envelope, Publisher};
use saga_outbox::postgres::{LeaseConfig, PgOptions, PgRelaySource, PgStore};
use saga_outbox::sqlite::{Durability, SqliteOptions, SqliteRelaySource, SqliteStore};
use saga_outbox::{Relay, RelayConfig, RelaySource};
use sqlx::AssertSqlSafe;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const PRODUCERS: usize = 8;

/// Counts published events (the memory broker's cost is not what is measured here).
#[derive(Default)]
struct Counter {
    n: AtomicUsize,
    changed: Notify,
}

#[async_trait]
impl Publisher for Counter {
    async fn publish(&self, batch: &[Envelope]) -> saga_core::Result<()> {
        self.n.fetch_add(batch.len(), Ordering::Relaxed);
        self.changed.notify_waiters();
        Ok(())
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn event(i: usize) -> Envelope {
    Envelope::new(
        "bench.happened",
        format!("agg-{}", i % 1000),
        serde_json::json!({ "i": i }),
    )
}

async fn drain<S: RelaySource>(source: S, n: usize) -> Duration {
    let counter = Arc::new(Counter::default());
    let config = RelayConfig {
        delete_published: true,
        retention: None,
        ..RelayConfig::default()
    };
    let stop = CancellationToken::new();
    let start = Instant::now();
    let handle = Relay::new(source, counter.clone(), config).spawn(stop.clone());
    loop {
        let notified = counter.changed.notified();
        if counter.n.load(Ordering::Relaxed) >= n {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
    let took = start.elapsed();
    stop.cancel();
    let _ = handle.await;
    took
}

async fn sqlite(n: usize, durability: Durability) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(
        SqliteOptions::new(dir.path().join("bench.db")).with_durability(durability),
    )
    .await?;
    let w = store.write_pool();
    sqlx::query("CREATE TABLE plain (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(w)
        .await?;
    sqlx::query("CREATE TABLE business (id TEXT PRIMARY KEY)")
        .execute(w)
        .await?;
    let body = serde_json::to_string(&event(0))?;

    let start = Instant::now();
    for _ in 0..n {
        let mut tx = w.begin().await?;
        sqlx::query("INSERT INTO plain (body) VALUES ($1)")
            .bind(&body)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let plain = rate(n, start.elapsed());

    let start = Instant::now();
    for i in 0..n {
        let mut uow = store.begin().await?;
        sqlx::query("INSERT INTO business (id) VALUES ($1)")
            .bind(i.to_string())
            .execute(uow.tx())
            .await?;
        uow.publish(&[event(i)]).await?;
        uow.commit().await?;
    }
    let produce = rate(n, start.elapsed());

    let relay = rate(n, drain(SqliteRelaySource::new(store.clone()), n).await);

    let start = Instant::now();
    loop {
        let done = sqlx::query(
            "DELETE FROM plain WHERE id IN (SELECT id FROM plain ORDER BY id LIMIT 500)",
        )
        .execute(w)
        .await?;
        if done.rows_affected() == 0 {
            break;
        }
    }
    let claim = rate(n, start.elapsed());
    println!(
        "sqlite {durability:?}: plain commit {plain:.0}/s | produce {produce:.0}/s ({:.0}%) | claim loop {claim:.0}/s | relay {relay:.0}/s ({:.0}% of claim loop)",
        100.0 * produce / plain,
        100.0 * relay / claim
    );
    store.close().await;
    Ok(())
}

async fn postgres(url: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let store = PgStore::connect(
        PgOptions::new(url)
            .with_schema(&schema)
            .with_max_connections(PRODUCERS as u32 + 4),
    )
    .await?;
    let w = store.write_pool().clone();
    let plain_t = format!("\"{schema}\".plain");
    let biz_t = format!("\"{schema}\".business");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {plain_t} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL); \
         CREATE TABLE {biz_t} (id TEXT PRIMARY KEY)"
    )))
    .execute(&w)
    .await?;
    let body = serde_json::to_string(&event(0))?;
    let per = n / PRODUCERS;

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PRODUCERS {
        let (w, body, sql) = (
            w.clone(),
            body.clone(),
            format!("INSERT INTO {plain_t} (body) VALUES ($1)"),
        );
        tasks.spawn(async move {
            for _ in 0..per {
                let mut tx = w.begin().await?;
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(&body)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let plain = rate(per * PRODUCERS, start.elapsed());

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let (store, sql) = (
            store.clone(),
            format!("INSERT INTO {biz_t} (id) VALUES ($1)"),
        );
        tasks.spawn(async move {
            for i in 0..per {
                let mut uow = store.begin().await?;
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(format!("{p}-{i}"))
                    .execute(uow.tx())
                    .await
                    .map_err(saga_core::Error::permanent)?;
                uow.publish(&[event(p * per + i)]).await?;
                uow.commit().await?;
            }
            Ok::<_, saga_core::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let produce = rate(per * PRODUCERS, start.elapsed());

    let relay = rate(
        per * PRODUCERS,
        drain(
            PgRelaySource::new(store.clone(), LeaseConfig::new("bench")),
            per * PRODUCERS,
        )
        .await,
    );

    let start = Instant::now();
    let claim_sql = format!(
        "DELETE FROM {plain_t} WHERE id IN (SELECT id FROM {plain_t} ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED)"
    );
    loop {
        let done = sqlx::query(AssertSqlSafe(claim_sql.clone()))
            .execute(&w)
            .await?;
        if done.rows_affected() == 0 {
            break;
        }
    }
    let claim = rate(per * PRODUCERS, start.elapsed());
    println!(
        "postgres: plain commit {plain:.0}/s | produce {produce:.0}/s ({:.0}%) | claim loop {claim:.0}/s | relay {relay:.0}/s ({:.0}% of claim loop)",
        100.0 * produce / plain,
        100.0 * relay / claim
    );
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&w)
        .await?;
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    println!("events per measurement: {n}; producers (Postgres): {PRODUCERS}");
    sqlite(n, Durability::Normal).await?;
    sqlite(n, Durability::Full).await?;
    match std::env::var("DATABASE_URL") {
        Ok(url) => postgres(&url, n).await?,
        Err(_) => println!("SKIP postgres: DATABASE_URL not set"),
    }
    Ok(())
}
