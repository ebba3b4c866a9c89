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
//! * async-nats reconnects by itself; a publish that fails meanwhile publishes the batch again
//!   with backoff (the dedup window absorbs repeats), pull requests are re-issued.
//!
//! # Capabilities
//!
//! | Property    | What this adapter gives |
//! |-------------|-------------------------|
//! | Ordering    | Unordered subscriptions: none across competing consumers; a nak with delay lets later messages pass. Ordered subscriptions: the consumer has `max_ack_pending = 1`, so the whole subscription gets one message at a time in stream order, across competing consumers; a retry waits in the subscriber holding the message (with progress acks) and is handed out again before anything else. A retry delay holds up every key, not just its own. |
//! | Parking     | No: a dead-lettered message of an ordered subscription does not hold back its key. |
//! | Durability  | File-backed stream, durable consumers: a subscription keeps collecting with no consumer attached. Publish returns after JetStream stored every message. |
//! | Dedup       | `Nats-Msg-Id` = `event_id`: JetStream drops repeats within the stream's duplicate window ([`NatsConfig::duplicate_window`]); consumers still dedupe with their inbox. |
//! | Delays      | Nak with delay, server-side (never earlier than asked). |
//! | Dead letters| Into the given `DeadLetterStore`; no replay through the broker (a replay would reach every subscription of the subject). |
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
mod subject;
mod subscriber;

pub use broker::NatsBroker;
pub use config::NatsConfig;
