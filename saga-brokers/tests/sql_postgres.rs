//! The broker conformance suite on the SQL queue over Postgres: each test in its own schema,
//! dropped afterwards. Without `DATABASE_URL` each test prints `SKIP` and passes; with it (or
//! with `CI=true`) an unreachable server fails the test.
#![cfg(feature = "sql")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use saga_brokers::sql::{SqlBroker, SqlOptions};
use saga_core::broker::{DeadLetterReplay, DeliveryStream, Publisher, Subscriber, Subscription};
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::testkit::broker::{BrokerFeatures, TestBroker};
use saga_core::{Envelope, Result};
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

struct Guarded {
    broker: SqlBroker,
    _schema: TempSchema,
}

#[async_trait]
impl Publisher for Guarded {
    async fn publish(&self, batch: &[Envelope]) -> Result<()> {
        self.broker.publish(batch).await
    }
}

#[async_trait]
impl Subscriber for Guarded {
    async fn subscribe(&self, subscription: &Subscription) -> Result<DeliveryStream> {
        self.broker.subscribe(subscription).await
    }
}

#[async_trait]
impl DeadLetterReplay for Guarded {
    async fn replay_dead_letter(&self, id: Uuid) -> Result<bool> {
        self.broker.replay_dead_letter(id).await
    }
    async fn discard_dead_letter(&self, id: Uuid) -> Result<bool> {
        self.broker.discard_dead_letter(id).await
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

async fn broker_at(url: String) -> TestBroker {
    let (broker, schema) = open(&url, SqlOptions::default()).await;
    let dead_letters = broker.dead_letters().clone();
    let guarded = Arc::new(Guarded {
        broker,
        _schema: schema,
    });
    TestBroker {
        publisher: guarded.clone(),
        subscriber: guarded.clone(),
        dead_letters,
        replay: Some(guarded as Arc<dyn DeadLetterReplay>),
        features: BrokerFeatures::full(),
    }
}

/// The suite's cases, each skipped (with a message) when `DATABASE_URL` is unset. The
/// list mirrors `saga_core::broker_conformance_tests!`, whose factory cannot skip.
macro_rules! postgres_cases {
    ($($case:ident),* $(,)?) => {
        mod broker_conformance {
            use super::*;
            $(
                #[test]
                fn $case() {
                    let Some(url) = database_url(stringify!($case)) else { return };
                    saga_core::testkit::broker::run_case(async move {
                        saga_core::testkit::broker::$case(broker_at(url).await).await
                    });
                }
            )*
        }
    };
}

postgres_cases!(
    routing_star_and_hash,
    fan_out_each_subscription_gets_all,
    competing_consumers_deliver_each_message_once,
    prefetch_bounds_unsettled_deliveries,
    redelivers_after_consumer_drops_unsettled,
    retry_delay_is_honoured,
    dead_letter_after_attempt_limit,
    permanent_error_dead_letters_at_once,
    unordered_dead_letter_does_not_park,
    per_key_order_is_kept,
    ordered_retry_keeps_the_key_head,
    poison_parks_only_its_key_and_replay_releases_it,
    discard_releases_a_parked_key,
    batch_publish_keeps_order,
    empty_batch_is_fine,
    durable_subscription_keeps_messages_without_consumers,
    invalid_subscription_is_a_typed_error,
);

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
        assert_eq!(d.envelope, sent);
        d.ack().await.expect("ack");
        consumer_side.close().await;
        publisher_side.close().await;
        drop(stream);
        drop(schema);
    });
}
