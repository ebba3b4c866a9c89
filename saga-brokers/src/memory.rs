//! The in-memory broker: a re-export of [`saga_core::memory::MemoryBroker`].
//!
//! It lives in `saga-core` (behind its `tokio` feature) so that saga-core's own tests run the
//! broker conformance suite against a real implementation without a dependency cycle; see
//! `docs/decisions/0001-memory-broker-in-saga-core.md`. This module only makes it reachable
//! next to the other adapters, so an application picks its transport from one crate.
//!
//! | property        | in-memory broker                                                   |
//! |-----------------|--------------------------------------------------------------------|
//! | durability      | none: nothing survives the process                                 |
//! | routing         | AMQP-style topic patterns (`order.*`, `payment.#`)                 |
//! | competing consumers | yes, per subscription name, with a prefetch bound             |
//! | per-key order   | on ordered subscriptions; a dead letter parks its key               |
//! | delayed retry   | yes (tokio time)                                                   |
//! | dedup           | none (consumers dedupe with their inbox)                           |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> saga_core::Result<()> {
//! use std::sync::Arc;
//! use futures_util::StreamExt;
//! use saga_brokers::memory::MemoryBroker;
//! use saga_core::memory::MemoryDeadLetterStore;
//! use saga_core::{Envelope, Publisher, Subscriber, Subscription, SystemClock};
//!
//! let broker = MemoryBroker::new(Arc::new(MemoryDeadLetterStore::default()), Arc::new(SystemClock));
//! let mut stream = broker.subscribe(&Subscription::new("billing", ["order.*"])).await?;
//! broker.publish(&[Envelope::new("order.placed", "order-1", serde_json::json!({}))]).await?;
//! let delivery = stream.next().await.expect("open")?;
//! delivery.ack().await?;
//! # Ok(()) }
//! ```

pub use saga_core::memory::broker::MemoryBroker;
