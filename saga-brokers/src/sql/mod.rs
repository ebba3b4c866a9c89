//! A durable queue in SQLite or Postgres: [`SqlBroker`].
//!
//! The embedded default transport: no server beyond the database the application already
//! has, and nothing lost on `kill -9`. A publish returns after its transaction commits.
//!
//! # Tables
//!
//! Created by embedded migrations (tracked in `<prefix>migrations`) under a configurable
//! prefix ([`SqlOptions::table_prefix`], default `saga_`) and, on Postgres, schema:
//!
//! * `<prefix>subscriptions (name, patterns, ordered)`: created by the first
//!   [`subscribe`](saga_core::Subscriber::subscribe) of a name and then kept, so the
//!   subscription collects messages while no consumer is attached.
//! * `<prefix>messages (id, subscription, event_id, agg_key, envelope, attempt, visible_at,
//!   locked_by, locked_until)`: one row per message *and* matching subscription. Publish
//!   fans out at publish time (topic matching with [`saga_core::TopicPattern`]) atomically:
//!   one transaction (on SQLite one multi-row `INSERT` when the fan-out fits in one, up to
//!   500 rows); `id` is the publish order.
//! * `<prefix>parked (subscription, agg_key, dead_letter_id, ord)`: keys held back behind a
//!   dead letter on ordered subscriptions.
//!
//! # Consuming
//!
//! A consumer claims up to its free prefetch of visible rows in one statement
//! (`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING` on Postgres; the
//! same without `SKIP LOCKED` on SQLite, whose single writer serialises claims: there the
//! broker's writes queue for one in-process gate instead of meeting on the database's lock,
//! where SQLite's busy handler would make them sleep), setting a
//! lease (`locked_by`, `locked_until`, [`SqlOptions::lease`]) and `attempt + 1`. Consumers
//! of one name compete for rows.
//!
//! * ack deletes the row;
//! * retry sets `visible_at = now + delay` and drops the lease (the next claim is the next
//!   attempt);
//! * acks and retries are group-committed: every consumer of one broker hands them to one
//!   task, which writes whatever is queued when it wakes (at most
//!   [`SqlOptions::max_settle_batch`]; acks as one `DELETE ... WHERE id IN (...)`) in one
//!   commit and then answers each caller. `ack()` returns after that commit, so an acked
//!   message is never delivered again; a failed batch fails each of its callers, and their
//!   messages come again as after any failed ack. There is no timer: a lone ack is written at
//!   once, and acks that arrive while one commit runs share the next
//!   ([`SqlBroker::settle_stats`] counts them);
//! * dead letter writes a [`DeadLetter`](saga_core::DeadLetter) to the store the broker was
//!   given, then deletes the row;
//! * a delivery dropped unsettled gives its lease back at once (a spawned task); if the
//!   process dies instead, the lease runs out and the row is claimed again. Either way the
//!   next delivery is the next attempt.
//!
//! Ordered subscriptions claim only the oldest row of each `aggregate_id` (so at most one
//! per key is in flight, in publish order, also across retries and competing consumers) and
//! skip parked keys. A dead letter parks its key; [`SqlBroker::replay_dead_letter`] puts the
//! message back at its old position and unparks, [`SqlBroker::discard_dead_letter`] unparks
//! (both through [`saga_core::DeadLetterReplay`] too).
//!
//! Wake-ups: an in-process `Notify` per subscription (publish, settle, replay in this
//! process), Postgres `LISTEN/NOTIFY` (publish in another process), a timer for the next
//! `visible_at` or lease end, and a slow fallback poll ([`SqlOptions::poll_interval`]).
//! There is no sleep per message.
//!
//! # Capabilities
//!
//! | property            | SQLite                                   | Postgres                                  |
//! |---------------------|------------------------------------------|-------------------------------------------|
//! | durability          | commit = confirm; WAL, `synchronous=FULL` by default | commit = confirm                |
//! | routing             | AMQP-style topics, matched at publish     | same                                      |
//! | competing consumers | yes (claims serialised by the writer lock) | yes (`FOR UPDATE SKIP LOCKED`)          |
//! | per-key order       | ordered subscriptions                     | ordered subscriptions                     |
//! | poison parks key    | yes, until replay or discard              | yes, until replay or discard              |
//! | delayed retry       | `visible_at`, never earlier than asked    | same                                      |
//! | redelivery          | at once on drop; after the lease on a crash | same                                    |
//! | cross-process wake-up | fallback poll                           | `LISTEN/NOTIFY`                           |
//! | dedup               | none: consumers dedupe by `event_id` (inbox) | same                                   |
//!
//! Subscriptions are created by `subscribe`; a message published before the first subscribe
//! of a name is not kept for it, as with a freshly declared AMQP queue.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> saga_core::Result<()> {
//! use std::sync::Arc;
//! use futures_util::StreamExt;
//! use saga_brokers::sql::{SqlBroker, SqlOptions};
//! use saga_core::memory::MemoryDeadLetterStore;
//! use saga_core::{Envelope, Publisher, Subscriber, Subscription};
//!
//! let path = std::env::temp_dir().join(format!("saga-doc-{}.db", uuid::Uuid::now_v7()));
//! let broker = SqlBroker::open_sqlite(&path, Arc::new(MemoryDeadLetterStore::default()),
//!     SqlOptions::default()).await?;
//! let mut stream = broker.subscribe(&Subscription::new("billing", ["order.*"])).await?;
//! broker.publish(&[Envelope::new("order.placed", "order-1", serde_json::json!({}))]).await?;
//! let delivery = stream.next().await.expect("open")?;
//! assert_eq!(delivery.envelope.event_type, "order.placed");
//! delivery.ack().await?;
//! broker.close().await;
//! # drop(stream); drop(broker);
//! # for ext in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{ext}", path.display())); }
//! # Ok(()) }
//! ```

mod broker;
mod consumer;
mod db;
mod listen;
mod options;
mod settle;
mod shared;

pub use broker::SqlBroker;
pub use options::SqlOptions;
pub use settle::SettleStats;
