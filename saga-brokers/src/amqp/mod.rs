//! RabbitMQ adapter (feature `amqp`), built on [lapin](https://docs.rs/lapin).
//!
//! [`AmqpBroker`] is both a [`Publisher`](saga_core::Publisher) and a
//! [`Subscriber`](saga_core::Subscriber):
//!
//! * every envelope goes to one durable **topic exchange** ([`AmqpConfig::exchange`]) with its
//!   `event_type` as routing key, so the subscription patterns (`order.*`, `payment.#`) are
//!   native AMQP bindings;
//! * each subscription name is one durable **quorum queue** `<exchange>.<name>`; subscribers of
//!   the same name consume from the same queue, so they compete for its messages;
//! * [`Publisher::publish`](saga_core::Publisher::publish) uses **publisher confirms** and returns
//!   once RabbitMQ confirmed every message of the batch; the envelope's `event_id` is the AMQP
//!   `message_id`, the body is the envelope's JSON, the envelope headers are copied into the AMQP
//!   headers;
//! * the subscription's prefetch is the channel's `basic.qos`;
//! * a **retry** republishes the message (with confirms) into a per-delay retry queue
//!   `<queue>.retry.<bucket ms>` with the exact delay as per-message TTL and the work queue as
//!   dead-letter target, then acks the original; buckets are powers of two, so a message waits
//!   at least its delay and at most its bucket (< 2x the delay) even behind longer delays. The
//!   attempt number travels in the `x-saga-attempt` header and adds RabbitMQ's
//!   `x-delivery-count` for redeliveries;
//! * a **dead letter** is written to the [`DeadLetterStore`](saga_core::DeadLetterStore) given to
//!   the broker, then acked. A delivery dropped unsettled is nacked with requeue (and RabbitMQ
//!   requeues whatever a closed channel held); a message delivered more than
//!   [`AmqpConfig::max_deliveries`] times without being settled (a consumer that keeps crashing
//!   on it) is dead-lettered by the adapter instead of looping forever;
//! * an ordered subscription retries in place instead and parks the keys of its dead letters
//!   (see the table below);
//! * connections and channels that drop are re-opened with exponential backoff: a publish in
//!   progress publishes its whole batch again (duplicates are absorbed by the consumers'
//!   inboxes, nothing confirmed is lost), subscribers re-attach to their queue.
//!
//! # Capabilities
//!
//! | Property    | What this adapter gives |
//! |-------------|-------------------------|
//! | Ordering    | Unordered subscriptions: none (competing consumers; retries go through a delay queue). Ordered subscriptions ([`Subscription::ordered`](saga_core::Subscription::ordered)): the queue is *single active consumer*; the active consumer takes up to [`AmqpConfig::ordered_window`] messages unacked and hands out at most one per `aggregate_id` at a time, in queue order (the others wait in it, unacked); a retry waits in the consumer holding its key (the message stays unacked for its delay, then is handed out again before the key's later messages), other keys flow meanwhile. Competing consumers take over in turn. If the active consumer dies, RabbitMQ returns what it held to the queue; where it lands among the waiting messages is RabbitMQ's choice (quorum queues before 4.0 may put it behind later ones). |
//! | Parking     | Ordered subscriptions: a dead-lettered message parks its key: the key's later messages wait (unacked) in the active consumer, other keys flow. [`DeadLetterReplay::replay_dead_letter`](saga_core::DeadLetterReplay::replay_dead_letter) publishes the message into its subscription's queue; the consumer recognises it by `event_id`, hands it out first, then the waiting messages in order. [`discard_dead_letter`](saga_core::DeadLetterReplay::discard_dead_letter) sends a marker through the queue that unparks the key. The parked keys are the subscription's pending dead letters: a consumer that (re)attaches loads them from the `DeadLetterStore`, so they stay parked across restarts. Limits: parked and waiting messages count against the window, so once `ordered_window` messages are held the subscription stalls until a key moves; a replayed copy that arrives after a restart of the consumer is handled at its place in the queue. Unordered subscriptions never park. |
//! | Durability  | Durable exchange, durable quorum queues (replicated when the cluster has several nodes), persistent messages, publisher confirms. A subscription keeps collecting messages with no consumer attached. |
//! | Dedup       | None broker-side (RabbitMQ has no dedup window): `message_id` = `event_id`, consumers dedupe with their inbox. |
//! | Delays      | Per-delay retry queues with per-message TTL (never earlier than asked, less than twice the delay in the worst case). Ordered subscriptions wait in the consumer. |
//! | Dead letters| Into the given `DeadLetterStore`; [`DeadLetterReplay`](saga_core::DeadLetterReplay) replays one to its own subscription's queue only. |
//! | Reconnect   | Publishers and subscribers reconnect with exponential backoff. |
//!
//! ```no_run
//! # async fn demo() -> saga_core::Result<()> {
//! use std::sync::Arc;
//! use saga_brokers::amqp::{AmqpBroker, AmqpConfig};
//! use saga_core::memory::MemoryDeadLetterStore;
//! use saga_core::{Envelope, Publisher};
//!
//! let config = AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f");
//! let broker = AmqpBroker::connect(config, Arc::new(MemoryDeadLetterStore::default())).await?;
//! broker.publish(&[Envelope::new("order.placed", "order-1", serde_json::json!({}))]).await?;
//! # Ok(()) }
//! ```

mod acker;
mod broker;
mod config;
mod connection;
mod convert;
mod gate;
mod subscriber;
mod topology;

pub use broker::AmqpBroker;
pub use config::AmqpConfig;
