#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "_sql")]
pub mod batch;
pub mod names;
pub mod partition;
pub mod relay;
#[cfg(feature = "_sql")]
pub(crate) mod sql;
#[cfg(feature = "_sql")]
mod time;
#[cfg(feature = "_sql")]
pub mod uow;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "_sql")]
pub use batch::{Batch, BatchOutcome, BatchStatement, InboxMark, StatementId};
pub use names::Tables;
pub use relay::{Relay, RelayConfig, RelayMetrics, RelaySource};
#[cfg(feature = "_sql")]
pub use sql::store::SqlStore;
#[cfg(feature = "_sql")]
pub use uow::{Handled, UnitOfWork};
