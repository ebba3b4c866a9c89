//! outbox-core + outbox-postgres driven through their documented API: 8 producer tasks write a
//! business row and an event in one transaction (`OutboxService::add_event` on `&mut *tx`),
//! an `OutboxManager` relays them to a counting `Transport`.
//!
//! `outbox-compare <database url> [events]`: the database must hold outbox-postgres's
//! migration (the script creates a scratch database and applies it).

use std::sync::Arc;
use std::time::Duration;

use outbox_compare::{Error, Happened, PRODUCERS, Stamps, load, measure};
use outbox_core::prelude::*;
use outbox_postgres::{PostgresOutbox, PostgresWriter};
use sqlx08::postgres::PgPoolOptions;

/// outbox-core's publisher: counts each event as it is published.
struct Counting(Arc<Stamps>);

#[async_trait::async_trait]
impl Transport<Happened> for Counting {
    async fn publish(&self, event: Event<Happened>) -> Result<(), OutboxError> {
        self.0.stamp(event.payload.as_value().i);
        Ok(())
    }
}

type Service = OutboxService<PostgresWriter, NoIdempotency, Happened>;

/// One unit of work: the business row and the event, one transaction.
async fn write(pool: sqlx08::PgPool, service: Arc<Service>, i: usize) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    sqlx08::query("INSERT INTO compare_business (id) VALUES ($1)")
        .bind(format!("b-{i}"))
        .execute(&mut *tx)
        .await?;
    service
        .add_event("bench.happened", Happened::new(i), None, &mut *tx)
        .await
        .map_err(|e| format!("add_event: {e:?}"))?;
    tx.commit().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: outbox-compare <database url> [events]")?;
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
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
    let unit = {
        let (pool, service) = (pool.clone(), service.clone());
        move |i| write(pool.clone(), service.clone(), i)
    };
    let stamps = Arc::new(Stamps::default());
    let start = || async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let manager = OutboxManagerBuilder::new()
            .storage(Arc::new(PostgresOutbox::new(pool.clone(), config.clone())))
            .publisher(Arc::new(Counting(stamps.clone())))
            .config(config.clone())
            .shutdown_rx(stop_rx)
            .build()
            .map_err(|e| format!("build: {e:?}"))?;
        Ok((stop_tx, tokio::spawn(async move { manager.run().await })))
    };
    let stop = |(stop_tx, relay): (tokio::sync::watch::Sender<bool>, _)| async move {
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
        Ok(())
    };
    measure(&stamps, n, unit, start, stop).await
}
