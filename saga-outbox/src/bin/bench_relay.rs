//! Relay and producing benchmarks with ceilings measured in the same run.
//!
//! `cargo run --release -p saga-outbox --features bench --bin bench_relay -- [events] [latency events]`
//! (Postgres parts need `DATABASE_URL`; each run uses a fresh schema and drops it;
//! `BENCH_ONLY=sqlite` or `postgres` runs one database; `BENCH_NOTIFY_GAP_MS` sets the Postgres
//! store's least time between two `NOTIFY`s, default the store's 1 ms; `BENCH_REMOTE=only`
//! runs only the Postgres part with the relay in another store.)
//!
//! Per database: the plain `BEGIN/INSERT/COMMIT` rate, the producing rate (business row +
//! outbox row through a unit of work) and its ceiling for the same work (the same two rows
//! written by hand in raw sqlx, into the store's own outbox table), the one-statement
//! producing path (`execute_and_publish`) against plain commits in alternating rounds (the
//! issue's target; on Postgres a third producer alternates with them: the same one statement
//! written by hand, its ceiling; there the three take turns in 24 short rounds and the line
//! gives the median of the rounds' ratios to plain beside the ratio of the whole run's rates),
//! the plain claim loop, the relay draining a filled
//! outbox, and the commit-to-publish latency (p50/p99/max) at a steady 2,000 events/s from
//! 8 producers paced by tokio intervals. On Postgres a last part puts the relay in another
//! store (as in another process, woken only by `NOTIFY`) draining while plain commits
//! alternate with producers that hold their `NOTIFY`s back until it reports idle (the
//! default) and producers that send one per commit, and measures both ones' latency to it.
//! Each line ends with the load average, since other
//! work on the machine moves every number.
//!
//! The business row of every producing measurement is the plain commit's row (a table of the
//! same shape, the same body), so a producing rate against the plain one is what the outbox
//! row costs on top of the caller's own write.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use saga_core::{Envelope, Publisher};
use saga_outbox::postgres::{LeaseConfig, Leases, PgOptions, PgRelaySource, PgStore};
use saga_outbox::sqlite::{Durability, SqliteOptions, SqliteRelaySource, SqliteStore};
use saga_outbox::{Relay, RelayConfig, RelaySource};
use sqlx::AssertSqlSafe;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const PRODUCERS: usize = 8;
/// Alternating rounds of the plain commit and the one-statement unit of work.
const ROUNDS: usize = 8;
/// Rounds of the Postgres producing comparison (plain, unit of work, by hand; short rounds,
/// since their median is what is reported).
const PG_ROUNDS: usize = 24;
/// The outbox row of the by-hand ceiling, into the store's own outbox table.
const BY_HAND_OUTBOX: &str = "INSERT INTO outbox (event_id, aggregate_id, part, envelope, created_at) \
     VALUES ($1, $2, $3, $4, $5)";
/// Events per second, all producers together, in the latency measurement.
const LATENCY_RATE: usize = 2_000;

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

/// Produces one event through a unit of work (business row + outbox row) and returns its id
/// once committed.
type Produce = Arc<
    dyn Fn(usize) -> Pin<Box<dyn Future<Output = saga_core::Result<uuid::Uuid>> + Send>>
        + Send
        + Sync,
>;

/// Records when each event reached the publisher.
#[derive(Default)]
struct Stamps {
    at: Mutex<HashMap<uuid::Uuid, Instant>>,
    n: AtomicUsize,
    changed: Notify,
}

#[async_trait]
impl Publisher for Stamps {
    async fn publish(&self, batch: &[Envelope]) -> saga_core::Result<()> {
        let now = Instant::now();
        {
            let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
            for e in batch {
                at.insert(e.event_id, now);
            }
        }
        self.n.fetch_add(batch.len(), Ordering::Relaxed);
        self.changed.notify_waiters();
        Ok(())
    }
}

/// Commit-to-publish latency at a steady `LATENCY_RATE` events/s from `PRODUCERS` tasks,
/// each paced by a tokio interval (staggered): publish instant in the relay's publisher
/// minus the instant the producer's `commit` returned. Returns (p50, p99, max).
async fn latency<S: RelaySource>(
    source: S,
    produce: Produce,
    total: usize,
) -> Result<(Duration, Duration, Duration), Box<dyn std::error::Error>> {
    let stamps = Arc::new(Stamps::default());
    let config = RelayConfig {
        delete_published: true,
        retention: None,
        ..RelayConfig::default()
    };
    let stop = CancellationToken::new();
    let relay = Relay::new(source, stamps.clone(), config).spawn(stop.clone());
    let per = total / PRODUCERS;
    let period = Duration::from_secs_f64(PRODUCERS as f64 / LATENCY_RATE as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let produce = Arc::clone(&produce);
        let first = start + period.mul_f64(p as f64 / PRODUCERS as f64);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval_at(first, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut committed = Vec::with_capacity(per);
            for i in 0..per {
                tick.tick().await;
                let id = produce(p * per + i).await?;
                committed.push((id, Instant::now()));
            }
            Ok::<_, saga_core::Error>(committed)
        });
    }
    let mut committed = Vec::with_capacity(per * PRODUCERS);
    while let Some(r) = tasks.join_next().await {
        committed.extend(r??);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while stamps.n.load(Ordering::Relaxed) < committed.len() && Instant::now() < deadline {
        let notified = stamps.changed.notified();
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
    stop.cancel();
    let _ = relay.await;
    let at = stamps.at.lock().unwrap_or_else(|e| e.into_inner());
    let mut lat: Vec<Duration> = Vec::with_capacity(committed.len());
    for (id, done) in &committed {
        let published = at.get(id).ok_or("an event was never published")?;
        lat.push(published.saturating_duration_since(*done));
    }
    lat.sort_unstable();
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    Ok((pick(0.50), pick(0.99), lat[lat.len() - 1]))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

async fn sqlite(
    n: usize,
    lat_n: usize,
    durability: Durability,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(
        SqliteOptions::new(dir.path().join("bench.db")).with_durability(durability),
    )
    .await?;
    let w = store.write_pool();
    sqlx::query("CREATE TABLE plain (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(w)
        .await?;
    sqlx::query("CREATE TABLE business (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
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
        sqlx::query("INSERT INTO business (body) VALUES ($1)")
            .bind(&body)
            .execute(uow.tx())
            .await?;
        uow.publish(&[event(i)]).await?;
        uow.commit().await?;
    }
    let produce = rate(n, start.elapsed());

    let relay = rate(n, drain(SqliteRelaySource::new(store.clone()), n).await);

    // The producing ceiling for the same work: the same two rows (business row, and an outbox
    // row into the store's own outbox table with its indexes) written by hand in raw sqlx.
    let start = Instant::now();
    for i in 0..n {
        let ev = event(i);
        let json = serde_json::to_string(&ev)?;
        let mut tx = w.begin().await?;
        sqlx::query("INSERT INTO business (body) VALUES ($1)")
            .bind(&body)
            .execute(&mut *tx)
            .await?;
        sqlx::query(BY_HAND_OUTBOX)
            .bind(ev.event_id.to_string())
            .bind(&ev.aggregate_id)
            .bind(0_i32)
            .bind(&json)
            .bind(0_i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let by_hand = rate(n, start.elapsed());
    sqlx::query("DELETE FROM outbox").execute(w).await?;

    // The target's comparison, alternating so that both see the same machine: plain
    // BEGIN/INSERT/COMMIT against the unit of work's one-statement path (the business write
    // and the outbox row in one call, `execute_and_publish`, inside BEGIN/COMMIT).
    let (mut plain_t2, mut one_t) = (Duration::ZERO, Duration::ZERO);
    let round = (n / ROUNDS).max(1);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..round {
            let mut tx = w.begin().await?;
            sqlx::query("INSERT INTO plain (body) VALUES ($1)")
                .bind(&body)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        plain_t2 += start.elapsed();
        let start = Instant::now();
        for i in 0..round {
            let mut uow = store.begin().await?;
            let ev = [event(i)];
            uow.execute_and_publish(
                sqlx::query("INSERT INTO business (body) VALUES ($1)").bind(&body),
                &ev,
            )
            .await?;
            uow.commit().await?;
        }
        one_t += start.elapsed();
    }
    let plain_alt = rate(round * ROUNDS, plain_t2);
    let one_stmt = rate(round * ROUNDS, one_t);
    sqlx::query("DELETE FROM outbox").execute(w).await?;

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

    let s = store.clone();
    let one: Produce = Arc::new(move |i| {
        let s = s.clone();
        let body = body.clone();
        Box::pin(async move {
            let ev = event(i);
            let id = ev.event_id;
            let mut uow = s.begin().await?;
            sqlx::query("INSERT INTO business (body) VALUES ($1)")
                .bind(&body)
                .execute(uow.tx())
                .await
                .map_err(saga_core::Error::permanent)?;
            uow.publish(&[ev]).await?;
            uow.commit().await?;
            Ok(id)
        })
    });
    let (p50, p99, max) = latency(SqliteRelaySource::new(store.clone()), one, lat_n).await?;
    println!(
        "sqlite {durability:?}: plain commit {plain:.0}/s | alternating {ROUNDS} rounds: plain {plain_alt:.0}/s, produce one statement {one_stmt:.0}/s ({:.0}%) | produce two statements {produce:.0}/s ({:.0}% of the first plain; by hand {by_hand:.0}/s, {:.0}%) | claim loop {claim:.0}/s | relay {relay:.0}/s ({:.0}% of claim loop) | latency at {LATENCY_RATE}/s p50 {:.2} ms p99 {:.2} ms max {:.2} ms | load {}",
        100.0 * one_stmt / plain_alt,
        100.0 * produce / plain,
        100.0 * produce / by_hand,
        100.0 * relay / claim,
        ms(p50),
        ms(p99),
        ms(max),
        load()
    );
    store.close().await;
    Ok(())
}

async fn postgres(url: &str, n: usize, lat_n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let store = PgStore::connect({
        let options = PgOptions::new(url)
            .with_schema(&schema)
            .with_max_connections(PRODUCERS as u32 + 4);
        match std::env::var("BENCH_NOTIFY_GAP_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(ms) => options.with_notify_gap(Duration::from_millis(ms)),
            None => options,
        }
    })
    .await?;
    let w = store.write_pool().clone();
    let plain_t = format!("\"{schema}\".plain");
    let biz_t = format!("\"{schema}\".business");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {plain_t} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL); \
         CREATE TABLE {biz_t} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL)"
    )))
    .execute(&w)
    .await?;
    let body = serde_json::to_string(&event(0))?;
    let per = n / PRODUCERS;

    let plain = rate(
        per * PRODUCERS,
        plain_round(&w, &plain_t, &body, per).await?,
    );

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let (store, sql) = (
            store.clone(),
            format!("INSERT INTO {biz_t} (body) VALUES ($1)"),
        );
        let body = body.clone();
        tasks.spawn(async move {
            for i in 0..per {
                let mut uow = store.begin().await?;
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(body.as_str())
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

    // The producing ceiling for the same work, as for SQLite: the same two rows by hand.
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let (w, biz, outbox) = (
            w.clone(),
            format!("INSERT INTO {biz_t} (body) VALUES ($1)"),
            BY_HAND_OUTBOX.replace("INTO outbox", &format!("INTO \"{schema}\".outbox")),
        );
        let body = body.clone();
        tasks.spawn(async move {
            for i in 0..per {
                let ev = event(p * per + i);
                let json =
                    serde_json::to_string(&ev).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                let mut tx = w.begin().await?;
                sqlx::query(AssertSqlSafe(biz.clone()))
                    .bind(body.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(AssertSqlSafe(outbox.clone()))
                    .bind(ev.event_id.to_string())
                    .bind(&ev.aggregate_id)
                    .bind(0_i32)
                    .bind(&json)
                    .bind(0_i64)
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
    let by_hand = rate(per * PRODUCERS, start.elapsed());
    // A reset between phases, not part of any workload: TRUNCATE leaves no dead rows for the
    // next phase to step over (a relay's own deletes are its business, and it vacuums them).
    sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE \"{schema}\".outbox")))
        .execute(&w)
        .await?;

    // The target's comparison, alternating so that both see the same machine: plain
    // BEGIN/INSERT/COMMIT against the unit of work's one-statement path (business row and
    // outbox row in one statement, inside BEGIN/COMMIT), ROUNDS rounds each. Twice: with no
    // relay in this process (every producing commit asks for a NOTIFY to wake relays
    // elsewhere), then with this process's relay holding every partition's lease, as in a
    // service that runs its relay beside its producers (commits wake it directly). The relay
    // itself does not run during the rounds: only its leases are held.
    let outbox_t = format!("\"{schema}\".outbox");
    let alone = pg_alternating(&w, &store, &plain_t, &biz_t, &body, per, &outbox_t).await?;
    let leases = Leases::new(&store, LeaseConfig::new("bench-producers"));
    while leases.owned().len() < usize::from(store.partitions()) {
        leases.maintain().await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let local = pg_alternating(&w, &store, &plain_t, &biz_t, &body, per, &outbox_t).await?;
    leases.release_all().await?;
    drop(leases);
    // A reset between phases, not part of any workload: TRUNCATE leaves no dead rows for the
    // next phase to step over (a relay's own deletes are its business, and it vacuums them).
    sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE \"{schema}\".outbox")))
        .execute(&w)
        .await?;

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

    let (s, sql) = (
        store.clone(),
        format!("INSERT INTO {biz_t} (body) VALUES ($1)"),
    );
    let one: Produce = Arc::new(move |i| {
        let (s, sql) = (s.clone(), sql.clone());
        let body = body.clone();
        Box::pin(async move {
            let ev = event(i);
            let id = ev.event_id;
            let mut uow = s.begin().await?;
            sqlx::query(AssertSqlSafe(sql))
                .bind(body.as_str())
                .execute(uow.tx())
                .await
                .map_err(saga_core::Error::permanent)?;
            uow.publish(&[ev]).await?;
            uow.commit().await?;
            Ok(id)
        })
    });
    let source = PgRelaySource::new(store.clone(), LeaseConfig::new("bench-latency"));
    let (p50, p99, max) = latency(source, one, lat_n).await?;
    println!(
        "postgres: plain commit {plain:.0}/s | alternating {PG_ROUNDS} rounds: plain {:.0}/s, produce one statement {:.0}/s ({:.0}%; median of the rounds {:.0}%, {:.0}-{:.0}%), the same statement by hand {:.0}/s ({:.0}%; median {:.0}%); with this process's relay holding the partitions: plain {:.0}/s, produce one statement {:.0}/s ({:.0}%; median of the rounds {:.0}%, {:.0}-{:.0}%), by hand median {:.0}% | produce two statements {produce:.0}/s ({:.0}% of the first plain; by hand {by_hand:.0}/s, {:.0}%) | claim loop {claim:.0}/s | relay {relay:.0}/s ({:.0}% of claim loop) | latency at {LATENCY_RATE}/s p50 {:.2} ms p99 {:.2} ms max {:.2} ms | load {}",
        alone.plain,
        alone.ours,
        100.0 * alone.ours / alone.plain,
        100.0 * alone.ours_rounds.0,
        100.0 * alone.ours_rounds.1,
        100.0 * alone.ours_rounds.2,
        alone.hand,
        100.0 * alone.hand / alone.plain,
        100.0 * alone.hand_median,
        local.plain,
        local.ours,
        100.0 * local.ours / local.plain,
        100.0 * local.ours_rounds.0,
        100.0 * local.ours_rounds.1,
        100.0 * local.ours_rounds.2,
        100.0 * local.hand_median,
        100.0 * produce / plain,
        100.0 * produce / by_hand,
        100.0 * relay / claim,
        ms(p50),
        ms(p99),
        ms(max),
        load()
    );
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&w)
        .await?;
    store.close().await;
    Ok(())
}

/// One round of plain `BEGIN/INSERT/COMMIT`: `round` commits from each of `PRODUCERS` tasks.
async fn plain_round(
    w: &sqlx::PgPool,
    plain_t: &str,
    body: &str,
    round: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PRODUCERS {
        let (w, body, sql) = (
            w.clone(),
            body.to_owned(),
            format!("INSERT INTO {plain_t} (body) VALUES ($1)"),
        );
        tasks.spawn(async move {
            for _ in 0..round {
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
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(start.elapsed())
}

/// One round of the one-statement unit of work: `round` commits from each of `PRODUCERS`
/// tasks, event numbers from `base`.
async fn uow_round(
    store: &PgStore,
    biz_t: &str,
    body: &str,
    round: usize,
    base: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let (store, sql, body) = (
            store.clone(),
            format!("INSERT INTO {biz_t} (body) VALUES ($1)"),
            body.to_owned(),
        );
        tasks.spawn(async move {
            for i in 0..round {
                let ev = [event(base + p * round + i)];
                let mut uow = store.begin().await?;
                uow.execute_and_publish(
                    sqlx::query(AssertSqlSafe(sql.clone())).bind(body.as_str()),
                    &ev,
                )
                .await?;
                uow.commit().await?;
            }
            Ok::<_, saga_core::Error>(())
        });
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(start.elapsed())
}

/// Producers whose relay runs elsewhere (another store on the same schema, as another process
/// would): plain commits against the one-statement unit of work of a store that holds its
/// `NOTIFY`s back while that relay drains (the default) and of one that sends a `NOTIFY` per
/// commit, spaced by the gap (`with_idle_wait(ZERO)`, the behaviour before), in `ROUNDS`
/// alternating rounds while the relay drains; then the commit-to-publish latency of both at
/// `LATENCY_RATE`/s, the relay woken only by their `NOTIFY`s.
async fn postgres_remote(
    url: &str,
    n: usize,
    lat_n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let connect = |idle: Option<Duration>| {
        let options = PgOptions::new(url)
            .with_schema(&schema)
            .with_max_connections(PRODUCERS as u32 + 4);
        let options = match idle {
            Some(wait) => options.with_idle_wait(wait),
            None => options,
        };
        PgStore::connect(options)
    };
    let holding = connect(None).await?;
    let each = connect(Some(Duration::ZERO)).await?;
    let relay_store = connect(None).await?;
    let w = holding.write_pool().clone();
    let plain_t = format!("\"{schema}\".plain");
    let biz_t = format!("\"{schema}\".business");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {plain_t} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL); \
         CREATE TABLE {biz_t} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL)"
    )))
    .execute(&w)
    .await?;
    let body = serde_json::to_string(&event(0))?;

    // Counts the NOTIFYs on the outbox channel (what the relay's listener hears too).
    let heard = Arc::new(AtomicUsize::new(0));
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(holding.channel()).await?;
    let counting = tokio::spawn({
        let heard = heard.clone();
        async move {
            while listener.recv().await.is_ok() {
                heard.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let source = PgRelaySource::new(relay_store.clone(), LeaseConfig::new("bench-elsewhere"));
    let leases = source.leases().clone();
    let counter = Arc::new(Counter::default());
    let stop = CancellationToken::new();
    let relay = Relay::new(
        source,
        counter.clone(),
        RelayConfig {
            delete_published: true,
            retention: None,
            ..RelayConfig::default()
        },
    )
    .spawn(stop.clone());
    while leases.owned().len() < usize::from(relay_store.partitions()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the relay's listener connect (the producers' connect with their first NOTIFY).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let round = (n / PRODUCERS / ROUNDS).max(1);
    let (mut plain_t2, mut hold_t, mut each_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut hold_heard, mut each_heard) = (0, 0);
    for r in 0..ROUNDS {
        plain_t2 += plain_round(&w, &plain_t, &body, round).await?;
        let before = heard.load(Ordering::Relaxed);
        hold_t += uow_round(&holding, &biz_t, &body, round, 2 * r * PRODUCERS * round).await?;
        let between = heard.load(Ordering::Relaxed);
        hold_heard += between - before;
        each_t += uow_round(&each, &biz_t, &body, round, (2 * r + 1) * PRODUCERS * round).await?;
        each_heard += heard.load(Ordering::Relaxed) - between;
    }
    let total = round * PRODUCERS * ROUNDS;
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter.n.load(Ordering::Relaxed) < 2 * total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let relayed = counter.n.load(Ordering::Relaxed);
    stop.cancel();
    let _ = relay.await;
    let (plain, hold, each_rate) = (
        rate(total, plain_t2),
        rate(total, hold_t),
        rate(total, each_t),
    );

    let produce_on = |store: PgStore| -> Produce {
        let sql = format!("INSERT INTO {biz_t} (body) VALUES ($1)");
        let body = body.clone();
        Arc::new(move |i| {
            let (store, sql, body) = (store.clone(), sql.clone(), body.clone());
            Box::pin(async move {
                let ev = [event(i)];
                let id = ev[0].event_id;
                let mut uow = store.begin().await?;
                uow.execute_and_publish(sqlx::query(AssertSqlSafe(sql)).bind(body.as_str()), &ev)
                    .await?;
                uow.commit().await?;
                Ok(id)
            })
        })
    };
    let source = || PgRelaySource::new(relay_store.clone(), LeaseConfig::new("bench-elsewhere"));
    let (h50, h99, hmax) = latency(source(), produce_on(holding.clone()), lat_n).await?;
    let (e50, e99, emax) = latency(source(), produce_on(each.clone()), lat_n).await?;
    counting.abort();
    println!(
        "postgres, relay in another store draining during the rounds: alternating {ROUNDS} rounds: plain {plain:.0}/s, produce one statement holding NOTIFYs while the relay drains {hold:.0}/s ({:.0}%, {:.1} NOTIFYs per 1000 commits), with a NOTIFY per commit (gap {} ms) {each_rate:.0}/s ({:.0}%, {:.1} per 1000) | relayed {relayed} of {} | latency at {LATENCY_RATE}/s, relay woken by NOTIFY: holding p50 {:.2} ms p99 {:.2} ms max {:.2} ms, a NOTIFY per commit p50 {:.2} ms p99 {:.2} ms max {:.2} ms | load {}",
        100.0 * hold / plain,
        1000.0 * hold_heard as f64 / total as f64,
        1,
        100.0 * each_rate / plain,
        1000.0 * each_heard as f64 / total as f64,
        2 * total,
        ms(h50),
        ms(h99),
        ms(hmax),
        ms(e50),
        ms(e99),
        ms(emax),
        load()
    );
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&w)
        .await?;
    holding.close().await;
    each.close().await;
    relay_store.close().await;
    Ok(())
}

/// The producing comparison on Postgres: rates of the whole run and the median of the rounds'
/// ratios to plain.
struct Alternation {
    plain: f64,
    ours: f64,
    hand: f64,
    /// Median, lowest and highest of the rounds' unit of work / plain.
    ours_rounds: (f64, f64, f64),
    /// Median of the rounds' hand-written statement / plain.
    hand_median: f64,
}

/// Median, lowest and highest of `ratios`.
fn spread(mut ratios: Vec<f64>) -> (f64, f64, f64) {
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    let median = if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    };
    (median, ratios[0], ratios[n - 1])
}

/// Plain BEGIN/INSERT/COMMIT, the one-statement unit of work and the same statement written
/// by hand in `PG_ROUNDS` short rounds from `PRODUCERS` tasks, the order of the three turning
/// each round (a checkpoint or an autovacuum then falls on each as often). Besides the rates
/// of the whole run, each round's ratios to that round's plain rate: their median is the
/// comparison a burst of noise moves least, in either direction.
async fn pg_alternating(
    w: &sqlx::PgPool,
    store: &PgStore,
    plain_t: &str,
    biz_t: &str,
    body: &str,
    per: usize,
    outbox_t: &str,
) -> Result<Alternation, Box<dyn std::error::Error>> {
    let (w, body) = (w.clone(), body.to_owned());
    let mut totals = [Duration::ZERO; 3];
    let (mut ours_ratios, mut hand_ratios) = (Vec::new(), Vec::new());
    // The same one statement written by hand: business row and outbox row in one
    // data-modifying CTE, the envelope serialised here.
    let hand_sql = format!(
        "WITH b AS (INSERT INTO {biz_t} (body) VALUES ($1)) INSERT INTO {outbox_t} \
         (event_id, aggregate_id, part, envelope, created_at) VALUES ($2, $3, $4, $5, $6)"
    );
    let round = (per / PG_ROUNDS).max(1);
    for r in 0..PG_ROUNDS {
        let mut took = [Duration::ZERO; 3];
        for k in 0..3 {
            let which = (k + r) % 3;
            took[which] = match which {
                0 => plain_round(&w, plain_t, &body, round).await?,
                1 => uow_round(store, biz_t, &body, round, 0).await?,
                _ => hand_round(&w, &hand_sql, &body, round).await?,
            };
        }
        for (total, t) in totals.iter_mut().zip(took) {
            *total += t;
        }
        // Rates over the same number of commits: the ratio of rates is the inverse ratio
        // of times.
        ours_ratios.push(took[0].as_secs_f64() / took[1].as_secs_f64());
        hand_ratios.push(took[0].as_secs_f64() / took[2].as_secs_f64());
    }
    let commits = round * PRODUCERS * PG_ROUNDS;
    Ok(Alternation {
        plain: rate(commits, totals[0]),
        ours: rate(commits, totals[1]),
        hand: rate(commits, totals[2]),
        ours_rounds: spread(ours_ratios),
        hand_median: spread(hand_ratios).0,
    })
}

/// One round of the one statement written by hand in raw sqlx: `round` commits from each of
/// `PRODUCERS` tasks.
async fn hand_round(
    w: &sqlx::PgPool,
    hand_sql: &str,
    body: &str,
    round: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let (w, sql, body) = (w.clone(), hand_sql.to_owned(), body.to_owned());
        tasks.spawn(async move {
            for i in 0..round {
                let ev = event(p * round + i);
                let json =
                    serde_json::to_string(&ev).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                let mut tx = w.begin().await?;
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(body.as_str())
                    .bind(ev.event_id.to_string())
                    .bind(&ev.aggregate_id)
                    .bind(0_i32)
                    .bind(&json)
                    .bind(0_i64)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(start.elapsed())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let lat_n: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000)
        .max(PRODUCERS);
    println!(
        "events per measurement: {n}; latency: {lat_n} events at {LATENCY_RATE}/s; producers (Postgres; latency: both): {PRODUCERS}; load average at start: {}",
        load()
    );
    // BENCH_ONLY=sqlite or postgres runs one database's measurements.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "sqlite" {
        sqlite(n, lat_n, Durability::Normal).await?;
        sqlite(n, lat_n, Durability::Full).await?;
    }
    if !(only.is_empty() || only == "postgres") {
        return Ok(());
    }
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            if std::env::var("BENCH_REMOTE").as_deref() != Ok("only") {
                postgres(&url, n, lat_n).await?;
            }
            postgres_remote(&url, n, lat_n).await?;
        }
        Err(_) => println!("SKIP postgres: DATABASE_URL not set"),
    }
    Ok(())
}
