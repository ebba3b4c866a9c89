//! In-memory broker: topic routing, competing consumers, delayed retry, dead letters and
//! per-key order, all inside one process.
//!
//! Semantics, as an AMQP topic exchange with one queue per subscription name:
//!
//! * A subscription (queue) exists from the first [`Subscriber::subscribe`] of its name and then
//!   for the life of the broker, also while no consumer is attached. Messages published before
//!   the first subscribe of a name are not kept for it, as with a freshly declared AMQP queue.
//!   The first subscribe fixes the patterns and the ordering; a later subscribe of the same name
//!   with other patterns or ordering is an [`Error::InvalidArgument`].
//! * Subscribers of one name compete: each message goes to one of them, and each holds at most
//!   `prefetch` unsettled deliveries.
//! * [`Delivery::retry`](crate::Delivery::retry) makes the message visible again no earlier
//!   than the delay later (tokio time, so tests may pause it); a delivery dropped unsettled is
//!   queued again at once. Both count as a new attempt.
//! * Ordered subscriptions keep at most one message per `aggregate_id` in flight; a retried
//!   message stays at the head of its key, and a dead-lettered one parks its key until the dead
//!   letter is replayed ([`MemoryBroker::replay_dead_letter`]) or discarded
//!   ([`MemoryBroker::discard_dead_letter`]). Other keys keep flowing.
//! * [`MemoryBroker::close`] ends every stream.
//!
//! Each subscriber waits on its own [`Notify`] (and a timer for the next delayed message): no
//! polling. A change wakes only the subscribers that wait for it: a publish or a requeue wakes
//! those idle on the subscription, a settlement wakes its own subscriber if that one was at its
//! prefetch limit. Each subscription has its own lock; a publish copies each message once,
//! before taking any lock, into an `Arc` that the subscriptions it matches and its deliveries
//! share, and an ack of an unordered subscription takes no lock at all.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> saga_core::Result<()> {
//! use std::sync::Arc;
//! use futures_util::StreamExt;
//! use saga_core::{Envelope, Publisher, Subscriber, Subscription, SystemClock};
//! use saga_core::memory::{broker::MemoryBroker, MemoryDeadLetterStore};
//!
//! let broker = MemoryBroker::new(Arc::new(MemoryDeadLetterStore::default()), Arc::new(SystemClock));
//! let mut stream = broker.subscribe(&Subscription::new("billing", ["order.*"])).await?;
//! broker.publish(&[Envelope::new("order.placed", "order-1", serde_json::json!({}))]).await?;
//! let delivery = stream.next().await.expect("open")?;
//! assert_eq!(delivery.envelope.event_type, "order.placed");
//! delivery.ack().await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::select;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;

use crate::broker::{
    Acker, DeadLetterReplay, Delivery, DeliveryStream, Publisher, Subscriber, Subscription,
};
use crate::clock::SharedClock;
use crate::dead_letter::{DeadLetter, DeadLetterStore, ReplayOutcome};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::topic::{TopicPattern, matches_any};

/// A process-local broker. Clones share the same queues.
#[derive(Clone)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let registry = self.shared.lock();
        f.debug_struct("MemoryBroker")
            .field("subscriptions", &registry.queues.keys().collect::<Vec<_>>())
            .field("closed", &registry.closed)
            .finish_non_exhaustive()
    }
}

struct Shared {
    registry: Mutex<Registry>,
    dead_letters: Arc<dyn DeadLetterStore>,
    clock: SharedClock,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue of subscription `name`, if someone ever subscribed to it.
    fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.lock().queues.get(name).cloned()
    }
}

/// The subscriptions, by name.
#[derive(Default)]
struct Registry {
    closed: bool,
    queues: HashMap<String, Arc<Queue>>,
}

/// One subscription's queue, shared by the broker, its subscribers and their deliveries.
struct Queue {
    name: Arc<str>,
    patterns: Vec<TopicPattern>,
    ordered: bool,
    dead_letters: Arc<dyn DeadLetterStore>,
    clock: SharedClock,
    state: Mutex<QueueState>,
}

struct QueueState {
    /// Set by [`MemoryBroker::close`]; consumers end their streams.
    closed: bool,
    lane: Lane,
    /// Tie-breaker for delayed entries due at the same instant.
    seq: u64,
    /// Every attached subscriber (woken by `close`).
    consumers: Vec<Arc<Slot>>,
    /// Subscribers waiting for a message or for the next delayed one: a change to the lane
    /// wakes (and removes) them all, and each looks again.
    waiting: Vec<Arc<Slot>>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the queue under its lock; if `change` says a subscriber may now find something
    /// new (a message, or an earlier due time), wakes the waiting ones once the lock is released.
    fn update(&self, change: impl FnOnce(&mut QueueState) -> bool) {
        let waiting = {
            let mut state = self.lock();
            if !change(&mut state) {
                return;
            }
            std::mem::take(&mut state.waiting)
        };
        wake(waiting);
    }
}

impl Queue {
    /// Ends its subscribers' streams; the queue takes no more messages.
    fn shut(&self) {
        let consumers = {
            let mut state = self.lock();
            state.closed = true;
            state.waiting.clear();
            state.consumers.clone()
        };
        wake(consumers);
    }
}

fn wake(slots: Vec<Arc<Slot>>) {
    for slot in slots {
        slot.wake.notify_one();
    }
}

/// One subscriber's deliveries in flight and its wake-up. `notify_one` keeps a permit when the
/// subscriber is not waiting yet, so a wake-up between its look at the queue and its wait is not
/// lost.
struct Slot {
    wake: Notify,
    /// Unsettled deliveries this subscriber holds; only its own stream adds to it.
    in_flight: AtomicUsize,
    prefetch: usize,
}

impl Slot {
    /// One of this subscriber's deliveries was settled (or dropped).
    fn release(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) >= self.prefetch {
            // It was at its limit and may be waiting for this.
            self.wake.notify_one();
        }
    }
}

/// A queued message and the attempt number its next delivery will carry.
struct Msg {
    /// Shared by every subscription it was routed to and by its deliveries.
    envelope: Arc<Envelope>,
    attempt: u32,
}

enum Lane {
    Unordered(Unordered),
    Ordered(Ordered),
}

#[derive(Default)]
struct Unordered {
    ready: VecDeque<Msg>,
    delayed: BTreeMap<(Instant, u64), Msg>,
}

#[derive(Default)]
struct Ordered {
    keys: HashMap<String, Key>,
    /// Keys that are idle with a message waiting; each at most once.
    ready: VecDeque<String>,
    /// Keys whose head waits for a retry delay.
    delayed: BTreeMap<(Instant, u64), String>,
}

struct Key {
    queue: VecDeque<Msg>,
    state: KeyState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyState {
    /// Nothing in flight; in `Ordered::ready` if the queue is not empty.
    Idle,
    /// Its head is with a consumer.
    InFlight,
    /// Its head waits for a retry delay (in `Ordered::delayed`).
    Waiting,
    /// Its last message was dead-lettered; waits for replay or discard of this letter.
    Parked(Uuid),
}

impl Lane {
    fn new(ordered: bool) -> Self {
        if ordered {
            Lane::Ordered(Ordered::default())
        } else {
            Lane::Unordered(Unordered::default())
        }
    }

    fn push(&mut self, msg: Msg) {
        match self {
            Lane::Unordered(u) => u.ready.push_back(msg),
            Lane::Ordered(o) => {
                let key = msg.envelope.aggregate_id.clone();
                let entry = o.keys.entry(key.clone()).or_insert_with(|| Key {
                    queue: VecDeque::new(),
                    state: KeyState::Idle,
                });
                let was_empty = entry.queue.is_empty();
                entry.queue.push_back(msg);
                if entry.state == KeyState::Idle && was_empty {
                    o.ready.push_back(key);
                }
            }
        }
    }

    /// Appends a published batch, in order.
    fn extend(&mut self, msgs: Vec<Msg>) {
        match self {
            Lane::Unordered(u) => u.ready.extend(msgs),
            Lane::Ordered(_) => msgs.into_iter().for_each(|msg| self.push(msg)),
        }
    }

    /// Makes every delayed message that is due visible (reads the clock only if there is one).
    fn promote_due(&mut self) {
        if let Some(due) = self.next_due() {
            let now = Instant::now();
            if due <= now {
                self.promote(now);
            }
        }
    }

    /// Makes every delayed message due at `now` visible.
    fn promote(&mut self, now: Instant) {
        match self {
            Lane::Unordered(u) => {
                while let Some(entry) = u.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    u.ready.push_back(entry.remove());
                }
            }
            Lane::Ordered(o) => {
                while let Some(entry) = o.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let key = entry.remove();
                    if let Some(k) = o.keys.get_mut(&key) {
                        if k.state == KeyState::Waiting {
                            k.state = KeyState::Idle;
                            if !k.queue.is_empty() {
                                o.ready.push_back(key);
                            }
                        }
                    }
                }
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        match self {
            Lane::Unordered(u) => u.delayed.keys().next().map(|k| k.0),
            Lane::Ordered(o) => o.delayed.keys().next().map(|k| k.0),
        }
    }

    fn take(&mut self) -> Option<Msg> {
        match self {
            Lane::Unordered(u) => u.ready.pop_front(),
            Lane::Ordered(o) => {
                while let Some(key) = o.ready.pop_front() {
                    let Some(k) = o.keys.get_mut(&key) else {
                        continue;
                    };
                    if k.state != KeyState::Idle {
                        continue;
                    }
                    if let Some(msg) = k.queue.pop_front() {
                        k.state = KeyState::InFlight;
                        return Some(msg);
                    }
                }
                None
            }
        }
    }

    /// The in-flight message of `key` was acked; true if that made a message deliverable.
    fn acked(&mut self, key: &str) -> bool {
        match self {
            Lane::Ordered(o) => o.release(key),
            Lane::Unordered(_) => false,
        }
    }

    /// Puts an in-flight message back, visible at once (`None`) or from `at` on.
    fn requeue(&mut self, msg: Msg, at: Option<Instant>, seq: u64) {
        match self {
            Lane::Unordered(u) => match at {
                None => u.ready.push_front(msg),
                Some(at) => {
                    u.delayed.insert((at, seq), msg);
                }
            },
            Lane::Ordered(o) => {
                let key = msg.envelope.aggregate_id.clone();
                let entry = o.keys.entry(key.clone()).or_insert_with(|| Key {
                    queue: VecDeque::new(),
                    state: KeyState::InFlight,
                });
                entry.queue.push_front(msg);
                match at {
                    None => {
                        entry.state = KeyState::Idle;
                        o.ready.push_back(key);
                    }
                    Some(at) => {
                        entry.state = KeyState::Waiting;
                        o.delayed.insert((at, seq), key);
                    }
                }
            }
        }
    }

    /// The in-flight message of `key` is being dead-lettered as `id`: park the key.
    fn park(&mut self, key: &str, id: Uuid) {
        if let Lane::Ordered(o) = self {
            if let Some(k) = o.keys.get_mut(key) {
                k.state = KeyState::Parked(id);
            }
        }
    }

    /// Lifts the park of dead letter `id` on `key`, if it holds it.
    fn unpark(&mut self, key: &str, id: Uuid) {
        if let Lane::Ordered(o) = self {
            if o.keys
                .get(key)
                .is_some_and(|k| k.state == KeyState::Parked(id))
            {
                o.release(key);
            }
        }
    }

    /// Delivers a replayed dead letter again: at the head of its key, unparking it.
    fn replay(&mut self, msg: Msg, id: Uuid) {
        match self {
            Lane::Unordered(u) => u.ready.push_back(msg),
            Lane::Ordered(o) => {
                let key = msg.envelope.aggregate_id.clone();
                let entry = o.keys.entry(key.clone()).or_insert_with(|| Key {
                    queue: VecDeque::new(),
                    state: KeyState::Idle,
                });
                let was_empty = entry.queue.is_empty();
                entry.queue.push_front(msg);
                match entry.state {
                    KeyState::Parked(p) if p == id => {
                        entry.state = KeyState::Idle;
                        o.ready.push_back(key);
                    }
                    KeyState::Idle if was_empty => o.ready.push_back(key),
                    _ => {}
                }
            }
        }
    }

    /// Messages waiting (not in flight).
    fn len(&self) -> usize {
        match self {
            Lane::Unordered(u) => u.ready.len() + u.delayed.len(),
            Lane::Ordered(o) => o.keys.values().map(|k| k.queue.len()).sum(),
        }
    }
}

impl Ordered {
    /// Makes `key` idle: queued for delivery if it has messages (then true), forgotten
    /// otherwise.
    fn release(&mut self, key: &str) -> bool {
        let Some(k) = self.keys.get_mut(key) else {
            return false;
        };
        k.state = KeyState::Idle;
        if k.queue.is_empty() {
            self.keys.remove(key);
            false
        } else {
            self.ready.push_back(key.to_owned());
            true
        }
    }
}
impl MemoryBroker {
    /// A broker writing dead letters to `dead_letters`, stamped with `clock`.
    pub fn new(dead_letters: Arc<dyn DeadLetterStore>, clock: SharedClock) -> Self {
        Self {
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::default()),
                dead_letters,
                clock,
            }),
        }
    }

    /// The store dead letters go to.
    pub fn dead_letters(&self) -> &Arc<dyn DeadLetterStore> {
        &self.shared.dead_letters
    }

    /// How many messages wait in a subscription (queued or delayed, not in flight), or `None`
    /// if no one ever subscribed to that name.
    pub fn queued(&self, subscription: &str) -> Option<usize> {
        self.shared
            .queue(subscription)
            .map(|queue| queue.lock().lane.len())
    }

    /// Shuts the broker down: every stream ends, and publish and subscribe fail with
    /// [`Error::Closed`]. Deliveries already handed out may still be settled.
    pub fn close(&self) {
        let queues: Vec<Arc<Queue>> = {
            let mut registry = self.shared.lock();
            registry.closed = true;
            registry.queues.values().cloned().collect()
        };
        for queue in queues {
            queue.shut();
        }
    }

    /// Whether [`MemoryBroker::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Replays a dead letter: marks it replayed in the store and delivers its message again to
    /// its subscription only (at the head of its key if ordered, unparking the key), with a
    /// fresh attempt count. Returns `false` if it was already replayed or discarded.
    ///
    /// Fails with [`Error::NotFound`] if the letter, or its subscription on this broker, does
    /// not exist.
    pub async fn replay_dead_letter(&self, id: Uuid) -> Result<bool> {
        let letter = self.shared.dead_letters.get(id).await?;
        let queue = self.subscription(&letter.subscription)?;
        match self.shared.dead_letters.replay(id).await? {
            ReplayOutcome::Replayed(letter) => {
                let msg = Msg {
                    envelope: Arc::new(letter.envelope),
                    attempt: 1,
                };
                queue.update(|state| {
                    state.lane.replay(msg, id);
                    true
                });
                Ok(true)
            }
            ReplayOutcome::AlreadyDone(_) => {
                // Settled elsewhere (through the store directly): do not leave the key parked.
                let key = letter.envelope.aggregate_id;
                queue.update(|state| {
                    state.lane.unpark(&key, id);
                    true
                });
                Ok(false)
            }
        }
    }

    /// Discards a dead letter: marks it discarded and unparks its key, so the later messages
    /// of the key flow in order. Returns `false` if it was not pending.
    ///
    /// Fails with [`Error::NotFound`] if the letter, or its subscription on this broker, does
    /// not exist.
    pub async fn discard_dead_letter(&self, id: Uuid) -> Result<bool> {
        let letter = self.shared.dead_letters.get(id).await?;
        let queue = self.subscription(&letter.subscription)?;
        let discarded = self.shared.dead_letters.discard(id).await?;
        let key = letter.envelope.aggregate_id;
        queue.update(|state| {
            state.lane.unpark(&key, id);
            true
        });
        Ok(discarded)
    }

    /// The queue of subscription `name`, or [`Error::NotFound`].
    fn subscription(&self, name: &str) -> Result<Arc<Queue>> {
        self.shared.queue(name).ok_or_else(|| Error::NotFound {
            entity: "subscription",
            id: name.to_owned(),
        })
    }
}

#[async_trait]
impl DeadLetterReplay for MemoryBroker {
    async fn replay_dead_letter(&self, id: Uuid) -> Result<bool> {
        MemoryBroker::replay_dead_letter(self, id).await
    }

    async fn discard_dead_letter(&self, id: Uuid) -> Result<bool> {
        MemoryBroker::discard_dead_letter(self, id).await
    }
}

#[async_trait]
impl Publisher for MemoryBroker {
    async fn publish(&self, batch: &[Envelope]) -> Result<()> {
        let queues: Vec<Arc<Queue>> = {
            let registry = self.shared.lock();
            if registry.closed {
                return Err(closed());
            }
            registry.queues.values().cloned().collect()
        };
        // Routed and copied before any queue's lock is taken (consumers keep taking
        // meanwhile); one copy per message, shared by every subscription it matches.
        let mut routed: Vec<Route<'_>> = queues.into_iter().map(Route::new).collect();
        for envelope in batch {
            let mut copy: Option<Arc<Envelope>> = None;
            for Route { queue, msgs, last } in &mut routed {
                if queue.matches(&envelope.event_type, last) {
                    if msgs.is_empty() {
                        msgs.reserve(batch.len());
                    }
                    let envelope = copy.get_or_insert_with(|| Arc::new(envelope.clone()));
                    msgs.push(Msg {
                        envelope: envelope.clone(),
                        attempt: 1,
                    });
                }
            }
        }
        for Route { queue, msgs, .. } in routed {
            if msgs.is_empty() {
                continue;
            }
            let mut refused = false;
            queue.update(|state| {
                refused = state.closed;
                if !refused {
                    state.lane.extend(msgs);
                }
                !refused
            });
            if refused {
                return Err(closed());
            }
        }
        Ok(())
    }
}

/// One subscription's share of a published batch.
struct Route<'a> {
    queue: Arc<Queue>,
    msgs: Vec<Msg>,
    /// The last event type matched against the queue's patterns, and the answer: a batch is
    /// often of one type.
    last: Option<(&'a str, bool)>,
}

impl Route<'_> {
    fn new(queue: Arc<Queue>) -> Self {
        Self {
            queue,
            msgs: Vec::new(),
            last: None,
        }
    }
}

impl Queue {
    /// Whether `event_type` is routed to this queue, remembering the answer in `last`.
    fn matches<'a>(&self, event_type: &'a str, last: &mut Option<(&'a str, bool)>) -> bool {
        match *last {
            Some((seen, matched)) if seen == event_type => matched,
            _ => {
                let matched = matches_any(&self.patterns, event_type);
                *last = Some((event_type, matched));
                matched
            }
        }
    }
}

fn closed() -> Error {
    Error::Closed("memory broker".into())
}

#[async_trait]
impl Subscriber for MemoryBroker {
    async fn subscribe(&self, subscription: &Subscription) -> Result<DeliveryStream> {
        if subscription.name.is_empty() {
            return Err(Error::InvalidArgument(
                "the subscription name is empty".into(),
            ));
        }
        if subscription.patterns.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "subscription `{}` has no topic patterns",
                subscription.name
            )));
        }
        let patterns = subscription
            .patterns
            .iter()
            .map(|p| TopicPattern::parse(p))
            .collect::<Result<Vec<_>>>()?;
        let queue = {
            let mut registry = self.shared.lock();
            if registry.closed {
                return Err(closed());
            }
            let queue = registry
                .queues
                .entry(subscription.name.clone())
                .or_insert_with(|| {
                    Arc::new(Queue {
                        name: Arc::from(subscription.name.as_str()),
                        patterns,
                        ordered: subscription.ordered,
                        dead_letters: self.shared.dead_letters.clone(),
                        clock: self.shared.clock.clone(),
                        state: Mutex::new(QueueState {
                            closed: false,
                            lane: Lane::new(subscription.ordered),
                            seq: 0,
                            consumers: Vec::new(),
                            waiting: Vec::new(),
                        }),
                    })
                });
            if queue.ordered != subscription.ordered
                || sorted(queue.patterns.iter().map(TopicPattern::as_str))
                    != sorted(subscription.patterns.iter().map(String::as_str))
            {
                return Err(Error::InvalidArgument(format!(
                    "subscription `{}` exists with other patterns or ordering",
                    subscription.name
                )));
            }
            queue.clone()
        };
        let slot = Arc::new(Slot {
            wake: Notify::new(),
            in_flight: AtomicUsize::new(0),
            prefetch: usize::from(subscription.prefetch.max(1)),
        });
        {
            let mut state = queue.lock();
            if state.closed {
                return Err(closed());
            }
            state.consumers.push(slot.clone());
        }
        let consumer = Consumer { queue, slot };
        Ok(Box::pin(futures_util::stream::unfold(
            consumer,
            |consumer| async move {
                let item = consumer.next().await?;
                Some((Ok(item), consumer))
            },
        )))
    }
    async fn remove_subscription(&self, name: &str) -> Result<()> {
        // Out of the registry, publishers no longer route to it; its messages go with it.
        let queue = self.shared.lock().queues.remove(name);
        if let Some(queue) = queue {
            queue.shut();
            queue.lock().lane = Lane::new(queue.ordered);
        }
        Ok(())
    }
}

fn sorted<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = items.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One subscriber's side of a queue.
struct Consumer {
    queue: Arc<Queue>,
    slot: Arc<Slot>,
}

impl Consumer {
    /// The next delivery, or `None` once the broker is closed.
    async fn next(&self) -> Option<Delivery> {
        // A busy subscription is always ready; taking part in tokio's cooperative budget lets
        // a consumer that never waits still yield to timers and other tasks.
        tokio::task::consume_budget().await;
        loop {
            let due = {
                let mut state = self.queue.lock();
                if state.closed {
                    return None;
                }
                if self.slot.in_flight.load(Ordering::Acquire) >= self.slot.prefetch {
                    // At the limit: woken by a settlement of its own (`Slot::release`) or by
                    // `close`, not by changes to the queue.
                    None
                } else {
                    state.lane.promote_due();
                    if let Some(msg) = state.lane.take() {
                        self.slot.in_flight.fetch_add(1, Ordering::AcqRel);
                        drop(state);
                        return Some(self.deliver(msg));
                    }
                    if !state.waiting.iter().any(|s| Arc::ptr_eq(s, &self.slot)) {
                        state.waiting.push(self.slot.clone());
                    }
                    state.lane.next_due()
                }
            };
            // A wake-up given since the look above is kept as a permit: this returns at once.
            let notified = pin!(self.slot.wake.notified());
            match due {
                Some(at) => {
                    let sleep = pin!(sleep_until(at));
                    // Woken by a change or by the next delayed message falling due.
                    let _ = select(notified, sleep).await;
                }
                None => notified.await,
            }
        }
    }

    fn deliver(&self, msg: Msg) -> Delivery {
        let envelope = msg.envelope.clone();
        let attempt = msg.attempt;
        let acker = MemoryAcker {
            queue: self.queue.clone(),
            slot: self.slot.clone(),
            msg: Some(msg),
        };
        Delivery::new(envelope, attempt, self.queue.name.clone(), Box::new(acker))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.waiting.retain(|s| !Arc::ptr_eq(s, &self.slot));
        state.consumers.retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

/// Settles one delivery. Dropped unsettled (or with a dead letter that failed to store), it
/// queues the message again at once.
struct MemoryAcker {
    queue: Arc<Queue>,
    slot: Arc<Slot>,
    /// The message while unsettled.
    msg: Option<Msg>,
}

/// The next tie-breaker for a delayed entry.
fn next_seq(state: &mut QueueState) -> u64 {
    state.seq = state.seq.wrapping_add(1);
    state.seq
}

impl MemoryAcker {
    fn settle_ack(&mut self) {
        if let Some(msg) = self.msg.take() {
            if self.queue.ordered {
                // Frees the key: its next message (if any) may go to any waiting subscriber.
                self.queue
                    .update(|state| state.lane.acked(&msg.envelope.aggregate_id));
            }
            // Unordered: nothing in the queue changes; `Drop` frees the prefetch slot.
        }
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        self.settle_ack();
        Ok(())
    }

    fn ack_now(&mut self) -> Option<Result<()>> {
        self.settle_ack();
        Some(Ok(()))
    }

    async fn retry(mut self: Box<Self>, delay: Duration) -> Result<()> {
        if let Some(mut msg) = self.msg.take() {
            msg.attempt = msg.attempt.saturating_add(1);
            let at = if delay.is_zero() {
                None
            } else {
                let now = Instant::now();
                // A delay too large for the clock waits "forever" (about 30 years).
                Some(
                    now.checked_add(delay)
                        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365 * 30)))
                        .unwrap_or(now),
                )
            };
            // Waiting subscribers look again: at a message, or at an earlier next due time.
            self.queue.update(|state| {
                let seq = next_seq(state);
                state.lane.requeue(msg, at, seq);
                true
            });
        }
        Ok(())
    }

    async fn dead_letter(
        mut self: Box<Self>,
        reason: String,
        last_error: Option<String>,
    ) -> Result<()> {
        let Some(msg) = self.msg.as_ref() else {
            return Ok(());
        };
        let letter = DeadLetter::new(
            &*self.queue.name,
            Envelope::clone(&msg.envelope),
            reason,
            msg.attempt,
            last_error,
            self.queue.clock.now(),
        );
        let id = letter.id;
        if self.queue.ordered {
            // Parked before the letter is stored, so a replay racing with the store sees it.
            let key = msg.envelope.aggregate_id.clone();
            self.queue.lock().lane.park(&key, id);
        }
        // On error (or if this future is dropped) `Drop` puts the message back and unparks.
        self.queue.dead_letters.put(letter).await?;
        self.msg = None;
        Ok(())
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        if let Some(mut msg) = self.msg.take() {
            msg.attempt = msg.attempt.saturating_add(1);
            self.queue.update(|state| {
                let seq = next_seq(state);
                // Requeuing makes the key idle again, which also lifts a park placed by a
                // dead letter that was never stored.
                state.lane.requeue(msg, None, seq);
                true
            });
        }
        self.slot.release();
    }
}
