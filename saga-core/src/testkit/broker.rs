//! The broker conformance suite: routing, competing consumers, redelivery, retry delay, dead
//! letters, per-key order, parking and replay, removing a subscription, checked the same way
//! on every adapter.
//!
//! An adapter's test file is one macro call with an async factory:
//!
//! ```
//! use std::sync::Arc;
//! use saga_core::SystemClock;
//! use saga_core::memory::MemoryDeadLetterStore;
//! use saga_core::broker::DeadLetterReplay;
//! use saga_core::memory::MemoryBroker;
//! use saga_core::testkit::broker::{BrokerFeatures, TestBroker};
//!
//! async fn broker() -> TestBroker {
//!     let broker = MemoryBroker::new(Arc::new(MemoryDeadLetterStore::default()), Arc::new(SystemClock));
//!     TestBroker {
//!         publisher: Arc::new(broker.clone()),
//!         subscriber: Arc::new(broker.clone()),
//!         dead_letters: broker.dead_letters().clone(),
//!         replay: Some(Arc::new(broker) as Arc<dyn DeadLetterReplay>),
//!         // An adapter switches off what it cannot do, e.g.
//!         // `BrokerFeatures { parks_poison_keys: false, ..BrokerFeatures::full() }`;
//!         // the cases needing it then print SKIPPED.
//!         features: BrokerFeatures::full(),
//!     }
//! }
//!
//! saga_core::broker_conformance_tests!(broker);
//! # fn main() {}
//! ```
//!
//! Every case calls the factory once. Cases use their own subscription names and event types
//! (a fresh id in each, `t<id>.order.placed`), so they can run in parallel on one real broker.
//! Every wait is bounded by [`BrokerFeatures::timeout`] and fails with a message saying what
//! did not arrive. A check that something does *not* arrive waits
//! [`BrokerFeatures::quiet_period`]: that is a negative check, never synchronisation.
//! A case the adapter cannot support (see [`BrokerFeatures`]) passes after printing
//! `SKIPPED <case>: <reason>`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use uuid::Uuid;

use crate::broker::DeadLetterReplay;
use crate::broker::{Delivery, DeliveryStream, Publisher, Settled, Subscriber, Subscription};
use crate::dead_letter::{DeadLetter, DeadLetterFilter, DeadLetterStore};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::handler::HandlerError;
use crate::retry::RetryPolicy;

#[doc(hidden)]
pub use tokio as __tokio;

/// What an adapter guarantees; cases needing a missing guarantee are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFeatures {
    /// Ordered subscriptions keep at most one message per `aggregate_id` in flight, in publish
    /// order, also across competing consumers and retries.
    pub per_key_order: bool,
    /// A dead-lettered message of an ordered subscription holds back the later messages of its
    /// key until it is replayed or discarded.
    pub parks_poison_keys: bool,
    /// A message whose consumer went away without settling it is delivered again, as a new
    /// attempt.
    pub redelivers_on_drop: bool,
    /// A subscription keeps collecting messages while no consumer is attached.
    pub durable: bool,
    /// [`TestBroker::replay`] can replay and discard dead letters.
    pub supports_replay: bool,
    /// The bound on every wait for something that should arrive.
    pub timeout: Duration,
    /// How long a negative check ("nothing more arrives") watches.
    pub quiet_period: Duration,
}

impl BrokerFeatures {
    /// Every guarantee, a 10 s timeout and a 200 ms quiet period.
    pub fn full() -> Self {
        Self {
            per_key_order: true,
            parks_poison_keys: true,
            redelivers_on_drop: true,
            durable: true,
            supports_replay: true,
            timeout: Duration::from_secs(10),
            quiet_period: Duration::from_millis(200),
        }
    }

    /// No optional guarantee: only the cases every broker must pass run.
    pub fn minimal() -> Self {
        Self {
            per_key_order: false,
            parks_poison_keys: false,
            redelivers_on_drop: false,
            durable: false,
            supports_replay: false,
            ..Self::full()
        }
    }
}

/// The adapter under test, as one case sees it.
#[derive(Clone)]
pub struct TestBroker {
    /// Publishes to the broker.
    pub publisher: Arc<dyn Publisher>,
    /// Subscribes to the same broker.
    pub subscriber: Arc<dyn Subscriber>,
    /// Where the broker's dead letters land.
    pub dead_letters: Arc<dyn DeadLetterStore>,
    /// Replays and discards dead letters, unparking keys; `None` if the adapter cannot.
    pub replay: Option<Arc<dyn DeadLetterReplay>>,
    /// What the adapter guarantees.
    pub features: BrokerFeatures,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("features", &self.features)
            .field("replay", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}

/// Runs one case on a fresh multi-threaded runtime with two workers; used by
/// [`broker_conformance_tests!`](crate::broker_conformance_tests).
#[doc(hidden)]
pub fn run_case(case: impl Future<Output = ()>) {
    match __tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(case),
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    }
}

/// Expands to one test per case of this suite, each calling `factory().await` for a
/// [`TestBroker`].
///
/// The tests land in a module `broker_conformance` (`use super::*` inside), so `factory` is a
/// function name in scope where the macro is called, or an absolute path (`crate::...`).
/// For a broker on a server, pass `harness: EXPR` instead, a
/// [`Harness`](crate::testkit::harness::Harness) that can skip a case (no server configured)
/// and removes the case's exchange or stream afterwards, also after a panic.
/// Each runs on its own multi-threaded tokio runtime with two workers; the calling crate needs
/// only `saga-core` with the `testkit` feature.
#[macro_export]
macro_rules! broker_conformance_tests {
    (harness: $harness:expr $(,)?) => {
        $crate::broker_conformance_tests!(@cases $harness;
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
            removed_subscription_is_gone,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        #[allow(unused_imports)]
        mod broker_conformance {
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::testkit::harness::run::<$crate::testkit::broker::TestBroker, _, _, _>(
                        stringify!($case),
                        $harness,
                        $crate::testkit::broker::$case,
                    );
                }
            )*
        }
    };
    ($factory:path) => {
        $crate::broker_conformance_tests!(harness: $crate::testkit::harness::Factory($factory));
    };
}

/// One case's names, ids and bounded waits.
struct Ctx {
    b: TestBroker,
    case: &'static str,
    run: String,
}

impl Ctx {
    fn new(case: &'static str, b: TestBroker) -> Self {
        Self {
            b,
            case,
            run: Uuid::now_v7().simple().to_string(),
        }
    }

    /// Prints why the case is skipped, if `supported` is false; true if it should run.
    fn supports(&self, supported: bool, reason: &str) -> bool {
        if !supported {
            eprintln!("SKIPPED {}: {reason}", self.case);
        }
        supported
    }

    /// An event type private to this run: `t<run>.<rest>`.
    fn topic(&self, rest: &str) -> String {
        format!("t{}.{rest}", self.run)
    }

    /// A subscription name private to this run.
    fn name(&self, what: &str) -> String {
        format!("{}-{what}-{}", self.case, self.run)
    }

    /// An aggregate id private to this run.
    fn key(&self, what: &str) -> String {
        format!("{what}-{}", self.run)
    }

    fn envelope(&self, rest: &str, key: &str, seq: usize) -> Envelope {
        Envelope::new(
            self.topic(rest),
            key,
            serde_json::json!({ "key": key, "seq": seq }),
        )
    }

    async fn subscribe(&self, sub: &Subscription) -> DeliveryStream {
        match self.b.subscriber.subscribe(sub).await {
            Ok(stream) => stream,
            Err(e) => panic!("{}: subscribe to `{}` failed: {e}", self.case, sub.name),
        }
    }

    async fn publish(&self, batch: &[Envelope]) {
        if let Err(e) = self.b.publisher.publish(batch).await {
            panic!(
                "{}: publishing {} messages failed: {e}",
                self.case,
                batch.len()
            );
        }
    }

    async fn recv(&self, stream: &mut DeliveryStream, what: &str) -> Delivery {
        recv(stream, self.b.features.timeout, self.case, what).await
    }

    /// Negative check: nothing arrives on `stream` within the quiet period.
    async fn quiet(&self, stream: &mut DeliveryStream, what: &str) {
        let quiet = self.b.features.quiet_period;
        match __tokio::time::timeout(quiet, stream.next()).await {
            Err(_) => {}
            Ok(Some(Ok(d))) => panic!(
                "{}: {what}: expected nothing, got `{}` (attempt {}, key `{}`)",
                self.case, d.envelope.event_type, d.attempt, d.envelope.aggregate_id
            ),
            Ok(Some(Err(e))) => panic!("{}: {what}: the stream failed: {e}", self.case),
            Ok(None) => panic!("{}: {what}: the stream ended", self.case),
        }
    }

    async fn ack(&self, d: Delivery) {
        if let Err(e) = d.ack().await {
            panic!("{}: ack failed: {e}", self.case);
        }
    }

    async fn retry(&self, d: Delivery, delay: Duration) {
        if let Err(e) = d.retry(delay).await {
            panic!("{}: retry failed: {e}", self.case);
        }
    }

    async fn letters(&self, subscription: &str) -> Vec<DeadLetter> {
        let filter = DeadLetterFilter {
            subscription: Some(subscription.to_owned()),
            ..DeadLetterFilter::default()
        };
        match self.b.dead_letters.list(&filter).await {
            Ok(letters) => letters,
            Err(e) => panic!("{}: listing dead letters failed: {e}", self.case),
        }
    }

    /// The only dead letter of `subscription`.
    async fn only_letter(&self, subscription: &str) -> DeadLetter {
        let mut letters = self.letters(subscription).await;
        assert_eq!(
            letters.len(),
            1,
            "{}: expected one dead letter for `{subscription}`, found {letters:?}",
            self.case
        );
        letters.remove(0)
    }
}

async fn recv(stream: &mut DeliveryStream, timeout: Duration, case: &str, what: &str) -> Delivery {
    match __tokio::time::timeout(timeout, stream.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("{case}: waiting for {what}: the stream failed: {e}"),
        Ok(None) => panic!("{case}: waiting for {what}: the stream ended"),
        Err(_) => panic!("{case}: waiting for {what}: nothing arrived within {timeout:?}"),
    }
}

fn seq_of(d: &Delivery) -> u64 {
    d.envelope.payload["seq"].as_u64().unwrap_or(u64::MAX)
}

/// `*` matches one word, `#` any number; each subscription gets exactly the matching messages.
pub async fn routing_star_and_hash(b: TestBroker) {
    let c = Ctx::new("routing_star_and_hash", b);
    let subs = [
        ("order-star", c.topic("order.*")),
        ("everything", c.topic("#")),
        ("payment-hash", c.topic("payment.#")),
        ("nothing", c.topic("shipping.*.done")),
    ];
    let mut streams = Vec::new();
    for (what, pattern) in &subs {
        let name = c.name(what);
        streams.push(
            c.subscribe(&Subscription::new(name, [pattern.clone()]))
                .await,
        );
    }
    let published = [
        "order.placed",
        "order.item.added",
        "payment",
        "payment.refund.requested",
        "shipping.sent",
    ];
    let batch: Vec<Envelope> = published
        .iter()
        .enumerate()
        .map(|(i, t)| c.envelope(t, "k", i))
        .collect();
    c.publish(&batch).await;

    let expected: [&[&str]; 4] = [
        &["order.placed"],
        &published,
        &["payment", "payment.refund.requested"],
        &[],
    ];
    for ((stream, (what, pattern)), want) in streams.iter_mut().zip(&subs).zip(expected) {
        let mut got = BTreeSet::new();
        for _ in 0..want.len() {
            let d = c.recv(stream, &format!("a message for `{pattern}`")).await;
            got.insert(d.envelope.event_type.clone());
            c.ack(d).await;
        }
        let want: BTreeSet<String> = want.iter().map(|t| c.topic(t)).collect();
        assert_eq!(got, want, "{}: `{what}` ({pattern}) got", c.case);
        c.quiet(stream, &format!("`{pattern}` after its matches"))
            .await;
    }
}

/// Two subscription names on one pattern each receive every message.
pub async fn fan_out_each_subscription_gets_all(b: TestBroker) {
    let c = Ctx::new("fan_out_each_subscription_gets_all", b);
    let pattern = c.topic("order.*");
    let mut one = c
        .subscribe(&Subscription::new(c.name("one"), [pattern.clone()]))
        .await;
    let mut two = c
        .subscribe(&Subscription::new(c.name("two"), [pattern]))
        .await;
    let batch: Vec<Envelope> = (0..10)
        .map(|i| c.envelope("order.placed", &c.key("o"), i))
        .collect();
    c.publish(&batch).await;
    let want: BTreeSet<Uuid> = batch.iter().map(|e| e.event_id).collect();
    for (stream, what) in [(&mut one, "one"), (&mut two, "two")] {
        let mut got = BTreeSet::new();
        for _ in 0..batch.len() {
            let d = c.recv(stream, &format!("fan-out to `{what}`")).await;
            got.insert(d.envelope.event_id);
            c.ack(d).await;
        }
        assert_eq!(got, want, "{}: subscription `{what}` got", c.case);
        c.quiet(stream, &format!("`{what}` after all messages"))
            .await;
    }
}

/// Two subscribers of one name: every message is delivered exactly once in total.
pub async fn competing_consumers_deliver_each_message_once(b: TestBroker) {
    const N: usize = 200;
    let c = Ctx::new("competing_consumers_deliver_each_message_once", b);
    let sub = Subscription::new(c.name("workers"), [c.topic("job.*")]).with_prefetch(8);
    let (tx, mut rx) = __tokio::sync::mpsc::unbounded_channel::<(usize, Uuid)>();
    let mut workers = Vec::new();
    for worker in 0..2 {
        let mut stream = c.subscribe(&sub).await;
        let tx = tx.clone();
        workers.push(__tokio::spawn(async move {
            while let Some(Ok(d)) = stream.next().await {
                let id = d.envelope.event_id;
                if d.ack().await.is_err() || tx.send((worker, id)).is_err() {
                    break;
                }
            }
        }));
    }
    let batch: Vec<Envelope> = (0..N)
        .map(|i| c.envelope("job.run", &c.key(&format!("j{i}")), i))
        .collect();
    c.publish(&batch).await;

    let mut per_worker = [0usize; 2];
    let mut got = BTreeSet::new();
    for i in 0..N {
        let next = __tokio::time::timeout(c.b.features.timeout, rx.recv()).await;
        let Ok(Some((worker, id))) = next else {
            panic!("{}: only {i} of {N} messages arrived", c.case);
        };
        assert!(got.insert(id), "{}: message {id} delivered twice", c.case);
        per_worker[worker] += 1;
    }
    // Negative check: no message arrives a second time.
    let extra = __tokio::time::timeout(c.b.features.quiet_period, rx.recv()).await;
    workers.iter().for_each(|w| w.abort());
    if let Ok(Some((_, id))) = extra {
        panic!("{}: message {id} delivered again", c.case);
    }
    let want: BTreeSet<Uuid> = batch.iter().map(|e| e.event_id).collect();
    assert_eq!(got, want, "{}", c.case);
    eprintln!("{}: deliveries per worker {per_worker:?}", c.case);
}

/// With prefetch 1, a subscriber holding an unsettled delivery gets nothing more; its
/// competitor gets the rest.
pub async fn prefetch_bounds_unsettled_deliveries(b: TestBroker) {
    let c = Ctx::new("prefetch_bounds_unsettled_deliveries", b);
    let sub = Subscription::new(c.name("workers"), [c.topic("job.*")]).with_prefetch(1);
    let mut holder = c.subscribe(&sub).await;
    let mut worker = c.subscribe(&sub).await;
    let batch: Vec<Envelope> = (0..5)
        .map(|i| c.envelope("job.run", &c.key(&format!("j{i}")), i))
        .collect();
    c.publish(&batch).await;

    let held = c.recv(&mut holder, "the held delivery").await;
    // Messages are waiting, but the holder is at its limit.
    c.quiet(&mut holder, "the holder at its prefetch limit")
        .await;
    let mut got = BTreeSet::from([held.envelope.event_id]);
    for _ in 1..batch.len() {
        let d = c
            .recv(
                &mut worker,
                "the competitor's delivery while the other holds one",
            )
            .await;
        assert!(got.insert(d.envelope.event_id), "{}: duplicate", c.case);
        c.ack(d).await;
    }
    c.ack(held).await;
    c.quiet(&mut holder, "the holder after everything was handled")
        .await;
    let want: BTreeSet<Uuid> = batch.iter().map(|e| e.event_id).collect();
    assert_eq!(got, want, "{}", c.case);
}

/// A consumer that dies holding an unsettled delivery: the message comes again, attempt 2.
pub async fn redelivers_after_consumer_drops_unsettled(b: TestBroker) {
    let c = Ctx::new("redelivers_after_consumer_drops_unsettled", b);
    if !c.supports(
        c.b.features.redelivers_on_drop,
        "the adapter does not redeliver unsettled messages",
    ) {
        return;
    }
    let sub = Subscription::new(c.name("crashy"), [c.topic("order.*")]);
    let mut first = c.subscribe(&sub).await;
    let msg = c.envelope("order.placed", &c.key("o"), 0);
    c.publish(std::slice::from_ref(&msg)).await;
    let d = c.recv(&mut first, "the first delivery").await;
    assert_eq!(d.attempt, 1, "{}: first attempt", c.case);
    drop(d);
    drop(first);

    let mut second = c.subscribe(&sub).await;
    let again = c.recv(&mut second, "the redelivery").await;
    assert_eq!(again.envelope.event_id, msg.event_id, "{}", c.case);
    assert_eq!(again.attempt, 2, "{}: redelivery attempt", c.case);
    c.ack(again).await;
    c.quiet(&mut second, "after the acked redelivery").await;
}

/// A retried message comes back no earlier than the delay asked; others are not held up.
pub async fn retry_delay_is_honoured(b: TestBroker) {
    let c = Ctx::new("retry_delay_is_honoured", b);
    let delay = Duration::from_millis(300);
    let mut stream = c
        .subscribe(&Subscription::new(c.name("retry"), [c.topic("order.*")]))
        .await;
    let batch = [
        c.envelope("order.placed", &c.key("a"), 0),
        c.envelope("order.placed", &c.key("b"), 1),
    ];
    c.publish(&batch).await;
    let first = c.recv(&mut stream, "the first message").await;
    let retried = first.envelope.event_id;
    let asked = __tokio::time::Instant::now();
    c.retry(first, delay).await;

    let other = c
        .recv(&mut stream, "the other message during the retry delay")
        .await;
    assert_ne!(
        other.envelope.event_id, retried,
        "{}: the retried message came back before the other one",
        c.case
    );
    c.ack(other).await;

    let again = c.recv(&mut stream, "the retried message").await;
    let waited = asked.elapsed();
    assert_eq!(again.envelope.event_id, retried, "{}", c.case);
    assert_eq!(again.attempt, 2, "{}: attempt after retry", c.case);
    assert!(
        waited >= delay,
        "{}: redelivered after {waited:?}, asked for {delay:?}",
        c.case
    );
    c.ack(again).await;
}

/// Transient failures retry until the policy's limit (3), then the message is dead-lettered
/// with reason, attempts and last error.
pub async fn dead_letter_after_attempt_limit(b: TestBroker) {
    let c = Ctx::new("dead_letter_after_attempt_limit", b);
    let name = c.name("flaky");
    let policy = RetryPolicy::default()
        .with_max_attempts(3)
        .with_initial_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(50))
        .without_jitter();
    let mut stream = c
        .subscribe(&Subscription::new(name.clone(), [c.topic("order.*")]))
        .await;
    let msg = c.envelope("order.placed", &c.key("o"), 0);
    c.publish(std::slice::from_ref(&msg)).await;

    let mut reason = String::new();
    for attempt in 1..=3 {
        let d = c.recv(&mut stream, &format!("attempt {attempt}")).await;
        assert_eq!(d.attempt, attempt, "{}: attempt number", c.case);
        assert_eq!(d.envelope.event_id, msg.event_id, "{}", c.case);
        let settled = d
            .settle(Err(HandlerError::transient("boom")), &policy)
            .await;
        match (attempt, settled) {
            (1 | 2, Ok(Settled::Retried(_))) => {}
            (3, Ok(Settled::DeadLettered(r))) => reason = r,
            (_, other) => panic!("{}: attempt {attempt} settled as {other:?}", c.case),
        }
    }
    c.quiet(&mut stream, "after the dead letter").await;
    let letter = c.only_letter(&name).await;
    assert_eq!(letter.envelope.event_id, msg.event_id, "{}", c.case);
    assert_eq!(letter.subscription, name, "{}", c.case);
    assert_eq!(letter.attempts, 3, "{}: attempts", c.case);
    assert_eq!(letter.reason, reason, "{}: reason", c.case);
    assert_eq!(
        letter.last_error.as_deref(),
        Some("transient: boom"),
        "{}: last error",
        c.case
    );
}

/// A permanent failure dead-letters on the first attempt.
pub async fn permanent_error_dead_letters_at_once(b: TestBroker) {
    let c = Ctx::new("permanent_error_dead_letters_at_once", b);
    let name = c.name("strict");
    let mut stream = c
        .subscribe(&Subscription::new(name.clone(), [c.topic("order.*")]))
        .await;
    let msg = c.envelope("order.placed", &c.key("o"), 0);
    c.publish(std::slice::from_ref(&msg)).await;
    let d = c.recv(&mut stream, "the message").await;
    let settled = d
        .settle(
            Err(HandlerError::permanent("negative total")),
            &RetryPolicy::default(),
        )
        .await;
    assert!(
        matches!(settled, Ok(Settled::DeadLettered(_))),
        "{}: settled as {settled:?}",
        c.case
    );
    c.quiet(&mut stream, "after a permanent error").await;
    let letter = c.only_letter(&name).await;
    assert_eq!(letter.attempts, 1, "{}: attempts", c.case);
    assert_eq!(letter.envelope.event_id, msg.event_id, "{}", c.case);
    assert!(
        letter.reason.contains("negative total"),
        "{}: reason `{}`",
        c.case,
        letter.reason
    );
    assert_eq!(
        letter.last_error.as_deref(),
        Some("permanent: negative total"),
        "{}",
        c.case
    );
}

/// An unordered subscription never parks: the next message of the same key still flows.
pub async fn unordered_dead_letter_does_not_park(b: TestBroker) {
    let c = Ctx::new("unordered_dead_letter_does_not_park", b);
    let mut stream = c
        .subscribe(&Subscription::new(c.name("loose"), [c.topic("order.*")]))
        .await;
    let key = c.key("o");
    let batch = [
        c.envelope("order.placed", &key, 0),
        c.envelope("order.placed", &key, 1),
    ];
    c.publish(&batch).await;
    let first = c.recv(&mut stream, "the first message").await;
    let poisoned = first.envelope.event_id;
    if let Err(e) = first.dead_letter("poison", None).await {
        panic!("{}: dead_letter failed: {e}", c.case);
    }
    let next = c.recv(&mut stream, "the same key's next message").await;
    assert_ne!(next.envelope.event_id, poisoned, "{}", c.case);
    c.ack(next).await;
}

/// Ordered subscription, two consumers, 3 keys x 20 messages, some retried: each key is
/// handled in publish order.
pub async fn per_key_order_is_kept(b: TestBroker) {
    const KEYS: usize = 3;
    const PER_KEY: usize = 20;
    let c = Ctx::new("per_key_order_is_kept", b);
    if !c.supports(c.b.features.per_key_order, "no per-key order") {
        return;
    }
    let sub = Subscription::new(c.name("ordered"), [c.topic("account.*")])
        .ordered()
        .with_prefetch(4);
    let (tx, mut rx) = __tokio::sync::mpsc::unbounded_channel::<(String, u64)>();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut stream = c.subscribe(&sub).await;
        let tx = tx.clone();
        workers.push(__tokio::spawn(async move {
            while let Some(Ok(d)) = stream.next().await {
                let seq = seq_of(&d);
                if d.attempt == 1 && seq % 7 == 3 {
                    // Fails once: the retry must stay ahead of the key's later messages.
                    if d.retry(Duration::from_millis(20)).await.is_err() {
                        break;
                    }
                    continue;
                }
                // Recorded before the ack: the key's next message is not delivered until then.
                if tx.send((d.envelope.aggregate_id.clone(), seq)).is_err() {
                    break;
                }
                if d.ack().await.is_err() {
                    break;
                }
            }
        }));
    }
    let keys: Vec<String> = (0..KEYS).map(|k| c.key(&format!("acct{k}"))).collect();
    let all: Vec<Envelope> = (0..PER_KEY)
        .flat_map(|seq| keys.iter().map(move |k| (k, seq)))
        .map(|(k, seq)| c.envelope("account.changed", k, seq))
        .collect();
    for batch in all.chunks(7) {
        c.publish(batch).await;
    }

    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..all.len() {
        let next = __tokio::time::timeout(c.b.features.timeout, rx.recv()).await;
        let Ok(Some((key, seq))) = next else {
            panic!("{}: only {i} of {} messages arrived", c.case, all.len());
        };
        seen.entry(key).or_default().push(seq);
    }
    workers.iter().for_each(|w| w.abort());
    let want: Vec<u64> = (0..PER_KEY as u64).collect();
    for key in &keys {
        assert_eq!(
            seen.get(key),
            Some(&want),
            "{}: order of key `{key}`",
            c.case
        );
    }
}

/// On an ordered subscription a retried message stays ahead of its key's later messages.
pub async fn ordered_retry_keeps_the_key_head(b: TestBroker) {
    let c = Ctx::new("ordered_retry_keeps_the_key_head", b);
    if !c.supports(c.b.features.per_key_order, "no per-key order") {
        return;
    }
    let mut stream = c
        .subscribe(&Subscription::new(c.name("ordered"), [c.topic("account.*")]).ordered())
        .await;
    let key = c.key("acct");
    let batch = [
        c.envelope("account.changed", &key, 0),
        c.envelope("account.changed", &key, 1),
    ];
    c.publish(&batch).await;
    let first = c.recv(&mut stream, "the key's head").await;
    assert_eq!(seq_of(&first), 0, "{}", c.case);
    c.retry(first, Duration::from_millis(50)).await;
    let again = c.recv(&mut stream, "the retried head").await;
    assert_eq!(
        (seq_of(&again), again.attempt),
        (0, 2),
        "{}: the retried head must come before the key's next message",
        c.case
    );
    c.ack(again).await;
    let second = c.recv(&mut stream, "the key's second message").await;
    assert_eq!(seq_of(&second), 1, "{}", c.case);
    c.ack(second).await;
}

/// Publishes `a0 b0 a1 b1 a2 b2` on an ordered subscription and dead-letters `a0`; checks the
/// `b`s flow and the later `a`s are held back. Returns the stream, the `a` key, the letter.
async fn park_key_a(c: &Ctx) -> (DeliveryStream, String, DeadLetter) {
    let name = c.name("ordered");
    let mut stream = c
        .subscribe(&Subscription::new(name.clone(), [c.topic("account.*")]).ordered())
        .await;
    let (a, b) = (c.key("a"), c.key("b"));
    let batch: Vec<Envelope> = (0..3)
        .flat_map(|seq| [(a.clone(), seq), (b.clone(), seq)])
        .map(|(k, seq)| c.envelope("account.changed", &k, seq))
        .collect();
    c.publish(&batch).await;

    let mut b_seen = Vec::new();
    let mut poisoned = false;
    while !(poisoned && b_seen.len() == 3) {
        let d = c.recv(&mut stream, "the b messages and a0").await;
        let seq = seq_of(&d);
        if d.envelope.aggregate_id == b {
            b_seen.push(seq);
            c.ack(d).await;
        } else if seq == 0 && !poisoned {
            if let Err(e) = d.dead_letter("poison", Some("cannot apply".into())).await {
                panic!("{}: dead_letter failed: {e}", c.case);
            }
            poisoned = true;
        } else {
            panic!(
                "{}: a{seq} delivered while its key is parked (attempt {})",
                c.case, d.attempt
            );
        }
    }
    assert_eq!(b_seen, [0, 1, 2], "{}: the other key's order", c.case);
    c.quiet(&mut stream, "the parked key's later messages")
        .await;
    let letter = c.only_letter(&name).await;
    assert_eq!(letter.envelope.aggregate_id, a, "{}", c.case);
    (stream, a, letter)
}

/// A dead letter parks only its key; replaying it delivers it, then the key's later messages,
/// in order. A second replay does nothing.
pub async fn poison_parks_only_its_key_and_replay_releases_it(b: TestBroker) {
    let c = Ctx::new("poison_parks_only_its_key_and_replay_releases_it", b);
    let Some(replay) = parked_case_replay(&c) else {
        return;
    };
    let (mut stream, a, letter) = park_key_a(&c).await;
    match replay.replay_dead_letter(letter.id).await {
        Ok(true) => {}
        other => panic!("{}: first replay returned {other:?}", c.case),
    }
    for seq in 0..3 {
        let d = c.recv(&mut stream, &format!("a{seq} after replay")).await;
        assert_eq!(
            (d.envelope.aggregate_id.as_str(), seq_of(&d)),
            (a.as_str(), seq),
            "{}: order after replay",
            c.case
        );
        c.ack(d).await;
    }
    match replay.replay_dead_letter(letter.id).await {
        Ok(false) => {}
        other => panic!("{}: second replay returned {other:?}", c.case),
    }
    c.quiet(&mut stream, "after a second replay").await;
}

/// Discarding the dead letter unparks its key: the later messages flow, the poison does not.
pub async fn discard_releases_a_parked_key(b: TestBroker) {
    let c = Ctx::new("discard_releases_a_parked_key", b);
    let Some(replay) = parked_case_replay(&c) else {
        return;
    };
    let (mut stream, a, letter) = park_key_a(&c).await;
    match replay.discard_dead_letter(letter.id).await {
        Ok(true) => {}
        other => panic!("{}: discard returned {other:?}", c.case),
    }
    for seq in 1..3 {
        let d = c.recv(&mut stream, &format!("a{seq} after discard")).await;
        assert_eq!(
            (d.envelope.aggregate_id.as_str(), seq_of(&d)),
            (a.as_str(), seq),
            "{}: order after discard",
            c.case
        );
        c.ack(d).await;
    }
    match replay.discard_dead_letter(letter.id).await {
        Ok(false) => {}
        other => panic!("{}: second discard returned {other:?}", c.case),
    }
    c.quiet(&mut stream, "after discard").await;
}

fn parked_case_replay(c: &Ctx) -> Option<Arc<dyn DeadLetterReplay>> {
    let f = &c.b.features;
    if !c.supports(f.per_key_order, "no per-key order")
        || !c.supports(f.parks_poison_keys, "dead letters do not park their key")
        || !c.supports(f.supports_replay, "no dead-letter replay")
    {
        return None;
    }
    let replay = c.b.replay.clone();
    if replay.is_none() {
        c.supports(false, "TestBroker::replay is None");
    }
    replay
}

/// One consumer with prefetch 1 receives a batch in the order it was published.
pub async fn batch_publish_keeps_order(b: TestBroker) {
    let c = Ctx::new("batch_publish_keeps_order", b);
    let mut stream = c
        .subscribe(&Subscription::new(c.name("fifo"), [c.topic("#")]).with_prefetch(1))
        .await;
    let batch: Vec<Envelope> = (0..50)
        .map(|i| c.envelope("item.added", &c.key(&format!("i{}", i % 5)), i))
        .collect();
    c.publish(&batch).await;
    let mut got = Vec::new();
    for i in 0..batch.len() {
        let d = c.recv(&mut stream, &format!("message {i}")).await;
        got.push(d.envelope.event_id);
        c.ack(d).await;
    }
    let want: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
    assert_eq!(got, want, "{}: delivery order", c.case);
}

/// Publishing an empty batch succeeds and delivers nothing.
pub async fn empty_batch_is_fine(b: TestBroker) {
    let c = Ctx::new("empty_batch_is_fine", b);
    let mut stream = c
        .subscribe(&Subscription::new(c.name("empty"), [c.topic("#")]))
        .await;
    c.publish(&[]).await;
    let msg = c.envelope("order.placed", &c.key("o"), 0);
    c.publish(std::slice::from_ref(&msg)).await;
    let d = c
        .recv(&mut stream, "the message after an empty batch")
        .await;
    assert_eq!(*d.envelope, msg, "{}", c.case);
    c.ack(d).await;
    c.quiet(&mut stream, "after one message").await;
}

/// A subscription collects messages while no consumer is attached.
pub async fn durable_subscription_keeps_messages_without_consumers(b: TestBroker) {
    let c = Ctx::new("durable_subscription_keeps_messages_without_consumers", b);
    if !c.supports(
        c.b.features.durable,
        "subscriptions do not outlive their consumers",
    ) {
        return;
    }
    let sub = Subscription::new(c.name("durable"), [c.topic("order.*")]);
    drop(c.subscribe(&sub).await);
    let batch: Vec<Envelope> = (0..3)
        .map(|i| c.envelope("order.placed", &c.key("o"), i))
        .collect();
    c.publish(&batch).await;
    let mut stream = c.subscribe(&sub).await;
    let mut got = BTreeSet::new();
    for _ in 0..batch.len() {
        let d = c.recv(&mut stream, "a message published while away").await;
        got.insert(d.envelope.event_id);
        c.ack(d).await;
    }
    let want: BTreeSet<Uuid> = batch.iter().map(|e| e.event_id).collect();
    assert_eq!(got, want, "{}", c.case);
}

/// Bad patterns are `Error::InvalidPattern`; an empty name is `Error::InvalidArgument`.
pub async fn invalid_subscription_is_a_typed_error(b: TestBroker) {
    let c = Ctx::new("invalid_subscription_is_a_typed_error", b);
    for bad in ["a..b", "ord*", "", "order.#x"] {
        let sub = Subscription::new(c.name("bad"), [bad]);
        match c.b.subscriber.subscribe(&sub).await {
            Err(Error::InvalidPattern { pattern, .. }) => {
                assert_eq!(pattern, bad, "{}", c.case);
            }
            Err(other) => panic!("{}: pattern `{bad}` gave {other}", c.case),
            Ok(_) => panic!("{}: pattern `{bad}` was accepted", c.case),
        }
    }
    let unnamed = Subscription::new("", [c.topic("order.*")]);
    match c.b.subscriber.subscribe(&unnamed).await {
        Err(Error::InvalidArgument(_)) => {}
        Err(other) => panic!("{}: an empty name gave {other}", c.case),
        Ok(_) => panic!("{}: an empty name was accepted", c.case),
    }
}

/// A removed subscription drops what it held and collects nothing more; its name can be
/// subscribed again with other patterns. Removing a name that does not exist is no error.
pub async fn removed_subscription_is_gone(b: TestBroker) {
    let c = Ctx::new("removed_subscription_is_gone", b);
    let name = c.name("retired");
    let remove = |name: String| {
        let subscriber = c.b.subscriber.clone();
        async move {
            if let Err(e) = subscriber.remove_subscription(&name).await {
                panic!("removed_subscription_is_gone: removing `{name}` failed: {e}");
            }
        }
    };
    remove(name.clone()).await;
    let old = Subscription::new(name.clone(), [c.topic("order.*")]).ordered();
    let mut stream = c.subscribe(&old).await;
    let held = c.envelope("order.placed", &c.key("o"), 0);
    c.publish(std::slice::from_ref(&held)).await;
    // Delivered once, then left unsettled when its subscriber stops.
    let d = c
        .recv(&mut stream, "the message of the old subscription")
        .await;
    assert_eq!(d.envelope.event_id, held.event_id, "{}", c.case);
    drop(d);
    drop(stream);
    c.publish(&[c.envelope("order.placed", &c.key("o"), 1)])
        .await;
    remove(name.clone()).await;
    c.publish(&[c.envelope("order.placed", &c.key("o"), 2)])
        .await;
    // Other patterns, other ordering: a broker that kept the old subscription refuses these
    // or delivers its messages first.
    let new = Subscription::new(name.clone(), [c.topic("payment.*")]);
    let mut stream = c.subscribe(&new).await;
    let fresh = c.envelope("payment.processed", &c.key("p"), 3);
    c.publish(std::slice::from_ref(&fresh)).await;
    let d = c.recv(&mut stream, "the new subscription's message").await;
    assert_eq!(
        d.envelope.event_id,
        fresh.event_id,
        "{}: got `{}` (seq {}), a message of the removed subscription",
        c.case,
        d.envelope.event_type,
        seq_of(&d)
    );
    c.ack(d).await;
    c.quiet(&mut stream, "after the new subscription's message")
        .await;
    drop(stream);
    remove(name).await;
}
