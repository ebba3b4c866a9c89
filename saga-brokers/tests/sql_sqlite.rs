//! The broker conformance suite on the SQL queue over SQLite (a fresh file per test, removed
//! afterwards), and durability across a `kill -9`.
#![cfg(feature = "sql")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use saga_brokers::sql::{SqlBroker, SqlOptions};
use saga_core::Envelope;
use saga_core::broker::{DeadLetterReplay, Publisher, Subscriber, Subscription};
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::testkit::broker::{BrokerFeatures, TestBroker};
use saga_core::testkit::harness::Harness;
use uuid::Uuid;

/// Removes a test's database files when the last handle goes.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("saga-sqlq-{}.db", Uuid::now_v7().simple())))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
        }
    }
}

async fn open(path: &std::path::Path, options: SqlOptions) -> SqlBroker {
    match SqlBroker::open_sqlite(path, Arc::new(MemoryDeadLetterStore::default()), options).await {
        Ok(b) => b,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    }
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

/// Each conformance case on its own file, removed after the case (also after a panic).
struct Sqlite;

impl Harness<TestBroker> for Sqlite {
    type Guard = (SqlBroker, TempDb);

    async fn setup(&self, _case: &'static str) -> Option<(TestBroker, Self::Guard)> {
        let db = TempDb::new();
        let broker = open(&db.0, SqlOptions::default()).await;
        Some((test_broker(&broker), (broker, db)))
    }

    async fn teardown(&self, (broker, db): Self::Guard) {
        broker.close().await;
        drop(db);
    }
}

saga_core::broker_conformance_tests!(harness: Sqlite);

const CHILD_ENV: &str = "SAGA_SQLQ_KILL9_FILE";
const LEASE: Duration = Duration::from_millis(300);

fn sub() -> Subscription {
    Subscription::new("kill9", ["order.*"]).with_prefetch(1)
}

/// Run only as the child of `sqlite_loses_nothing_on_kill_9`: publishes five messages,
/// claims one without settling it, then SIGKILLs its own process.
#[test]
#[ignore = "run in a child process by sqlite_loses_nothing_on_kill_9"]
fn kill9_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    saga_core::testkit::broker::run_case(async move {
        let broker = open(path.as_ref(), SqlOptions::default().with_lease(LEASE)).await;
        let mut stream = broker.subscribe(&sub()).await.expect("subscribe");
        let batch: Vec<Envelope> = (0..5)
            .map(|i| Envelope::new("order.placed", "o", serde_json::json!({ "seq": i })))
            .collect();
        broker.publish(&batch).await.expect("publish");
        let held = stream.next().await.expect("open").expect("delivery");
        println!("CLAIMED {}", held.envelope.event_id);
        // No destructor runs from here on: the process dies as under `kill -9`.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::thread::sleep(Duration::from_secs(5));
        std::process::abort();
    });
}

/// A process publishes, claims a message without acking and is killed with SIGKILL; the same
/// file reopened delivers every message, the claimed one as attempt 2 once its lease ran out.
#[test]
fn sqlite_loses_nothing_on_kill_9() {
    use std::os::unix::process::ExitStatusExt;
    let db = TempDb::new();
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "kill9_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db.0)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let claimed = stdout
        .lines()
        .find_map(|l| l.split_once("CLAIMED ").map(|(_, id)| id))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
        .unwrap_or_else(|| {
            panic!(
                "the child did not claim a message: status {:?}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(
        out.status.signal(),
        Some(9),
        "the child must die of SIGKILL"
    );

    saga_core::testkit::broker::run_case(async move {
        let broker = open(&db.0, SqlOptions::default().with_lease(LEASE)).await;
        assert_eq!(broker.queued("kill9").await.expect("count"), 5);
        let mut stream = broker.subscribe(&sub()).await.expect("subscribe");
        let mut attempts = BTreeMap::new();
        for i in 0..5 {
            let d = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap_or_else(|_| panic!("only {i} of 5 messages came back"))
                .expect("open")
                .expect("delivery");
            attempts.insert(d.envelope.event_id, d.attempt);
            d.ack().await.expect("ack");
        }
        assert_eq!(attempts.len(), 5, "five distinct messages");
        for (id, attempt) in &attempts {
            let want = if *id == claimed { 2 } else { 1 };
            assert_eq!(*attempt, want, "attempt of {id}");
        }
        assert_eq!(broker.queued("kill9").await.expect("count"), 0);
    });
}

/// Messages published and not consumed are there after a clean reopen, with their
/// subscription.
#[test]
fn reopened_file_keeps_subscriptions_and_messages() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let s = Subscription::new("reopen", ["payment.#"]);
        let sent = Envelope::new("payment.captured", "p-1", serde_json::json!({}));
        {
            let broker = open(&db.0, SqlOptions::default()).await;
            drop(broker.subscribe(&s).await.expect("subscribe"));
            broker
                .publish(std::slice::from_ref(&sent))
                .await
                .expect("publish");
            broker.close().await;
        }
        let broker = open(&db.0, SqlOptions::default()).await;
        let mut stream = broker.subscribe(&s).await.expect("subscribe");
        let d = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("delivered")
            .expect("open")
            .expect("delivery");
        assert_eq!(*d.envelope, sent);
        assert_eq!(d.attempt, 1);
        d.ack().await.expect("ack");
    });
}

/// After close, streams end and publish fails with `Closed`.
#[test]
fn close_ends_streams_and_refuses_publish() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let broker = open(&db.0, SqlOptions::default()).await;
        let mut stream = broker
            .subscribe(&Subscription::new("closing", ["#"]))
            .await
            .expect("subscribe");
        let waiter = tokio::spawn(async move { stream.next().await.is_none() });
        broker.close().await;
        assert!(waiter.await.expect("join"), "the stream ends on close");
        let err = broker
            .publish(&[Envelope::new("a.b", "k", serde_json::json!({}))])
            .await;
        assert!(matches!(err, Err(saga_core::Error::Closed(_))), "{err:?}");
    });
}

/// Invalid table prefixes are refused before any SQL runs.
#[test]
fn invalid_prefix_is_refused() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let r = SqlBroker::open_sqlite(
            &db.0,
            Arc::new(MemoryDeadLetterStore::default()),
            SqlOptions::default().with_table_prefix("x; DROP TABLE y"),
        )
        .await;
        assert!(matches!(r, Err(saga_core::Error::InvalidArgument(_))));
    });
}

/// Publishes `n` messages on a fresh subscription and takes all `n` deliveries (one claim).
async fn claimed(
    broker: &SqlBroker,
    name: &str,
    n: usize,
) -> (saga_core::broker::DeliveryStream, Vec<saga_core::Delivery>) {
    let prefetch = u16::try_from(n).expect("n fits a prefetch");
    let mut stream = broker
        .subscribe(&Subscription::new(name, ["order.*"]).with_prefetch(prefetch))
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
    (stream, deliveries)
}

/// Many acks at once share a few commits; every acked message is gone and none comes again,
/// also after its lease would have run out.
#[test]
fn concurrent_acks_share_commits() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let broker = open(&db.0, SqlOptions::default().with_lease(LEASE)).await;
        let n = 200;
        let (mut stream, deliveries) = claimed(&broker, "group", n).await;
        let before = broker.settle_stats();
        let acks = futures_util::future::join_all(deliveries.into_iter().map(|d| d.ack())).await;
        assert!(acks.iter().all(Result::is_ok), "{acks:?}");
        let after = broker.settle_stats();
        let commits = after.commits - before.commits;
        assert_eq!(after.settled - before.settled, n as u64);
        assert_eq!(after.failed_batches, before.failed_batches);
        assert!(
            (1..=(n as u64) / 10).contains(&commits),
            "{n} concurrent acks took {commits} commits"
        );
        assert_eq!(broker.queued("group").await.expect("count"), 0);
        let again = tokio::time::timeout(LEASE * 4, stream.next()).await;
        assert!(again.is_err(), "an acked message came again: {again:?}");
        broker.close().await;
    });
}

/// A batch that cannot be written fails every caller in it, and their messages come again
/// once their leases run out, as after any failed ack.
#[test]
fn failed_batch_fails_every_waiter() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let broker = open(&db.0, SqlOptions::default().with_lease(LEASE)).await;
        let n = 50;
        let (mut stream, deliveries) = claimed(&broker, "failing", n).await;
        let pool = broker.sqlite_pool().expect("sqlite").clone();
        // The table the acks delete from disappears under them.
        sqlx::query("ALTER TABLE saga_messages RENAME TO saga_hidden")
            .execute(&pool)
            .await
            .expect("rename");
        let before = broker.settle_stats();
        let acks = futures_util::future::join_all(deliveries.into_iter().map(|d| d.ack())).await;
        assert_eq!(acks.len(), n);
        assert!(acks.iter().all(Result::is_err), "{acks:?}");
        let after = broker.settle_stats();
        assert_eq!(after.commits, before.commits);
        assert_eq!(after.settled, before.settled);
        assert!(after.failed_batches > before.failed_batches);
        sqlx::query("ALTER TABLE saga_hidden RENAME TO saga_messages")
            .execute(&pool)
            .await
            .expect("rename back");
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < n {
            let d = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("redelivered in time")
                .expect("open")
                .expect("delivery");
            assert_eq!(
                d.attempt, 2,
                "the failed ack left the first attempt's claim"
            );
            seen.insert(d.envelope.event_id);
            d.ack().await.expect("ack");
        }
        assert_eq!(broker.queued("failing").await.expect("count"), 0);
        broker.close().await;
    });
}

/// Acks waiting for their batch when the broker closes are still written; when the pool
/// closes under them, each returns (written or failed, never hanging), and a reopened file
/// holds exactly the messages whose ack failed.
#[test]
fn pending_acks_finish_when_broker_or_pool_closes() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let broker = open(&db.0, SqlOptions::default()).await;
        let n = 100;
        let (stream, deliveries) = claimed(&broker, "closing", 2 * n).await;
        drop(stream);
        let mut deliveries = deliveries.into_iter();
        let first: Vec<_> = deliveries
            .by_ref()
            .take(n)
            .map(|d| tokio::spawn(d.ack()))
            .collect();
        broker.close().await;
        for ack in first {
            tokio::time::timeout(Duration::from_secs(10), ack)
                .await
                .expect("an ack hung after close")
                .expect("join")
                .expect("acked after close");
        }
        assert_eq!(broker.queued("closing").await.expect("count"), n as u64);

        let rest: Vec<_> = deliveries.map(|d| tokio::spawn(d.ack())).collect();
        broker.sqlite_pool().expect("sqlite").close().await;
        let mut failed = 0;
        for ack in rest {
            let done = tokio::time::timeout(Duration::from_secs(10), ack)
                .await
                .expect("an ack hung after the pool closed")
                .expect("join");
            if done.is_err() {
                failed += 1;
            }
        }
        drop(broker);
        let reopened = open(&db.0, SqlOptions::default()).await;
        assert_eq!(
            reopened.queued("closing").await.expect("count"),
            failed,
            "exactly the messages whose ack failed are left"
        );
        reopened.close().await;
    });
}

/// Acks and retries at once share commits (one transaction each): the acked messages are
/// gone, the retried ones come again as attempt 2, and only them.
#[test]
fn concurrent_acks_and_retries_share_commits() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let broker = open(&db.0, SqlOptions::default().with_lease(LEASE)).await;
        let n = 100;
        let (mut stream, deliveries) = claimed(&broker, "mixed", n).await;
        let before = broker.settle_stats();
        let mut retried = std::collections::BTreeSet::new();
        let settles = deliveries.into_iter().enumerate().map(|(i, d)| {
            if i % 2 == 0 {
                retried.insert(d.envelope.event_id);
                futures_util::future::Either::Left(d.retry(Duration::from_millis(50)))
            } else {
                futures_util::future::Either::Right(d.ack())
            }
        });
        let settled = futures_util::future::join_all(settles.collect::<Vec<_>>()).await;
        assert!(settled.iter().all(Result::is_ok), "{settled:?}");
        let after = broker.settle_stats();
        assert_eq!(after.settled - before.settled, n as u64);
        assert!(
            after.commits - before.commits <= (n as u64) / 10,
            "{after:?}"
        );
        let mut again = std::collections::BTreeSet::new();
        while again.len() < n / 2 {
            let d = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("retried in time")
                .expect("open")
                .expect("delivery");
            assert_eq!(d.attempt, 2);
            again.insert(d.envelope.event_id);
            d.ack().await.expect("ack");
        }
        assert_eq!(again, retried, "exactly the retried messages come again");
        let more = tokio::time::timeout(LEASE * 4, stream.next()).await;
        assert!(more.is_err(), "an acked message came again: {more:?}");
        broker.close().await;
    });
}

/// A consumer that holds most of its prefetch unsettled (one that waits for more messages
/// before it settles any) still gets the next message: with fewer free slots than make a claim
/// worth its commit, it claims after a poll interval without a wake-up.
#[test]
fn holding_consumer_still_gets_new_messages() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let poll = Duration::from_millis(200);
        let broker = open(&db.0, SqlOptions::default().with_poll_interval(poll)).await;
        let n = 8;
        let (mut stream, mut deliveries) = claimed(&broker, "holding", n).await;
        // One settled, seven held: one slot free, under the claim threshold of 8 / 4.
        deliveries.pop().expect("one").ack().await.expect("ack");
        let late = Envelope::new("order.placed", "late", serde_json::json!({ "late": true }));
        broker.publish(&[late]).await.expect("publish");
        let d = tokio::time::timeout(poll * 20, stream.next())
            .await
            .expect("the held-back consumer claims the new message")
            .expect("open")
            .expect("delivery");
        assert_eq!(d.envelope.aggregate_id, "late");
        d.ack().await.expect("ack");
        for d in deliveries {
            d.ack().await.expect("ack");
        }
        assert_eq!(broker.queued("holding").await.expect("count"), 0);
        broker.close().await;
    });
}

/// The broker's own writers never meet on SQLite's lock: publishers, claiming consumers and
/// the group commit of acks, all at once on a pool of four connections whose busy timeout
/// is zero (a writer that met another would fail at once with "database is locked" instead
/// of sleeping in SQLite's busy handler), lose nothing and see no error.
#[test]
fn concurrent_writers_never_meet_on_the_lock() {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let connect = SqliteConnectOptions::new()
            .filename(&db.0)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::ZERO);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect)
            .await
            .expect("pool");
        let broker = SqlBroker::from_sqlite_pool(
            pool,
            Arc::new(MemoryDeadLetterStore::default()),
            SqlOptions::default(),
        )
        .await
        .expect("open");
        let (publishers, batches, per_batch) = (4, 40, 3);
        let total = publishers * batches * per_batch;
        let mut consumers = Vec::new();
        for name in ["busy-a", "busy-b"] {
            let mut stream = broker
                .subscribe(&Subscription::new(name, ["order.*"]).with_prefetch(8))
                .await
                .expect("subscribe");
            consumers.push(tokio::spawn(async move {
                let mut seen = std::collections::HashSet::new();
                while seen.len() < total {
                    let next = tokio::time::timeout(Duration::from_secs(20), stream.next())
                        .await
                        .expect("delivered in time")
                        .expect("open");
                    let d = next.unwrap_or_else(|e| panic!("stream error: {e}"));
                    seen.insert(d.envelope.event_id);
                    d.ack().await.unwrap_or_else(|e| panic!("ack: {e}"));
                }
                seen.len()
            }));
        }
        let mut producers = Vec::new();
        for p in 0..publishers {
            let broker = broker.clone();
            producers.push(tokio::spawn(async move {
                for b in 0..batches {
                    let batch: Vec<Envelope> = (0..per_batch)
                        .map(|i| {
                            Envelope::new(
                                "order.placed",
                                format!("p{p}"),
                                serde_json::json!({ "b": b, "i": i }),
                            )
                        })
                        .collect();
                    broker
                        .publish(&batch)
                        .await
                        .unwrap_or_else(|e| panic!("publish: {e}"));
                }
            }));
        }
        for p in producers {
            p.await.expect("producer");
        }
        for c in consumers {
            assert_eq!(c.await.expect("consumer"), total);
        }
        for name in ["busy-a", "busy-b"] {
            assert_eq!(broker.queued(name).await.expect("count"), 0);
        }
        broker.close().await;
    });
}

/// A batch whose fan-out needs more rows than one `INSERT` holds (300 events for two
/// subscriptions: 600 rows, written in one transaction in chunks) reaches both subscriptions
/// whole and in order, like the small batches written by one statement.
#[test]
fn large_fan_out_is_written_whole_and_in_order() {
    let db = TempDb::new();
    saga_core::testkit::broker::run_case(async move {
        let broker = open(&db.0, SqlOptions::default()).await;
        let n = 300;
        let mut streams = Vec::new();
        for name in ["wide-a", "wide-b"] {
            let sub = Subscription::new(name, ["order.*"]).with_prefetch(64);
            streams.push(broker.subscribe(&sub).await.expect("subscribe"));
        }
        let batch: Vec<Envelope> = (0..n)
            .map(|i| Envelope::new("order.placed", "wide", serde_json::json!({ "i": i })))
            .collect();
        broker.publish(&batch).await.expect("publish");
        for stream in &mut streams {
            for i in 0..n {
                let d = tokio::time::timeout(Duration::from_secs(10), stream.next())
                    .await
                    .expect("delivered in time")
                    .expect("open")
                    .expect("delivery");
                assert_eq!(d.envelope.payload["i"], i, "order within the batch");
                d.ack().await.expect("ack");
            }
        }
        for name in ["wide-a", "wide-b"] {
            assert_eq!(broker.queued(name).await.expect("count"), 0);
        }
        broker.close().await;
    });
}
