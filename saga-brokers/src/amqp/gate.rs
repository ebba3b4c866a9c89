//! Per-key order and poison parking of an ordered subscription, in its (single active)
//! consumer.
//!
//! The ordered subscription's queue has one active consumer at a time, which takes up to
//! [`AmqpConfig::ordered_window`](super::AmqpConfig::ordered_window) messages unacked. The gate
//! hands at most one message per `aggregate_id` to the handlers; the later messages of a key
//! wait in it (unacked, in queue order) until the head is acked. A dead-lettered head **parks**
//! its key: the waiting messages stay until the dead letter is replayed (its copy arrives
//! through the queue and is let through first, recognised by its `event_id`) or discarded (a
//! marker message arrives through the queue). The parked keys are the pending dead letters of
//! the subscription: they are loaded from the `DeadLetterStore` whenever the consumer
//! (re)attaches, so a new active consumer keeps them parked.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use saga_core::dead_letter::{DeadLetterFilter, DeadLetterStatus};
use saga_core::{DeadLetterStore, Delivery, Envelope, Result};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::acker::{AmqpAcker, Origin};

/// Header of a discard marker: the discarded letter's `event_id`.
pub(crate) const DISCARD_HEADER: &str = "x-saga-discarded";
/// Header of a discard marker: the key it unparks.
pub(crate) const KEY_HEADER: &str = "x-saga-key";

/// The properties of the marker that unparks `key` after the letter of `event_id` was discarded.
pub(crate) fn discard_marker(key: &str, event_id: Uuid) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        DISCARD_HEADER.into(),
        AMQPValue::LongString(LongString::from(event_id.to_string())),
    );
    headers.insert(
        KEY_HEADER.into(),
        AMQPValue::LongString(LongString::from(key)),
    );
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// `(key, event_id)` if these are the properties of a discard marker.
pub(crate) fn as_discard_marker(props: &BasicProperties) -> Option<(String, Option<Uuid>)> {
    let headers = props.headers().as_ref()?;
    let text = |k: &str| match headers.inner().get(k) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    };
    let id = text(DISCARD_HEADER)?;
    let key = text(KEY_HEADER)?;
    Some((key, id.parse().ok()))
}

/// A message held back behind its key.
struct Waiting {
    acker: lapin::Acker,
    envelope: Arc<Envelope>,
    attempt: u32,
    origin: Arc<Origin>,
}

impl Waiting {
    fn into_delivery(self) -> Delivery {
        AmqpAcker::delivery(self.origin, self.acker, self.envelope, self.attempt)
    }
}

#[derive(Default)]
struct State {
    /// Bumped on every (re)attach: settlements of older deliveries are ignored.
    generation: u64,
    in_flight: HashSet<String>,
    waiting: HashMap<String, VecDeque<Waiting>>,
    /// Parked key -> the `event_id` of its pending dead letter.
    parked: HashMap<String, Uuid>,
}

/// The per-key gate of one ordered subscriber.
pub(crate) struct Gate {
    subscription: String,
    state: Mutex<State>,
    tx: mpsc::WeakSender<Result<Delivery>>,
}

impl Gate {
    pub(crate) fn new(subscription: String, tx: mpsc::WeakSender<Result<Delivery>>) -> Self {
        Self {
            subscription,
            state: Mutex::new(State::default()),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new channel: forgets what the old one held (RabbitMQ requeued it) and reloads the
    /// parked keys from the store. Returns the new generation.
    pub(crate) async fn reset(&self, store: &dyn DeadLetterStore) -> Result<u64> {
        let filter = DeadLetterFilter {
            subscription: Some(self.subscription.clone()),
            status: Some(DeadLetterStatus::Pending),
            limit: None,
        };
        let letters = store.list(&filter).await?;
        let mut s = self.lock();
        s.generation = s.generation.wrapping_add(1);
        s.in_flight.clear();
        s.waiting.clear();
        s.parked.clear();
        for letter in letters {
            // Oldest first: a key's first pending letter is the one its messages wait for.
            s.parked
                .entry(letter.envelope.aggregate_id.clone())
                .or_insert(letter.envelope.event_id);
        }
        Ok(s.generation)
    }

    /// A message from the queue: returns it as a delivery to hand out now, or keeps it behind
    /// its key.
    pub(crate) fn admit(
        &self,
        origin: Arc<Origin>,
        acker: lapin::Acker,
        envelope: Envelope,
        attempt: u32,
    ) -> Option<Delivery> {
        let mut s = self.lock();
        if origin.generation != s.generation {
            return None;
        }
        let key = envelope.aggregate_id.clone();
        let waiting = Waiting {
            acker,
            envelope: Arc::new(envelope),
            attempt,
            origin,
        };
        if let Some(letter) = s.parked.get(&key) {
            if *letter == waiting.envelope.event_id {
                // The replayed copy of the poison: it goes first, the key is unparked.
                s.parked.remove(&key);
                s.in_flight.insert(key);
                return Some(waiting.into_delivery());
            }
            s.waiting.entry(key).or_default().push_back(waiting);
            return None;
        }
        let behind =
            s.in_flight.contains(&key) || s.waiting.get(&key).is_some_and(|q| !q.is_empty());
        if behind {
            s.waiting.entry(key).or_default().push_back(waiting);
            return None;
        }
        s.in_flight.insert(key);
        Some(waiting.into_delivery())
    }

    /// The head of `key` was acked: the next waiting message of the key goes out.
    pub(crate) fn acked(&self, generation: u64, key: &str) {
        let next = {
            let mut s = self.lock();
            if s.generation != generation {
                return;
            }
            s.in_flight.remove(key);
            Self::next_of(&mut s, key)
        };
        self.forward(next);
    }

    /// The head of `key` was dead-lettered: the key parks until that letter is replayed or
    /// discarded.
    pub(crate) fn parked(&self, generation: u64, key: &str, event_id: Uuid) {
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        s.in_flight.remove(key);
        s.parked.insert(key.to_owned(), event_id);
    }

    /// Storing the dead letter failed after [`Gate::parked`]: the message is the key's head
    /// again.
    pub(crate) fn unpark(&self, generation: u64, key: &str) {
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        s.parked.remove(key);
        s.in_flight.insert(key.to_owned());
    }

    /// A message that was never admitted is dead-lettered (delivered too often): its key parks.
    pub(crate) fn park_unadmitted(&self, key: &str, event_id: Uuid) {
        self.lock().parked.insert(key.to_owned(), event_id);
    }

    /// A discard marker arrived: unparks `key` if it waits for that letter.
    pub(crate) fn discarded(&self, key: &str, event_id: Option<Uuid>) {
        let next = {
            let mut s = self.lock();
            match s.parked.get(key) {
                Some(letter) if event_id.is_none_or(|id| id == *letter) => {
                    s.parked.remove(key);
                }
                _ => return,
            }
            if s.in_flight.contains(key) {
                None
            } else {
                Self::next_of(&mut s, key)
            }
        };
        self.forward(next);
    }

    fn next_of(s: &mut State, key: &str) -> Option<Waiting> {
        if s.parked.contains_key(key) {
            return None;
        }
        let queue = s.waiting.get_mut(key)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            s.waiting.remove(key);
        }
        if next.is_some() {
            s.in_flight.insert(key.to_owned());
        }
        next
    }

    /// Hands a released message out without blocking the settling handler (its own stream
    /// may be full).
    fn forward(&self, next: Option<Waiting>) {
        let (Some(next), Some(tx)) = (next, self.tx.upgrade()) else {
            return;
        };
        let delivery = next.into_delivery();
        tokio::spawn(async move {
            let _ = tx.send(Ok(delivery)).await;
        });
    }
}
