//! Postgres stores, unit of work and the partitioned relay source.
//!
//! | property | behaviour |
//! | --- | --- |
//! | isolation | READ COMMITTED; the saga version check and the inbox primary key make concurrent units of work safe |
//! | durability | the server's (`synchronous_commit`) |
//! | ordering | per aggregate, with any number of relays: aggregate ids hash into partitions, each leased by one relay at a time (no leader); within its partitions a relay claims by `seq` with `FOR UPDATE` |
//! | wake-up | `pg_notify` on commit of a unit of work that appended; relays `LISTEN`, with a slow fallback poll |
//! | dedup | inbox `(consumer, event_id)` primary key, marked on the unit of work's transaction (a concurrent duplicate waits for the first commit, then sees the mark) |
//! | several services | one schema per service (`billing.outbox`, `orders.outbox`, ...) |

mod lease;
mod migrations;
mod relay;
mod store;

pub use lease::{LeaseConfig, Leases};
pub use relay::PgRelaySource;
pub use store::{PgOptions, PgStore};
