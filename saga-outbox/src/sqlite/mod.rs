//! SQLite stores (bundled SQLite), unit of work and relay source.
//!
//! | property | behaviour |
//! | --- | --- |
//! | journal | WAL: readers never block the writer |
//! | writers | one connection writes (a single-connection pool): units of work queue for it instead of failing with "database is locked"; `busy_timeout` covers other processes |
//! | durability | [`Durability::Normal`] (default, `synchronous=NORMAL`): a commit survives `kill -9` of the process but the last commits may be lost on power loss or an OS crash; [`Durability::Full`] (`synchronous=FULL`) survives power loss too, at several times the commit cost |
//! | ordering | the relay publishes by `seq`; one relay per database file |
//! | dedup | inbox `(consumer, event_id)` primary key, marked on the unit of work's transaction |
//! | several services | a table prefix per service (`billing_outbox`, `orders_outbox`, ...) |
//!
//! ```no_run
//! # async fn demo() -> saga_core::Result<()> {
//! use saga_outbox::sqlite::{Durability, SqliteOptions, SqliteStore};
//! let store = SqliteStore::open(
//!     SqliteOptions::new("orders.db").with_prefix("orders_").with_durability(Durability::Full),
//! ).await?;
//! let mut uow = store.begin().await?;
//! uow.publish(&[saga_core::Envelope::new("order.placed", "order-1", serde_json::json!({}))]).await?;
//! uow.commit().await?;
//! # Ok(()) }
//! ```

mod migrations;
mod relay;
mod store;

pub use relay::SqliteRelaySource;
pub use store::{Durability, SqliteOptions, SqliteStore};
