//! In-memory implementations of every store trait, and (with the `tokio` feature) a broker.
//!
//! For unit tests, examples and single-process prototypes: nothing survives the process.
//! Each passes the same conformance suites (see the `testkit` feature) as the SQL and broker
//! adapters.

pub mod dead_letter;
pub use dead_letter::MemoryDeadLetterStore;
#[cfg(feature = "tokio")]
pub mod broker;
pub mod idempotency;
pub mod inbox;
pub mod outbox;
pub mod saga_store;
