//! The relay on SQLite and Postgres: order per aggregate, exactly once in the happy path
//! with two relays, republish after a crash absorbed by the inbox, lease takeover.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use saga_core::{Envelope, Publisher};
use saga_outbox::postgres::{LeaseConfig, Leases, PgRelaySource};
use saga_outbox::sqlite::SqliteRelaySource;
use saga_outbox::{Relay, RelayConfig};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Records what was published; optionally hangs forever after recording its first batch
/// (a process that dies between publish and mark).
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Envelope>>,
    changed: Notify,
    hang_first: bool,
}

#[async_trait]
impl Publisher for Recorder {
    async fn publish(&self, batch: &[Envelope]) -> saga_core::Result<()> {
        let first = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let first = seen.is_empty();
            seen.extend(batch.iter().cloned());
            first
        };
        self.changed.notify_waiters();
        if self.hang_first && first {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

impl Recorder {
    fn seen(&self) -> Vec<Envelope> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (bounded) until `n` events were published.
    async fn wait_for(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.changed.notified();
            if self.seen().len() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("only {} of {n} events published in time", self.seen().len());
            }
        }
    }
}

fn event(aggregate: usize, n: usize) -> Envelope {
    Envelope::new(
        "test.happened",
        format!("agg-{aggregate}"),
        serde_json::json!({ "n": n }),
    )
}

/// Every aggregate's events in `n` order, and no event twice.
fn assert_ordered_once(seen: &[Envelope], expected: usize) {
    let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "an event was published twice");
    assert_eq!(seen.len(), expected, "every event is published");
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for e in seen {
        let n = e.payload["n"].as_i64().unwrap_or(-1);
        let prev = last.insert(e.aggregate_id.as_str(), n);
        assert!(
            prev.is_none_or(|p| p < n),
            "order broken for {}",
            e.aggregate_id
        );
    }
}

/// Commits one event (`event(aggregate, n)`) through a unit of work.
async fn commit_one(store: &saga_outbox::postgres::PgStore, aggregate: usize, n: usize) {
    let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
    uow.publish(&[event(aggregate, n)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
}

fn config() -> RelayConfig {
    RelayConfig {
        batch_size: 50,
        poll_interval: Duration::from_millis(50),
        ..RelayConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_relay_publishes_in_order_and_stops() {
    let (_clock, shared) = support::manual();
    let (store, _dir) = support::sqlite_store(shared).await;
    let recorder = Arc::new(Recorder::default());
    let relay = Relay::new(
        SqliteRelaySource::new(store.clone()),
        recorder.clone(),
        config(),
    );
    let metrics = relay.metrics();
    let stop = CancellationToken::new();
    let handle = relay.spawn(stop.clone());
    for n in 0..120 {
        let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
        uow.publish(&[event(n % 7, n)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
    recorder.wait_for(120).await;
    stop.cancel();
    handle
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ordered_once(&recorder.seen(), 120);
    assert_eq!(metrics.snapshot().published, 120);
    use saga_core::OutboxStore;
    assert_eq!(
        store
            .pending_count()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
}

fn lease(owner: &str) -> LeaseConfig {
    LeaseConfig {
        owner: owner.into(),
        ttl: Duration::from_secs(30),
        renew_every: Duration::from_millis(20),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_relays_publish_every_row_once_in_order() {
    let Some(url) = support::database_url("two_postgres_relays_publish_every_row_once_in_order")
    else {
        return;
    };
    let (_clock, shared) = support::manual();
    let (store, guard) = support::pg_store(&url, shared.clone(), 8).await;
    let other = support::pg_connect(&url, &guard.schema, shared, 8).await;
    let recorder = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let a = Relay::new(
        PgRelaySource::new(store.clone(), lease("a")),
        recorder.clone(),
        config(),
    );
    let b = Relay::new(
        PgRelaySource::new(other.clone(), lease("b")),
        recorder.clone(),
        config(),
    );
    let (ma, mb) = (a.metrics(), b.metrics());
    let ha = a.spawn(stop.clone());
    let hb = b.spawn(stop.clone());
    let total = 400;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = if w % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        writers.spawn(async move {
            // Writer w owns aggregates w, w+4, ...: an aggregate's writes are serialised.
            for n in 0..total / 4 {
                let mut uow = store.begin().await?;
                uow.publish(&[event(w + 4 * (n % 5), n)]).await?;
                uow.commit().await?;
            }
            Ok::<_, saga_core::Error>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    recorder.wait_for(total).await;
    stop.cancel();
    ha.await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    hb.await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ordered_once(&recorder.seen(), total);
    let (pa, pb) = (ma.snapshot().published, mb.snapshot().published);
    assert_eq!(pa + pb, total as u64, "metrics count each row once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_publish_and_mark_republishes_and_the_inbox_absorbs_it() {
    let Some(url) = support::database_url("a_crash_between_publish_and_mark") else {
        return;
    };
    let (_clock, shared) = support::manual();
    let (store, guard) = support::pg_store(&url, shared.clone(), 4).await;
    // The relay that dies runs in its own "process" (its own pool).
    let doomed = support::pg_connect(&url, &guard.schema, shared, 4).await;
    for n in 0..10 {
        let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
        uow.publish(&[event(n % 3, n)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
    // First relay publishes a batch, then "dies" before marking it.
    let dying = Arc::new(Recorder {
        hang_first: true,
        ..Recorder::default()
    });
    let stop = CancellationToken::new();
    let first = Relay::new(
        PgRelaySource::new(doomed.clone(), lease("a")),
        dying.clone(),
        config(),
    )
    .spawn(stop.clone());
    dying.wait_for(10).await;
    first.abort();
    let _ = first.await;
    // Its connections go away with it: the server rolls its claim back.
    doomed.close().await;
    // Restarted under the same name, it publishes the rows again.
    let recorder = Arc::new(Recorder::default());
    let second = Relay::new(
        PgRelaySource::new(store.clone(), lease("a")),
        recorder.clone(),
        config(),
    )
    .spawn(stop.clone());
    recorder.wait_for(10).await;
    stop.cancel();
    second
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));

    // A consumer receives both deliveries of every event; its inbox keeps one effect each.
    let mut effects = 0;
    for delivery in dying.seen().iter().chain(recorder.seen().iter()) {
        let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
        if uow
            .mark_inbox("consumer", delivery.event_id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        {
            effects += 1;
            uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    assert_eq!(
        dying.seen().len() + recorder.seen().len(),
        20,
        "every row went out twice"
    );
    assert_eq!(effects, 10, "the inbox absorbed the repeats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_relays_partitions_are_taken_over_after_its_lease_ends() {
    let Some(url) = support::database_url("lease_takeover") else {
        return;
    };
    let (clock, shared) = support::manual();
    let (store, _guard) = support::pg_store(&url, shared, 16).await;
    let a = Leases::new(
        &store,
        LeaseConfig {
            ttl: Duration::from_secs(10),
            ..lease("a")
        },
    );
    let b = Leases::new(
        &store,
        LeaseConfig {
            ttl: Duration::from_secs(10),
            ..lease("b")
        },
    );
    a.rebalance().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.owned().len(), 16, "a lone relay takes every partition");
    b.rebalance().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(b.owned().is_empty(), "live leases are not taken");
    a.rebalance().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        a.owned().len(),
        8,
        "with two live relays a gives up its surplus"
    );
    b.rebalance().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.owned().len(), 8, "b takes the released half");
    let overlap: Vec<_> = a
        .owned()
        .into_iter()
        .filter(|p| b.owned().contains(p))
        .collect();
    assert!(
        overlap.is_empty(),
        "no partition has two owners: {overlap:?}"
    );

    // a dies (no renewal); before its lease ends nothing moves, after it b takes all.
    clock.advance(chrono::Duration::seconds(9));
    b.rebalance().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.owned().len(), 8, "a's leases still run");
    clock.advance(chrono::Duration::seconds(2));
    b.rebalance().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.owned().len(),
        16,
        "b took over a's partitions after its lease ended"
    );
}

/// A commit tells relays in other processes (`NOTIFY`) only when it appended to a partition
/// no relay of its own process holds; those of its process are woken directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_goes_out_only_for_partitions_held_elsewhere() {
    let Some(url) = support::database_url("notify_goes_out_only_for_partitions_held_elsewhere")
    else {
        return;
    };
    let (_clock, shared) = support::manual();
    let (store, _guard) = support::pg_store(&url, shared, 4).await;
    let mut listener = sqlx::postgres::PgListener::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    listener
        .listen(store.channel())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let produce = |n: usize| commit_one(&store, n % 4, n);
    // Nothing here holds a partition: the commit must reach relays elsewhere.
    produce(0).await;
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap_or_else(|_| panic!("no NOTIFY for a partition nobody here holds"))
        .unwrap_or_else(|e| panic!("{e}"));

    // A relay of this process takes every partition: commits wake it directly.
    let leases = Leases::new(&store, lease("local"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while leases.owned().len() < usize::from(store.partitions()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never held every partition"
        );
        leases.maintain().await.unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Whatever was still on its way from before.
    while tokio::time::timeout(Duration::from_millis(100), listener.recv())
        .await
        .is_ok()
    {}
    for n in 1..20 {
        produce(n).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.recv())
            .await
            .is_err(),
        "a NOTIFY went out although a relay of this process holds every partition"
    );

    // The relay is gone: commits must reach relays elsewhere again.
    drop(leases);
    produce(20).await;
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap_or_else(|_| panic!("no NOTIFY after the local relay stopped"))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The notifier keeps a connection of its own; closing the store must not wait for its next
/// `NOTIFY` (here an hour away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_closes_while_its_notifier_waits() {
    let Some(url) = support::database_url("a_store_closes_while_its_notifier_waits") else {
        return;
    };
    let (store, _guard) =
        support::pg_store_with(&url, |o| o.with_notify_gap(Duration::from_secs(3600))).await;
    for n in 0..3 {
        let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
        uow.publish(&[event(n, n)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(10), store.close())
        .await
        .unwrap_or_else(|_| panic!("the store did not close: its notifier held a connection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_relay_vacuums_the_outbox_as_it_claims() {
    let Some(url) = support::database_url("a_postgres_relay_vacuums_the_outbox_as_it_claims")
    else {
        return;
    };
    let (_clock, shared) = support::manual();
    let (store, guard) = support::pg_store(&url, shared, 4).await;
    let vacuums = || async {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'outbox'",
        )
        .bind(&guard.schema)
        .fetch_optional(store.read_pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        n.unwrap_or(0)
    };
    assert_eq!(vacuums().await, 0, "a fresh table was never vacuumed");
    let recorder = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let relay = Relay::new(
        PgRelaySource::new(store.clone(), lease("a")).with_vacuum_every(50),
        recorder.clone(),
        config(),
    );
    let handle = relay.spawn(stop.clone());
    let total = 200;
    for n in 0..total {
        let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
        uow.publish(&[event(n % 7, n)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
    recorder.wait_for(total).await;
    // After its first claim, then after every 50 claimed rows (one at a time: a claim while a
    // vacuum runs only counts), so at least twice for 200 rows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while vacuums().await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay vacuumed the outbox {} times for {total} claimed rows",
            vacuums().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    handle
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ordered_once(&recorder.seen(), total);
}

/// Waits (bounded) until a connection of the database runs `LISTEN "channel"`.
async fn wait_for_listen(url: &str, channel: &str) {
    let pool = sqlx::PgPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = format!("LISTEN \"{channel}\"");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE query = $1")
            .bind(&text)
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if n > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody listens on {channel}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;
    // Let the listener's first wake-up (sent on every connect) be taken.
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// Whether a notification arrives on `listener` within `wait`.
async fn heard(listener: &mut sqlx::postgres::PgListener, wait: Duration) -> bool {
    match tokio::time::timeout(wait, listener.recv()).await {
        Ok(n) => {
            n.unwrap_or_else(|e| panic!("{e}"));
            true
        }
        Err(_) => false,
    }
}

/// A store in a fresh schema with the given idle wait, a listener on its outbox channel, and
/// the store's notifier listening for idle reports (after one commit and its `NOTIFY`,
/// heard here; the notifier is armed again when its listener connects).
async fn held_store(
    url: &str,
    idle_wait: Duration,
) -> (
    saga_outbox::postgres::PgStore,
    support::SchemaGuard,
    sqlx::postgres::PgListener,
) {
    let (store, guard) =
        support::pg_store_with(url, |o| o.with_partitions(4).with_idle_wait(idle_wait)).await;
    let mut listener = sqlx::postgres::PgListener::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    listener
        .listen(store.channel())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The notifier listens for idle reports from its first NOTIFY on: one commit starts it.
    commit_one(&store, 0, usize::MAX).await;
    assert!(
        heard(&mut listener, Duration::from_secs(5)).await,
        "the first commit notifies"
    );
    wait_for_listen(url, &store.idle_channel()).await;
    (store, guard, listener)
}

/// After a `NOTIFY`, commits hold theirs back until a relay elsewhere reports idle; the
/// report brings one `NOTIFY` for what was committed meanwhile, and with nothing pending
/// the next commit notifies at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_hold_their_notify_until_a_relay_reports_idle() {
    let Some(url) = support::database_url("commits_hold_their_notify_until_a_relay_reports_idle")
    else {
        return;
    };
    // Only a report re-arms here.
    let (store, _guard, mut listener) = held_store(&url, Duration::from_secs(3600)).await;
    let produce = |n: usize| commit_one(&store, n % 4, n);
    let report_idle = || {
        let (url, channel) = (url.clone(), store.idle_channel());
        async move {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(channel)
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(5);

    produce(0).await;
    assert!(
        heard(&mut listener, long).await,
        "the first commit notifies"
    );
    for n in 1..10 {
        produce(n).await;
    }
    assert!(
        !heard(&mut listener, short).await,
        "commits notified while the relay had not reported idle"
    );
    report_idle().await;
    assert!(
        heard(&mut listener, long).await,
        "the report brings a NOTIFY for the commits made meanwhile"
    );
    assert!(!heard(&mut listener, short).await, "one NOTIFY covers them");
    report_idle().await;
    assert!(
        !heard(&mut listener, short).await,
        "a report with nothing pending sends nothing"
    );
    produce(10).await;
    assert!(
        heard(&mut listener, long).await,
        "after a report with nothing pending, the next commit notifies at once"
    );
}

/// Without a report, the hold ends after the idle wait: a relay that never reports (an
/// older version, or one that died) still hears of every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_ends_after_the_idle_wait() {
    let Some(url) = support::database_url("a_hold_ends_after_the_idle_wait") else {
        return;
    };
    let (store, _guard, mut listener) = held_store(&url, Duration::from_millis(400)).await;
    for n in 0..2 {
        commit_one(&store, n, n).await;
    }
    assert!(heard(&mut listener, Duration::from_secs(5)).await);
    assert!(
        heard(&mut listener, Duration::from_secs(5)).await,
        "the commit held back was never notified"
    );
}

/// A relay in another store (another process) woken by `NOTIFY`s publishes every commit of
/// producers that hold their `NOTIFY`s back while it drains, with no fallback poll and no
/// end to the hold but its idle reports: a hole in the hand-over would leave an event
/// unpublished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_elsewhere_publishes_every_commit_of_producers_that_hold_back() {
    let Some(url) = support::database_url(
        "a_relay_elsewhere_publishes_every_commit_of_producers_that_hold_back",
    ) else {
        return;
    };
    let (_clock, shared) = support::manual();
    let (producer, guard) = support::pg_store_with(&url, |o| {
        o.with_partitions(4)
            .with_clock(shared.clone())
            .with_idle_wait(Duration::from_secs(3600))
    })
    .await;
    let relay_store = support::pg_connect(&url, &guard.schema, shared, 4).await;
    let mut reports = sqlx::postgres::PgListener::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    reports
        .listen(&relay_store.idle_channel())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let source = PgRelaySource::new(relay_store.clone(), lease("elsewhere"));
    let leases = source.leases().clone();
    let recorder = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let relay = Relay::new(
        source,
        recorder.clone(),
        RelayConfig {
            batch_size: 50,
            poll_interval: Duration::from_secs(3600),
            ..RelayConfig::default()
        },
    );
    let handle = relay.spawn(stop.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while leases.owned().len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never held every partition"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The producer's notifier starts listening for reports with its first NOTIFY, early in
    // the run; before that it does not hold back.

    let (tasks, per) = (4, 60);
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let producer = producer.clone();
        set.spawn(async move {
            for i in 0..per {
                let n = t * per + i;
                let mut uow = producer.begin().await.unwrap_or_else(|e| panic!("{e}"));
                // Two aggregates per task: each one's events are committed in `n` order.
                uow.publish(&[event(t + tasks * (i % 2), n)])
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
                // Gaps of 0-3 ms: the relay goes idle between some commits, not others.
                tokio::time::sleep(Duration::from_micros(((n * 7919) % 3000) as u64)).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
    recorder.wait_for(tasks * per).await;
    assert!(
        heard(&mut reports, Duration::from_secs(5)).await,
        "the relay never reported idle"
    );
    stop.cancel();
    handle
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ordered_once(&recorder.seen(), tasks * per);
    producer.close().await;
    relay_store.close().await;
}

/// `live_relays` names the relays whose heartbeat holds, and forgets one that left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_relays_counts_heartbeating_relays() {
    let Some(url) = support::database_url("live_relays_counts_heartbeating_relays") else {
        return;
    };
    let (clock, shared) = support::manual();
    let (store, _guard) = support::pg_store(&url, shared, 4).await;
    let live = || async { store.live_relays().await.unwrap_or_else(|e| panic!("{e}")) };
    assert!(live().await.is_empty(), "no relay yet");
    let a = Leases::new(&store, lease("a"));
    let b = Leases::new(&store, lease("b"));
    a.maintain().await.unwrap_or_else(|e| panic!("{e}"));
    b.maintain().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(live().await, ["a", "b"]);
    b.release_all().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(live().await, ["a"], "a relay that left is not counted");
    // A relay that stops renewing is counted until its heartbeat runs out.
    clock.advance(chrono::Duration::seconds(31));
    assert!(
        live().await.is_empty(),
        "an expired heartbeat is not counted"
    );
}

/// The notifier's listening connection does not come out of the store's pool: a store of two
/// connections, one held by a relay's `LISTEN`, still commits while its notifier listens for
/// idle reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifiers_listener_leaves_the_pool_to_producers() {
    let Some(url) = support::database_url("the_notifiers_listener_leaves_the_pool_to_producers")
    else {
        return;
    };
    let (store, _guard) =
        support::pg_store_with(&url, |o| o.with_partitions(4).with_max_connections(2)).await;
    // A relay source whose leases are never taken: its LISTEN holds a pool connection and
    // every commit needs a NOTIFY.
    let _source = PgRelaySource::new(store.clone(), lease("idle"));
    tokio::time::timeout(Duration::from_secs(10), async {
        for n in 0..10 {
            commit_one(&store, n % 4, n).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("commits stalled: the pool ran out of connections"));
    store.close().await;
}
