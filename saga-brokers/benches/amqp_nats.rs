//! Publish + consume throughput of the RabbitMQ and NATS JetStream adapters, each against the
//! raw client doing the same work with the same settings, measured in the same run:
//!
//! * amqp: lapin, a durable topic exchange and a quorum queue, publisher confirms awaited per
//!   batch of 100, one consumer with prefetch 256 decoding each envelope and acking it; the raw
//!   client's messages carry the same properties as the adapter's (persistent JSON,
//!   `message_id`, `correlation_id`, `type`, `timestamp`, the aggregate id header);
//! * nats: async-nats, a file stream and a durable pull consumer, batches of 100 published
//!   pipelined (acks awaited after the batch), one consumer pulling up to 256 at a time,
//!   decoding each envelope and acking it (acks are pipelined: no reply awaited).
//!
//! Run with `AMQP_URL=... NATS_URL=... cargo bench -p saga-brokers --features amqp,nats --bench
//! amqp_nats`; `BENCH_N` sets the message count (default 20000, a multiple of 100), `BENCH_ONLY`
//! (`amqp` or `nats`) runs one side, `BENCH_ROUNDS` (default 3) how many times raw client and
//! adapter run, alternating (raw first), each on fresh queues or streams. The ratio compares
//! the medians of the rounds; each round's own ratio is printed too. Results are recorded in
//! docs/bench/brokers-amqp-nats.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use saga_brokers::amqp::{AmqpBroker, AmqpConfig};
use saga_brokers::nats::{NatsBroker, NatsConfig};
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::{Envelope, Publisher, Subscriber, Subscription};

const BATCH: usize = 100;
const PREFETCH: u16 = 256;

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

fn run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// One publisher task (batches of `BATCH`) and one consumer acking every message.
async fn through_adapter<B>(broker: Arc<B>, msgs: Arc<Vec<Envelope>>) -> Duration
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

async fn amqp_adapter(url: &str, msgs: Arc<Vec<Envelope>>) -> Duration {
    let run = run_id();
    let config = AmqpConfig::new(url)
        .with_exchange(format!("saga-bench-{run}"))
        .expire_unused_after(Duration::from_secs(120));
    let broker = Arc::new(
        AmqpBroker::connect(config, Arc::new(MemoryDeadLetterStore::default()))
            .await
            .expect("connect amqp"),
    );
    let elapsed = through_adapter(broker.clone(), msgs).await;
    broker.delete_topology().await.expect("cleanup");
    broker.close().await;
    elapsed
}

async fn amqp_raw(url: &str, msgs: Arc<Vec<Envelope>>) -> Duration {
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

    let run = run_id();
    let exchange = format!("saga-bench-raw-{run}");
    let queue = format!("{exchange}.bench");
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect lapin");
    let pub_ch = conn.create_channel().await.expect("channel");
    pub_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    pub_ch
        .exchange_declare(
            exchange.clone().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange");
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    pub_ch
        .queue_declare(queue.clone().into(), QueueDeclareOptions::durable(), args)
        .await
        .expect("queue");
    pub_ch
        .queue_bind(
            queue.clone().into(),
            exchange.clone().into(),
            "order.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let sub_ch = conn.create_channel().await.expect("channel");
    sub_ch
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = sub_ch
        .basic_consume(
            queue.clone().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");

    let n = msgs.len();
    let start = Instant::now();
    let publisher = {
        let (ch, exchange) = (pub_ch.clone(), exchange.clone());
        tokio::spawn(async move {
            for chunk in msgs.chunks(BATCH) {
                let mut confirms = Vec::with_capacity(chunk.len());
                for e in chunk {
                    let body = e.to_json().expect("json");
                    // What the adapter's message carries too.
                    let mut headers = FieldTable::default();
                    headers.insert(
                        "x-saga-aggregate-id".into(),
                        AMQPValue::LongString(LongString::from(e.aggregate_id.as_str())),
                    );
                    let props = BasicProperties::default()
                        .with_content_type("application/json".into())
                        .with_delivery_mode(2)
                        .with_message_id(e.event_id.to_string().into())
                        .with_correlation_id(e.correlation_id.to_string().into())
                        .with_headers(headers)
                        .with_type(e.event_type.clone().into())
                        .with_timestamp(e.timestamp.timestamp().unsigned_abs());
                    let confirm = ch
                        .basic_publish(
                            exchange.clone().into(),
                            e.event_type.clone().into(),
                            BasicPublishOptions::default(),
                            &body,
                            props,
                        )
                        .await
                        .expect("publish");
                    confirms.push(confirm);
                }
                for c in confirms {
                    assert!(!c.await.expect("confirm").is_nack(), "nacked");
                }
            }
        })
    };
    for _ in 0..n {
        let d = consumer.next().await.expect("open").expect("delivery");
        let e = Envelope::from_json(&d.data).expect("decode");
        std::hint::black_box(e);
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let elapsed = start.elapsed();
    publisher.await.expect("publisher");
    let _ = sub_ch.close(200, "done".into()).await;
    pub_ch
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");
    pub_ch
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
    let _ = conn.close(200, "done".into()).await;
    elapsed
}

async fn nats_adapter(url: &str, msgs: Arc<Vec<Envelope>>) -> Duration {
    let run = run_id();
    let config =
        NatsConfig::new(url).with_stream(format!("SAGA_BENCH_{run}"), format!("sagabench{run}"));
    let broker = Arc::new(
        NatsBroker::connect(config, Arc::new(MemoryDeadLetterStore::default()))
            .await
            .expect("connect nats"),
    );
    let elapsed = through_adapter(broker.clone(), msgs).await;
    broker.delete_stream().await.expect("cleanup");
    elapsed
}

async fn nats_raw(url: &str, msgs: Arc<Vec<Envelope>>) -> Duration {
    use async_nats::jetstream::{self, consumer, stream};

    let run = run_id();
    let prefix = format!("sagabenchraw{run}");
    let client = async_nats::connect(url).await.expect("connect nats");
    let js = jetstream::new(client);
    let stream = js
        .get_or_create_stream(stream::Config {
            name: format!("SAGA_BENCH_RAW_{run}"),
            subjects: vec![format!("{prefix}.>")],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..stream::Config::default()
        })
        .await
        .expect("stream");
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            "bench",
            consumer::pull::Config {
                durable_name: Some("bench".into()),
                filter_subject: format!("{prefix}.order.*"),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_deliver: 21,
                max_ack_pending: 1000,
                ..consumer::pull::Config::default()
            },
        )
        .await
        .expect("consumer");
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(usize::from(PREFETCH))
        .messages()
        .await
        .expect("messages");

    let n = msgs.len();
    let start = Instant::now();
    let publisher = {
        let (js, prefix) = (js.clone(), prefix.clone());
        tokio::spawn(async move {
            for chunk in msgs.chunks(BATCH) {
                let mut acks = Vec::with_capacity(chunk.len());
                for e in chunk {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", e.event_id.to_string().as_str());
                    let body = e.to_json().expect("json");
                    let ack = js
                        .publish_with_headers(
                            format!("{prefix}.{}", e.event_type),
                            headers,
                            body.into(),
                        )
                        .await
                        .expect("publish");
                    acks.push(ack);
                }
                for ack in acks {
                    ack.await.expect("publish ack");
                }
            }
        })
    };
    for _ in 0..n {
        let m = messages.next().await.expect("open").expect("message");
        let e = Envelope::from_json(&m.payload).expect("decode");
        std::hint::black_box(e);
        m.ack().await.expect("ack");
    }
    let elapsed = start.elapsed();
    publisher.await.expect("publisher");
    drop(messages);
    js.delete_stream(stream.cached_info().config.name.clone())
        .await
        .expect("delete stream");
    elapsed
}

fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("uptime failed: {e}"))
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// Rounds of (raw, adapter) durations: one table row with the medians and each round's ratio.
fn report(name: &str, n: usize, rounds: &[(Duration, Duration)]) {
    let raw: Vec<f64> = rounds.iter().map(|(r, _)| rate(n, *r)).collect();
    let adapter: Vec<f64> = rounds.iter().map(|(_, a)| rate(n, *a)).collect();
    let each = raw
        .iter()
        .zip(&adapter)
        .map(|(r, a)| format!("{:.0}%", 100.0 * a / r))
        .collect::<Vec<_>>()
        .join(" ");
    let (a, r) = (median(adapter), median(raw));
    println!(
        "| {name} | {n} x {} | {a:.0} | {r:.0} | {:.0}% | {each} | {} |",
        rounds.len(),
        100.0 * a / r,
        uptime()
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let msgs = Arc::new(envelopes(n));
    println!(
        "| adapter (vs raw client) | messages x rounds | adapter msg/s (median) | raw msg/s (median) | ratio | each round | uptime |"
    );
    println!("|---|---|---|---|---|---|---|");
    runtime.block_on(async {
        if only.is_empty() || only == "amqp" {
            match std::env::var("AMQP_URL") {
                Ok(url) => {
                    // A warm-up round of the raw client first (a quorum queue's first run on
                    // a cold broker is slower), not counted.
                    amqp_raw(&url, msgs.clone()).await;
                    let mut times = Vec::with_capacity(rounds);
                    for _ in 0..rounds {
                        let raw = amqp_raw(&url, msgs.clone()).await;
                        let adapter = amqp_adapter(&url, msgs.clone()).await;
                        times.push((raw, adapter));
                    }
                    report("amqp (lapin, confirms)", n, &times);
                }
                Err(_) => println!("SKIP amqp: AMQP_URL not set"),
            }
        }
        if only.is_empty() || only == "nats" {
            match std::env::var("NATS_URL") {
                Ok(url) => {
                    nats_raw(&url, msgs.clone()).await;
                    let mut times = Vec::with_capacity(rounds);
                    for _ in 0..rounds {
                        let raw = nats_raw(&url, msgs.clone()).await;
                        let adapter = nats_adapter(&url, msgs.clone()).await;
                        times.push((raw, adapter));
                    }
                    report("nats (async-nats JetStream)", n, &times);
                }
                Err(_) => println!("SKIP nats: NATS_URL not set"),
            }
        }
    });
}
