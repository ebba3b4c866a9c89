//! A NATS JetStream consumer group: two competing subscribers on one durable consumer,
//! publishing a batch (stored once even if published twice: `Nats-Msg-Id`), retrying with a
//! server-side delay and acking.
//!
//! ```sh
//! NATS_URL=nats://127.0.0.1:4222 cargo run -p examples --features nats --example nats_consumer
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use saga_brokers::nats::{NatsBroker, NatsConfig};
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::{Envelope, HandlerError, Publisher, RetryPolicy, Subscriber, Subscription};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let run = uuid::Uuid::now_v7().simple().to_string();
    let config =
        NatsConfig::new(url).with_stream(format!("EXAMPLE_{run}"), format!("example{run}"));
    let broker = NatsBroker::connect(config, Arc::new(MemoryDeadLetterStore::default())).await?;
    let policy = RetryPolicy::default().with_initial_delay(Duration::from_millis(100));

    let subscription = Subscription::new("shipping", ["order.*"]).with_prefetch(4);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for worker in 0..2 {
        let mut stream = broker.subscribe(&subscription).await?;
        let policy = policy.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = stream.next().await {
                let seq = d.envelope.payload["seq"].as_u64().unwrap_or(0);
                // Every third order fails once: JetStream redelivers it after the backoff.
                let outcome = if seq % 3 == 0 && d.attempt == 1 {
                    Err(HandlerError::transient("carrier API busy"))
                } else {
                    Ok(())
                };
                let line = format!("worker {worker}: order {seq} attempt {}", d.attempt);
                match d.settle(outcome, &policy).await {
                    Ok(settled) => println!("{line} -> {settled:?}"),
                    Err(e) => println!("{line} -> settle failed: {e}"),
                }
                if seq % 3 != 0 || line.contains("attempt 2") {
                    let _ = done.send(seq);
                }
            }
        });
    }

    let batch: Vec<Envelope> = (0..9)
        .map(|seq| {
            Envelope::new(
                "order.placed",
                format!("order-{seq}"),
                serde_json::json!({"seq": seq}),
            )
        })
        .collect();
    broker.publish(&batch).await?;
    // Published again (say, by a relay that crashed before marking): JetStream drops repeats.
    broker.publish(&batch).await?;

    for _ in 0..batch.len() {
        tokio::time::timeout(Duration::from_secs(30), done_rx.recv()).await?;
    }
    println!("all {} orders handled once each", batch.len());
    broker.delete_stream().await?;
    Ok(())
}
