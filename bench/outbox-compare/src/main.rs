//! outbox-core + outbox-postgres driven through their documented API: 8 producer tasks write a
//! business row and an event in one transaction (`OutboxService::add_event` on `&mut *tx`),
//! an `OutboxManager` relays them to a counting `Transport`.
//!
//! `outbox-compare <database url> [events]`: the database must hold outbox-postgres's
//! migration (the script creates a scratch database and applies it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outbox_core::prelude::*;
use outbox_postgres::{PostgresOutbox, PostgresWriter};
use serde::{Deserialize, Serialize};
use sqlx08::postgres::PgPoolOptions;
use tokio::sync::Notify;

const PRODUCERS: usize = 8;
const LATENCY_RATE: usize = 2_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Happened {
    i: usize,
    aggregate: String,
}

#[derive(Default)]
struct Stamps {
    at: Mutex<HashMap<usize, Instant>>,
    n: AtomicUsize,
    changed: Notify,
}

#[async_trait::async_trait]
impl Transport<Happened> for Stamps {
    async fn publish(&self, event: Event<Happened>) -> Result<(), OutboxError> {
        let now = Instant::now();
        self.at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(event.payload.as_value().i, now);
        self.n.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
        Ok(())
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Writes events `from..from + per * PRODUCERS` from 8 tasks, paced at `LATENCY_RATE` in
/// total when `paced`; returns the commit instants by event index.
async fn produce(
    pool: &sqlx08::PgPool,
    service: &Arc<OutboxService<PostgresWriter, NoIdempotency, Happened>>,
    from: usize,
    per: usize,
    paced: bool,
) -> Result<HashMap<usize, Instant>, Error> {
    let period = Duration::from_secs_f64(PRODUCERS as f64 / LATENCY_RATE as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let (pool, service) = (pool.clone(), Arc::clone(service));
        let first = start + period.mul_f64(p as f64 / PRODUCERS as f64);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval_at(first, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut done = Vec::with_capacity(per);
            for k in 0..per {
                if paced {
                    tick.tick().await;
                }
                let i = from + p * per + k;
                let mut tx = pool.begin().await?;
                sqlx08::query("INSERT INTO compare_business (id) VALUES ($1)")
                    .bind(format!("b-{i}"))
                    .execute(&mut *tx)
                    .await?;
                let event = Happened {
                    i,
                    aggregate: format!("agg-{}", i % 1000),
                };
                service
                    .add_event("bench.happened", event, None, &mut *tx)
                    .await
                    .map_err(|e| format!("add_event: {e:?}"))?;
                tx.commit().await?;
                done.push((i, Instant::now()));
            }
            Ok::<_, Error>(done)
        });
    }
    let mut committed = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        committed.extend(r??);
    }
    Ok(committed)
}

async fn wait_for(stamps: &Stamps, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while stamps.n.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        let notified = stamps.changed.notified();
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: outbox-compare <database url> [events]")?;
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let per = n / PRODUCERS;
    let pool = PgPoolOptions::new()
        .max_connections(PRODUCERS as u32 + 4)
        .connect(&url)
        .await?;
    sqlx08::query("CREATE TABLE IF NOT EXISTS compare_business (id TEXT PRIMARY KEY)")
        .execute(&pool)
        .await?;
    let config = Arc::new(OutboxConfig::<Happened>::default());
    let service = Arc::new(OutboxService::new(Arc::new(PostgresWriter), config.clone()));
    println!(
        "outbox-core 0.6 + outbox-postgres 0.3: {n} events, {PRODUCERS} producers, default config (batch {}), load {}",
        config.batch_size,
        load()
    );

    // Producing, no relay running.
    let start = Instant::now();
    produce(&pool, &service, 0, per, false).await?;
    let produced = per * PRODUCERS;
    let produce_rate = produced as f64 / start.elapsed().as_secs_f64();

    // Relay: drain the filled outbox.
    let stamps = Arc::new(Stamps::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let manager = OutboxManagerBuilder::new()
        .storage(Arc::new(PostgresOutbox::new(pool.clone(), config.clone())))
        .publisher(stamps.clone())
        .config(config.clone())
        .shutdown_rx(stop_rx)
        .build()
        .map_err(|e| format!("build: {e:?}"))?;
    let start = Instant::now();
    let relay = tokio::spawn(async move { manager.run().await });
    wait_for(&stamps, produced).await;
    let drained = stamps.n.load(Ordering::Relaxed);
    let relay_rate = drained as f64 / start.elapsed().as_secs_f64();
    println!(
        "produce {produce_rate:.0}/s | relay {relay_rate:.0}/s ({drained} of {produced} published) | load {}",
        load()
    );

    // Latency at a steady rate, relay running.
    let lat_per = (10_000 / PRODUCERS).max(1);
    let before = stamps.n.load(Ordering::Relaxed);
    let committed = produce(&pool, &service, produced, lat_per, true).await?;
    wait_for(&stamps, before + committed.len()).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
    let at = stamps.at.lock().unwrap_or_else(|e| e.into_inner());
    let mut lat: Vec<Duration> = committed
        .iter()
        .filter_map(|(i, done)| at.get(i).map(|p| p.saturating_duration_since(*done)))
        .collect();
    lat.sort_unstable();
    if lat.is_empty() {
        println!("latency: nothing published");
    } else {
        let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
        println!(
            "latency at {LATENCY_RATE}/s: p50 {:.2} ms p99 {:.2} ms max {:.2} ms ({} of {} published) | load {}",
            pick(0.5).as_secs_f64() * 1e3,
            pick(0.99).as_secs_f64() * 1e3,
            lat[lat.len() - 1].as_secs_f64() * 1e3,
            lat.len(),
            committed.len(),
            load()
        );
    }
    Ok(())
}
