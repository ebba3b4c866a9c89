//! The broker conformance suite on the SQL queue over Postgres: each test in its own schema,
//! dropped afterwards. Without `DATABASE_URL` each test prints `SKIP` and passes; with it (or
//! with `CI=true`) an unreachable server fails the test.
#![cfg(feature = "sql")]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use saga_brokers::sql::{SqlBroker, SqlOptions};
use saga_core::Envelope;
use saga_core::broker::{DeadLetterReplay, Publisher, Subscriber, Subscription};
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::testkit::broker::{BrokerFeatures, TestBroker};
use saga_core::testkit::harness::Harness;
use sqlx::Connection;
use uuid::Uuid;

/// The server's URL, or `None` (after printing `SKIP`) when the test should not run.
fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: DATABASE_URL must be set in CI")
        }
        _ => {
            eprintln!("SKIP {test}: DATABASE_URL not set");
            None
        }
    }
}

/// Drops the test's schema when the last handle goes (from a thread with its own runtime,
/// since `Drop` cannot await).
struct TempSchema {
    url: String,
    schema: String,
}

impl Drop for TempSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop schema {}: {dropped:?}", self.schema);
        }
    }
}

async fn open(url: &str, options: SqlOptions) -> (SqlBroker, TempSchema) {
    let schema = format!("sqlq_{}", Uuid::now_v7().simple());
    let guard = TempSchema {
        url: url.to_owned(),
        schema: schema.clone(),
    };
    let broker = SqlBroker::connect(
        url,
        Arc::new(MemoryDeadLetterStore::default()),
        options.with_schema(schema),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot reach Postgres at DATABASE_URL: {e}"));
    (broker, guard)
}

/// The suite's view of a broker.
fn test_broker(broker: &SqlBroker) -> TestBroker {
    TestBroker {
        publisher: Arc::new(broker.clone()),
        subscriber: Arc::new(broker.clone()),
        dead_letters: broker.dead_letters().clone(),
        replay: Some(Arc::new(broker.clone()) as Arc<dyn DeadLetterReplay>),
        features: BrokerFeatures::full(),
    }
}

/// Each conformance case in its own schema, skipped (with a message) when `DATABASE_URL` is
/// unset; the schema is dropped after the case, also after a panic.
struct Postgres;

impl Harness<TestBroker> for Postgres {
    type Guard = (SqlBroker, TempSchema);

    async fn setup(&self, case: &'static str) -> Option<(TestBroker, Self::Guard)> {
        let url = database_url(case)?;
        let (broker, schema) = open(&url, SqlOptions::default()).await;
        Some((test_broker(&broker), (broker, schema)))
    }

    async fn teardown(&self, (broker, schema): Self::Guard) {
        broker.close().await;
        drop(schema);
    }
}

saga_core::broker_conformance_tests!(harness: Postgres);

/// Two brokers (two pools, as two processes would have) on one schema: a publish through
/// one wakes a consumer of the other through `LISTEN/NOTIFY`, well before the fallback poll.
#[test]
fn notify_wakes_a_consumer_of_another_broker() {
    let Some(url) = database_url("notify_wakes_a_consumer_of_another_broker") else {
        return;
    };
    saga_core::testkit::broker::run_case(async move {
        // A fallback poll far longer than the wait below: only NOTIFY can deliver in time.
        let options = SqlOptions::default().with_poll_interval(Duration::from_secs(600));
        let (consumer_side, schema) = open(&url, options.clone()).await;
        let publisher_side = SqlBroker::connect(
            &url,
            Arc::new(MemoryDeadLetterStore::default()),
            options.with_schema(schema.schema.clone()),
        )
        .await
        .expect("second broker");
        let mut stream = consumer_side
            .subscribe(&Subscription::new("remote", ["order.*"]))
            .await
            .expect("subscribe");
        // Let the consumer go idle (its first claim finds nothing) before publishing.
        let idle = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
        assert!(idle.is_err(), "nothing was published yet");
        let sent = Envelope::new("order.placed", "o-1", serde_json::json!({}));
        publisher_side
            .publish(std::slice::from_ref(&sent))
            .await
            .expect("publish");
        let d = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("woken by NOTIFY")
            .expect("open")
            .expect("delivery");
        assert_eq!(*d.envelope, sent);
        d.ack().await.expect("ack");
        consumer_side.close().await;
        publisher_side.close().await;
        drop(stream);
        drop(schema);
    });
}

/// Many acks at once share a few commits; every acked message is gone and none comes again,
/// also after its lease would have run out.
#[test]
fn concurrent_acks_share_commits() {
    let Some(url) = database_url("concurrent_acks_share_commits") else {
        return;
    };
    saga_core::testkit::broker::run_case(async move {
        let lease = Duration::from_millis(300);
        let (broker, schema) = open(&url, SqlOptions::default().with_lease(lease)).await;
        let n: usize = 200;
        let mut stream = broker
            .subscribe(&Subscription::new("group", ["order.*"]).with_prefetch(200))
            .await
            .expect("subscribe");
        let batch: Vec<Envelope> = (0..n)
            .map(|i| {
                Envelope::new(
                    "order.placed",
                    format!("o-{i}"),
                    serde_json::json!({ "i": i }),
                )
            })
            .collect();
        broker.publish(&batch).await.expect("publish");
        let mut deliveries = Vec::with_capacity(n);
        while deliveries.len() < n {
            let d = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("delivered in time")
                .expect("open")
                .expect("delivery");
            deliveries.push(d);
        }
        let before = broker.settle_stats();
        let acks = futures_util::future::join_all(deliveries.into_iter().map(|d| d.ack())).await;
        assert!(acks.iter().all(Result::is_ok), "{acks:?}");
        let after = broker.settle_stats();
        let commits = after.commits - before.commits;
        assert_eq!(after.settled - before.settled, n as u64);
        assert!(
            (1..=(n as u64) / 10).contains(&commits),
            "{n} concurrent acks took {commits} commits"
        );
        assert_eq!(broker.queued("group").await.expect("count"), 0);
        let again = tokio::time::timeout(lease * 4, stream.next()).await;
        assert!(again.is_err(), "an acked message came again: {again:?}");
        broker.close().await;
        drop(stream);
        drop(schema);
    });
}
