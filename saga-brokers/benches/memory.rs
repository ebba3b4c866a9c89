//! The in-memory broker, publish + consume + ack, against a tokio channel carrying the same
//! envelopes, with mimalloc as the allocator, on a two-worker runtime (the publisher and the
//! consumer on their own threads, as in a service).
//!
//! The `sql` bench measures the same rows with the system allocator. There, glibc's malloc is
//! what both the broker and its channel ceiling wait on (every envelope is allocated by the
//! publishing task and freed by the consuming one); services that move many small messages
//! between threads commonly link another allocator, and this bench shows the broker's own
//! cost with one. Run with `cargo bench -p saga-brokers --bench memory` (`BENCH_MEMORY_N`
//! messages, default 1,000,000). Results are recorded in docs/bench/brokers-sql.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use saga_brokers::memory::MemoryBroker;
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::{Envelope, Publisher, Subscriber, Subscription, SystemClock};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PREFETCH: u16 = 256;
const BATCH: usize = 1000;

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
async fn through_broker(msgs: Arc<Vec<Envelope>>) -> Duration {
    let broker = Arc::new(MemoryBroker::new(
        Arc::new(MemoryDeadLetterStore::default()),
        Arc::new(SystemClock),
    ));
    let mut stream = broker
        .subscribe(&Subscription::new("bench", ["order.*"]).with_prefetch(PREFETCH))
        .await
        .expect("subscribe");
    let n = msgs.len();
    let start = Instant::now();
    let publisher = {
        let broker = broker.clone();
        tokio::spawn(async move {
            for chunk in msgs.chunks(BATCH) {
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

/// The ceiling: the same envelopes through a tokio channel (no routing, no ack).
async fn through_channel(msgs: Arc<Vec<Envelope>>) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Envelope>();
    let n = msgs.len();
    let start = Instant::now();
    let publisher = tokio::spawn(async move {
        for chunk in msgs.chunks(BATCH) {
            for e in chunk {
                tx.send(e.clone()).expect("send");
            }
        }
    });
    for _ in 0..n {
        std::hint::black_box(rx.recv().await.expect("open"));
    }
    let elapsed = start.elapsed();
    publisher.await.expect("publisher");
    elapsed
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn row(runtime: &str, n: usize) {
    let msgs = Arc::new(envelopes(n));
    // A tenth first, untimed: the allocator's heap grows to its working size.
    let warm = Arc::new(msgs[..n / 10].to_vec());
    through_broker(warm.clone()).await;
    through_channel(warm).await;
    let broker = through_broker(msgs.clone()).await;
    let channel = through_channel(msgs).await;
    let (b, c) = (rate(n, broker), rate(n, channel));
    println!(
        "| memory, {runtime} runtime, mimalloc (ceiling: tokio mpsc) | {n} | {b:.0} | {c:.0} | {:.0}% |",
        100.0 * b / c
    );
}

fn main() {
    let n = std::env::var("BENCH_MEMORY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("| adapter | messages | adapter msg/s | ceiling msg/s | ratio |");
    println!("|---|---|---|---|---|");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(row("two-worker", n));
}
