//! Publish + consume throughput of the RabbitMQ and NATS JetStream adapters, each against the
//! raw client doing the same work with the same settings, measured in the same run:
//!
//! * amqp: lapin, a durable topic exchange and a quorum queue, publisher confirms awaited per
//!   batch of 100, one consumer with prefetch 256 decoding each envelope and acking it;
//! * nats: async-nats, a file stream and a durable pull consumer, batches of 100 published
//!   pipelined (acks awaited after the batch), one consumer pulling up to 256 at a time,
//!   decoding each envelope and acking it (acks are pipelined: no reply awaited).
//!
//! Run with `AMQP_URL=... NATS_URL=... cargo bench -p saga-brokers --features amqp,nats --bench
//! amqp_nats`; `BENCH_N` sets the message count (default 20000, a multiple of 100), `BENCH_ONLY`
//! (`amqp` or `nats`) runs one side. Results are recorded in docs/bench/brokers-amqp-nats.md.

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
                    let props = BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into())
                        .with_message_id(e.event_id.to_string().into());
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

fn report(name: &str, n: usize, adapter: Duration, raw: Duration) {
    let (a, r) = (rate(n, adapter), rate(n, raw));
    println!(
        "| {name} | {n} | {a:.0} | {r:.0} | {:.0}% | {} |",
        100.0 * a / r,
        uptime()
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let msgs = Arc::new(envelopes(n));
    println!("| adapter (vs raw client) | messages | adapter msg/s | raw msg/s | ratio | uptime |");
    println!("|---|---|---|---|---|---|");
    runtime.block_on(async {
        if only.is_empty() || only == "amqp" {
            match std::env::var("AMQP_URL") {
                Ok(url) => {
                    // Raw first, then the adapter, then raw again: the better raw run is the
                    // ceiling (a quorum queue's first run on a cold broker is slower).
                    let raw1 = amqp_raw(&url, msgs.clone()).await;
                    let adapter = amqp_adapter(&url, msgs.clone()).await;
                    let raw2 = amqp_raw(&url, msgs.clone()).await;
                    report("amqp (lapin, confirms)", n, adapter, raw1.min(raw2));
                }
                Err(_) => println!("SKIP amqp: AMQP_URL not set"),
            }
        }
        if only.is_empty() || only == "nats" {
            match std::env::var("NATS_URL") {
                Ok(url) => {
                    let raw1 = nats_raw(&url, msgs.clone()).await;
                    let adapter = nats_adapter(&url, msgs.clone()).await;
                    let raw2 = nats_raw(&url, msgs.clone()).await;
                    report("nats (async-nats JetStream)", n, adapter, raw1.min(raw2));
                }
                Err(_) => println!("SKIP nats: NATS_URL not set"),
            }
        }
    });
}
