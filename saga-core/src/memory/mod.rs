//! In-memory implementations of every store trait, and (with the `tokio` feature) a broker.
//!
//! For unit tests, examples and single-process prototypes: nothing survives the process.
//! Each passes the same conformance suites (see the `testkit` feature) as the SQL and broker
//! adapters.

#[cfg(feature = "tokio")]
pub mod broker;
pub mod dead_letter;
pub mod idempotency;
pub mod inbox;
pub mod outbox;
pub mod saga_store;

#[cfg(feature = "tokio")]
pub use broker::MemoryBroker;
pub use dead_letter::MemoryDeadLetterStore;
pub use idempotency::MemoryIdempotencyStore;
pub use inbox::MemoryInbox;
pub use outbox::MemoryOutbox;
pub use saga_store::MemorySagaStore;
