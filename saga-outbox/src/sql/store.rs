//! [`SqlStore`]: one type for both databases, holding the pools, the statements and the
//! clock. The trait impls are written once (see `backend.rs`) and instantiated per database.

use std::sync::Arc;

use saga_core::clock::SharedClock;
use sqlx::{Database, Pool};
use tokio::sync::Notify;

use super::statements::Statements;
use crate::names::Tables;

/// The stores of one service (outbox, inbox, sagas and their logs, dead letters, idempotency
/// keys) in one SQL database, and the [`UnitOfWork`](crate::UnitOfWork) that writes to them
/// on one transaction.
///
/// Cheap to clone (one `Arc`). Build it with `SqliteStore::open` or `PgStore::connect`.
pub struct SqlStore<DB: Database> {
    pub(crate) inner: Arc<Inner<DB>>,
}

pub(crate) struct Inner<DB: Database> {
    /// Reads (SQLite: several connections; Postgres: the same pool as `write`).
    pub(crate) read: Pool<DB>,
    /// Writes (SQLite: one connection, so one writer at a time).
    pub(crate) write: Pool<DB>,
    pub(crate) sql: Statements,
    pub(crate) tables: Tables,
    pub(crate) clock: SharedClock,
    pub(crate) partitions: u16,
    /// Woken after every commit that appended to the outbox (the relay waits on it).
    pub(crate) signal: Arc<Notify>,
    /// Postgres `LISTEN/NOTIFY` channel.
    pub(crate) channel: String,
    /// Postgres: asks the notifier task to `NOTIFY` the channel after a commit (a full
    /// channel of one means a notification is already pending: commits coalesce).
    pub(crate) remote_wake: Option<tokio::sync::mpsc::Sender<()>>,
    /// Postgres: the partitions relays of this process hold (a commit that appended only to
    /// those needs no `NOTIFY`).
    pub(crate) local_parts: Option<Arc<crate::partition::LocalHolders>>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<DB: Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &DB::NAME)
            .field("tables", &self.inner.tables)
            .field("partitions", &self.inner.partitions)
            .finish_non_exhaustive()
    }
}

impl<DB: Database> SqlStore<DB> {
    /// The names of this service's tables.
    pub fn tables(&self) -> &Tables {
        &self.inner.tables
    }

    /// The pool to read with (and, on Postgres, to write with).
    pub fn read_pool(&self) -> &Pool<DB> {
        &self.inner.read
    }

    /// The pool to write with (SQLite: its single connection).
    pub fn write_pool(&self) -> &Pool<DB> {
        &self.inner.write
    }

    /// The clock every timestamp comes from.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// How many partitions the aggregate ids are hashed into (relay leases).
    pub fn partitions(&self) -> u16 {
        self.inner.partitions
    }

    /// Notified after each commit that appended to the outbox through this store.
    pub fn commit_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.signal)
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }
}
