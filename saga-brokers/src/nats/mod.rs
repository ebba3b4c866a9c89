//! NATS JetStream adapter (feature `nats`), built on [async-nats](https://docs.rs/async-nats).
//!
//! [`NatsBroker`] is both a [`Publisher`](saga_core::Publisher) and a
//! [`Subscriber`](saga_core::Subscriber):
//!
//! * one JetStream **stream** ([`NatsConfig::stream`]) holds the subjects
//!   `<subject_prefix>.>`; an envelope is published to `<subject_prefix>.<event_type>` with
//!   `Nats-Msg-Id` = `event_id`, so a batch published twice within the stream's duplicate
//!   window is stored once, and the body is the envelope's JSON;
//! * [`Publisher::publish`](saga_core::Publisher::publish) sends the whole batch pipelined and
//!   returns once JetStream acknowledged (stored) every message;
//! * each subscription name is one **durable pull consumer**; subscribers of the same name pull
//!   from it and compete for its messages. A subscriber pulls no more than its prefetch of
//!   unsettled messages;
//! * patterns: `*` is NATS's `*`; a single pattern without `#`, or `#` alone, becomes the
//!   consumer's filter subject. NATS has no "zero or more words" (`>` is one or more), so any
//!   other use of `#` (`payment.#`, `a.#.b`) and several patterns (NATS 2.9 takes one filter) are
//!   **emulated**: the consumer filters `<prefix>.>` and the adapter acks, unseen, the messages
//!   its patterns do not match. Correct, but those subscriptions read the whole stream;
//! * ack is `+ACK`, retry is a **nak with delay**, a dead letter is written to the
//!   [`DeadLetterStore`](saga_core::DeadLetterStore) and then **terminated** (`+TERM`); the
//!   attempt number is JetStream's delivery count. The consumer's `max_deliver` is
//!   [`NatsConfig::max_deliveries`] + 1: a message handed out that often without being settled
//!   is dead-lettered by the adapter on the next delivery, so nothing loops forever;
//! * a delivery dropped unsettled is nakked (delivered again at once); one lost with its
//!   process comes back after the consumer's `ack_wait`. The attempt number of such a
//!   redelivery can be one too low: nats-server takes back a delivery it routed to a pull
//!   request whose subscriber has gone, lowering the count;
//! * an ordered subscription parks the keys of its dead letters and replays them to itself only,
//!   through a second stream (see the table below and the parking module);
//! * async-nats reconnects by itself; a publish that fails meanwhile publishes the batch again
//!   with backoff (the dedup window absorbs repeats), pull requests are re-issued.
//!
//! # Capabilities
//!
//! | Property    | What this adapter gives |
//! |-------------|-------------------------|
//! | Ordering    | Unordered subscriptions: none across competing consumers; a nak with delay lets later messages pass. Ordered subscriptions: the consumer has `max_ack_pending = 1`, so the whole subscription gets one message at a time in stream order, across competing consumers; a retry waits in the subscriber holding the message (with progress acks) and is handed out again before anything else. A retry delay holds up every key, not just its own. |
//! | Parking     | Ordered subscriptions: a dead letter parks its key in a **lane** of the parking stream `<stream>_PARKED` (subject `_SAGA_PARKED.<stream>.<consumer>.k<key>`, written before the letter is stored): while the lane holds messages, the subscriber moves each later message of the key into it (acking it in the main stream) instead of handing it out; other keys flow. Replay and discard (see below) release the key. Cost: one direct-get per delivery of an ordered subscription to check the lane. Unordered subscriptions never park. |
//! | Durability  | File-backed stream, durable consumers: a subscription keeps collecting with no consumer attached. Publish returns after JetStream stored every message. |
//! | Dedup       | `Nats-Msg-Id` = `event_id`: JetStream drops repeats within the stream's duplicate window ([`NatsConfig::duplicate_window`]); consumers still dedupe with their inbox. |
//! | Delays      | Nak with delay, server-side (never earlier than asked). |
//! | Dead letters| Into the given `DeadLetterStore`. [`DeadLetterReplay`](saga_core::DeadLetterReplay): replay or discard marks the letter, then publishes its key on the subscription's own release subject `_SAGA_RELEASE.<stream>.<consumer>` (in the parking stream, so no other subscription sees it). Every ordered subscriber pulls that subject through a durable consumer with one signal in flight and drains the key's lane in order: the replayed message first (a discarded one is removed unseen), then the parked messages, each removed from the lane once acked; a new dead letter on the way parks the key again. The signal is acked when the lane is drained, so a subscriber dying mid-drain hands the rest to another. Every subscriber (ordered or not) runs that release consumer: replaying an unordered subscription's letter appends its message to the (empty) lane first, so it reaches that subscription only; a republish to the main stream would reach every subscription of the subject. A replay is delivered once a subscriber of the subscription is running. |
//! | Reconnect   | async-nats reconnects; publishes retry with backoff, subscribers pull again. |
//!
//! ```no_run
//! # async fn demo() -> saga_core::Result<()> {
//! use std::sync::Arc;
//! use saga_brokers::nats::{NatsBroker, NatsConfig};
//! use saga_core::memory::MemoryDeadLetterStore;
//! use saga_core::{Envelope, Publisher};
//!
//! let broker = NatsBroker::connect(
//!     NatsConfig::new("nats://127.0.0.1:4222"),
//!     Arc::new(MemoryDeadLetterStore::default()),
//! )
//! .await?;
//! broker.publish(&[Envelope::new("order.placed", "order-1", serde_json::json!({}))]).await?;
//! # Ok(()) }
//! ```

mod acker;
mod broker;
mod config;
mod parking;
mod subject;
mod subscriber;

pub use broker::NatsBroker;
pub use config::NatsConfig;
