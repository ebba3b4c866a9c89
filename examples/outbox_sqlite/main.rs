//! The transactional outbox on SQLite: a handler writes its business row, marks the inbox and
//! appends an event in one transaction; a redelivery is recognised as a duplicate; a failing
//! handler leaves nothing; the relay publishes what was committed.
//!
//! Run: `cargo run -p examples --example outbox_sqlite`

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use saga_core::{Envelope, OutboxStore, Publisher};
use saga_outbox::sqlite::{SqliteOptions, SqliteRelaySource, SqliteStore};
use saga_outbox::{Handled, Relay, RelayConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Stands in for a broker: prints each event and tells `main` it arrived.
struct Printer(mpsc::UnboundedSender<Envelope>);

#[async_trait]
impl Publisher for Printer {
    async fn publish(&self, batch: &[Envelope]) -> saga_core::Result<()> {
        for e in batch {
            println!("  relay published {} for {}", e.event_type, e.aggregate_id);
            let _ = self.0.send(e.clone());
        }
        Ok(())
    }
}

/// Handles `order.placed`: writes an invoice and emits `invoice.created`, once per message.
async fn handle(store: &SqliteStore, message: &Envelope, fail: bool) -> Result<Handled<()>> {
    let mut uow = store.begin().await?;
    if !uow.mark_inbox("billing", message.event_id).await? {
        return Ok(Handled::Duplicate);
    }
    sqlx::query("INSERT INTO billing_invoices (order_id) VALUES ($1)")
        .bind(&message.aggregate_id)
        .execute(uow.tx())
        .await?;
    uow.publish(&[Envelope::new(
        "invoice.created",
        message.aggregate_id.clone(),
        serde_json::json!({ "order": message.aggregate_id }),
    )
    .caused_by(message)])
        .await?;
    if fail {
        anyhow::bail!("the handler failed after its writes");
    }
    uow.commit().await?;
    Ok(Handled::Processed(()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("outbox-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store =
        SqliteStore::open(SqliteOptions::new(dir.join("app.db")).with_prefix("billing_")).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS billing_invoices (order_id TEXT NOT NULL)")
        .execute(store.write_pool())
        .await?;

    let (tx, mut published) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let relay = Relay::new(
        SqliteRelaySource::new(store.clone()),
        Arc::new(Printer(tx)),
        RelayConfig::default(),
    );
    let metrics = relay.metrics();
    let running = relay.spawn(stop.clone());

    let placed = Envelope::new(
        "order.placed",
        "order-42",
        serde_json::json!({ "total": 5000 }),
    );
    println!(
        "first delivery:  {:?}",
        handle(&store, &placed, false).await?
    );
    println!(
        "second delivery: {:?}",
        handle(&store, &placed, false).await?
    );
    let other = Envelope::new(
        "order.placed",
        "order-43",
        serde_json::json!({ "total": 10 }),
    );
    println!(
        "failing handler: {}",
        handle(&store, &other, true)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    );

    if let Some(event) = published.recv().await {
        println!(
            "received {} caused by {:?}",
            event.event_type, event.causation_id
        );
    }
    stop.cancel();
    running.await??;

    let (invoices,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM billing_invoices")
        .fetch_one(store.read_pool())
        .await?;
    println!(
        "invoices: {invoices}, outbox pending: {}, relay published: {}",
        store.pending_count().await?,
        metrics.snapshot().published
    );
    store.close().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
