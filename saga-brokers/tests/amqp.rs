//! The broker conformance suite and the reconnection case against the machine's RabbitMQ.
//!
//! Needs `AMQP_URL` (scripts/services.sh sets it); without it every case prints
//! `SKIP <case>: AMQP_URL not set` and passes. With it set, an unreachable server fails.
//! Each case uses its own exchange (and so its own queues) and deletes them afterwards.
#![cfg(feature = "amqp")]

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use saga_brokers::amqp::{AmqpBroker, AmqpConfig};
use saga_core::broker::DeadLetterReplay;
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::testkit::broker::{BrokerFeatures, TestBroker};
use saga_core::testkit::harness::Harness;
use saga_core::{Envelope, Publisher, Subscriber, Subscription};

fn url(case: &str) -> Option<String> {
    match std::env::var("AMQP_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIP {case}: AMQP_URL not set");
            None
        }
    }
}

async fn connect(url: &str) -> AmqpBroker {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let config = AmqpConfig::new(url)
        .with_exchange(format!("saga-test-{run}"))
        .with_connection_name(format!("saga-test-{run}"))
        .with_reconnect_timeout(Duration::from_secs(20))
        .expire_unused_after(Duration::from_secs(120));
    match AmqpBroker::connect(config, Arc::new(MemoryDeadLetterStore::default())).await {
        Ok(b) => b,
        Err(e) => panic!("AMQP_URL is set but RabbitMQ at {url} is unreachable: {e}"),
    }
}

fn test_broker(b: &AmqpBroker) -> TestBroker {
    TestBroker {
        publisher: Arc::new(b.clone()),
        subscriber: Arc::new(b.clone()),
        dead_letters: b.dead_letters().clone(),
        replay: Some(Arc::new(b.clone()) as Arc<dyn DeadLetterReplay>),
        features: BrokerFeatures {
            // Ordered subscriptions: single active consumer, one message per key in flight,
            // retries wait in place, dead letters park their key until replay or discard.
            // A real server under a parallel test run (and CI's load) can take seconds to
            // settle a JetStream/quorum-queue operation: waits are bounded, but generously.
            timeout: Duration::from_secs(30),
            ..BrokerFeatures::full()
        },
    }
}

/// Runs `body` against a fresh exchange, then deletes its topology, also when `body` panics.
fn with_broker<F, Fut>(case: &str, body: F)
where
    F: FnOnce(AmqpBroker) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(url) = url(case) else {
        return;
    };
    saga_core::testkit::broker::run_case(async move {
        let broker = connect(&url).await;
        let outcome = AssertUnwindSafe(body(broker.clone())).catch_unwind().await;
        if let Err(e) = broker.delete_topology().await {
            eprintln!("cleanup of {} failed: {e}", broker.config().exchange);
        }
        broker.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

/// Each conformance case on its own exchange, skipped without `AMQP_URL`, its topology deleted
/// afterwards (also when the case panics).
struct Rabbit;

impl Harness<TestBroker> for Rabbit {
    type Guard = AmqpBroker;

    async fn setup(&self, case: &'static str) -> Option<(TestBroker, AmqpBroker)> {
        let url = url(case)?;
        let broker = connect(&url).await;
        Some((test_broker(&broker), broker))
    }

    async fn teardown(&self, broker: AmqpBroker) {
        if let Err(e) = broker.delete_topology().await {
            eprintln!("cleanup of {} failed: {e}", broker.config().exchange);
        }
        broker.close().await;
    }
}

saga_core::broker_conformance_tests!(harness: Rabbit);

async fn next(stream: &mut saga_core::DeliveryStream, what: &str) -> saga_core::Delivery {
    match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("{what}: stream failed: {e}"),
        Ok(None) => panic!("{what}: stream ended"),
        Err(_) => panic!("{what}: nothing within 20 s"),
    }
}

/// Closes every connection RabbitMQ lists under `name`, the way an operator would; returns how
/// many were closed.
fn close_connections(name: &str) -> usize {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "-q",
            "--no-table-headers",
        ])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        other => panic!("rabbitmqctl list_connections failed: {other:?}"),
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut closed = 0;
    for line in listing.lines().filter(|l| l.contains(name)) {
        let Some(pid) = line.split_whitespace().next() else {
            continue;
        };
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "saga-brokers reconnection test"])
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "rabbitmqctl close_connection {pid} failed: {status:?}"
        );
        closed += 1;
    }
    closed
}

/// After `rabbitmqctl close_connection`, the publisher and the subscriber recover by
/// themselves and nothing published is lost.
#[test]
fn publisher_and_subscriber_survive_a_closed_connection() {
    with_broker(
        "publisher_and_subscriber_survive_a_closed_connection",
        |b| async move {
            let sub = Subscription::new("reconnect", ["order.*"]);
            let mut stream = match b.subscribe(&sub).await {
                Ok(s) => s,
                Err(e) => panic!("subscribe: {e}"),
            };
            let before = Envelope::new("order.placed", "o-1", serde_json::json!({"n": 1}));
            if let Err(e) = b.publish(std::slice::from_ref(&before)).await {
                panic!("publish before: {e}");
            }
            let d = next(&mut stream, "before the close").await;
            assert_eq!(d.envelope.event_id, before.event_id);
            if let Err(e) = d.ack().await {
                panic!("ack: {e}");
            }

            let name = b.config().connection_name.clone();
            let closed = tokio::task::spawn_blocking(move || close_connections(&name))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            assert!(closed >= 1, "no connection named after the test was found");

            let after: Vec<Envelope> = (0..5)
                .map(|i| Envelope::new("order.placed", "o-1", serde_json::json!({"n": i})))
                .collect();
            if let Err(e) = b.publish(&after).await {
                panic!("publish after the close: {e}");
            }
            let mut got = std::collections::BTreeSet::new();
            while got.len() < after.len() {
                let d = next(&mut stream, "after the close").await;
                got.insert(d.envelope.event_id);
                if let Err(e) = d.ack().await {
                    panic!("ack after the close: {e}");
                }
            }
            let want: std::collections::BTreeSet<_> = after.iter().map(|e| e.event_id).collect();
            assert_eq!(got, want);
        },
    );
}

/// A message whose consumer keeps dropping it unsettled is dead-lettered by the adapter after
/// `max_deliveries`, instead of looping forever.
#[test]
fn endless_redelivery_is_dead_lettered() {
    with_broker("endless_redelivery_is_dead_lettered", |b| async move {
        let b = {
            let mut config = b.config().clone();
            config = config.with_max_deliveries(2);
            match AmqpBroker::connect(config, b.dead_letters().clone()).await {
                Ok(b) => b,
                Err(e) => panic!("connect: {e}"),
            }
        };
        let sub = Subscription::new("crashy", ["order.*"]);
        let mut stream = match b.subscribe(&sub).await {
            Ok(s) => s,
            Err(e) => panic!("subscribe: {e}"),
        };
        let msg = Envelope::new("order.placed", "o-1", serde_json::json!({}));
        if let Err(e) = b.publish(std::slice::from_ref(&msg)).await {
            panic!("publish: {e}");
        }
        for attempt in 1..=2 {
            let d = next(&mut stream, "a delivery").await;
            assert_eq!(d.attempt, attempt);
            drop(d);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let letters = match b
                .dead_letters()
                .list(&saga_core::dead_letter::DeadLetterFilter::default())
                .await
            {
                Ok(l) => l,
                Err(e) => panic!("list: {e}"),
            };
            if let Some(letter) = letters.first() {
                assert_eq!(letter.envelope.event_id, msg.event_id);
                assert_eq!(letter.attempts, 3);
                assert!(
                    letter.reason.contains("without being settled"),
                    "{}",
                    letter.reason
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no dead letter after 20 s"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = b.delete_topology().await {
            eprintln!("cleanup: {e}");
        }
        b.close().await;
    });
}

/// A parked key stays parked across a restart of the ordered subscription's consumer: the new
/// consumer loads the pending dead letters and holds the key's later messages until discard.
#[test]
fn a_parked_key_stays_parked_after_the_consumer_restarts() {
    with_broker(
        "a_parked_key_stays_parked_after_the_consumer_restarts",
        |b| async move {
            let sub = Subscription::new("ordered-restart", ["account.*"]).ordered();
            let mut stream = match b.subscribe(&sub).await {
                Ok(s) => s,
                Err(e) => panic!("subscribe: {e}"),
            };
            let batch: Vec<Envelope> = (0..2)
                .map(|i| Envelope::new("account.changed", "a", serde_json::json!({"seq": i})))
                .collect();
            if let Err(e) = b.publish(&batch).await {
                panic!("publish: {e}");
            }
            let first = next(&mut stream, "a0").await;
            assert_eq!(first.envelope.event_id, batch[0].event_id);
            if let Err(e) = first.dead_letter("poison", None).await {
                panic!("dead_letter: {e}");
            }
            drop(stream);

            let mut stream = match b.subscribe(&sub).await {
                Ok(s) => s,
                Err(e) => panic!("subscribe again: {e}"),
            };
            if let Ok(Some(Ok(d))) =
                tokio::time::timeout(Duration::from_millis(500), stream.next()).await
            {
                panic!("delivered while parked: {:?}", d.envelope.payload);
            }
            let letters = match b
                .dead_letters()
                .list(&saga_core::dead_letter::DeadLetterFilter::default())
                .await
            {
                Ok(l) => l,
                Err(e) => panic!("list: {e}"),
            };
            let [letter] = letters.as_slice() else {
                panic!("expected one dead letter, got {letters:?}");
            };
            match b.discard_dead_letter(letter.id).await {
                Ok(true) => {}
                other => panic!("discard returned {other:?}"),
            }
            let d = next(&mut stream, "a1 after discard").await;
            assert_eq!(d.envelope.event_id, batch[1].event_id);
            if let Err(e) = d.ack().await {
                panic!("ack: {e}");
            }
        },
    );
}
