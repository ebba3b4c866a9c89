//! RabbitMQ retries with backoff, then a dead letter.
//!
//! A handler fails transiently twice on `order.placed` (retried through the delay queues with
//! exponential backoff), then permanently on `order.cancelled` (dead-lettered at once), and a
//! message that keeps failing transiently is dead-lettered after the policy's last attempt.
//!
//! ```sh
//! AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
//!   cargo run -p examples --features amqp --example rabbitmq_retry_dlq
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use saga_brokers::amqp::{AmqpBroker, AmqpConfig};
use saga_core::dead_letter::DeadLetterFilter;
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::{
    Envelope, HandlerError, Publisher, RetryPolicy, Settled, Subscriber, Subscription,
};

fn handle(d: &saga_core::Delivery) -> Result<(), HandlerError> {
    match (d.envelope.event_type.as_str(), d.attempt) {
        ("order.placed", 1 | 2) => Err(HandlerError::transient("inventory service timed out")),
        ("order.placed", _) => Ok(()),
        ("order.cancelled", _) => Err(HandlerError::permanent("order total is negative")),
        _ => Err(HandlerError::transient("payment gateway unavailable")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let dead_letters = Arc::new(MemoryDeadLetterStore::default());
    let config = AmqpConfig::new(url)
        .with_exchange(format!("example-{}", uuid::Uuid::now_v7().simple()))
        .expire_unused_after(Duration::from_secs(60));
    let broker = AmqpBroker::connect(config, dead_letters.clone()).await?;
    let policy = RetryPolicy::default()
        .with_max_attempts(4)
        .with_initial_delay(Duration::from_millis(200));

    let mut stream = broker
        .subscribe(&Subscription::new("billing", ["order.*", "payment.#"]))
        .await?;
    broker
        .publish(&[
            Envelope::new(
                "order.placed",
                "order-1",
                serde_json::json!({"total": 5000}),
            ),
            Envelope::new(
                "order.cancelled",
                "order-2",
                serde_json::json!({"total": -1}),
            ),
            Envelope::new("payment.charge.requested", "order-3", serde_json::json!({})),
        ])
        .await?;

    let started = tokio::time::Instant::now();
    let mut finished = 0;
    while finished < 3 {
        let Some(d) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await? else {
            break;
        };
        let d = d?;
        let what = format!("{} attempt {}", d.envelope.event_type, d.attempt);
        let outcome = handle(&d);
        let settled = d.settle(outcome, &policy).await?;
        println!(
            "{:>6} ms  {what:<40} -> {settled:?}",
            started.elapsed().as_millis()
        );
        if !matches!(settled, Settled::Retried(_)) {
            finished += 1;
        }
    }

    println!("\ndead letters:");
    for letter in
        saga_core::DeadLetterStore::list(&*dead_letters, &DeadLetterFilter::default()).await?
    {
        println!(
            "  {} after {} attempt(s): {} (last error: {})",
            letter.envelope.event_type,
            letter.attempts,
            letter.reason,
            letter.last_error.unwrap_or_default()
        );
    }
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}
