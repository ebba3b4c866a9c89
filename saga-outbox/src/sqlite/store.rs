//! Opening a SQLite store: WAL, busy timeout, one writer, the chosen durability.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use saga_core::clock::{SharedClock, SystemClock};
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Notify;

use crate::names::Tables;
use crate::sql::error::db_err;
use crate::sql::statements::{Dialect, Statements};
use crate::sql::store::{Inner, SqlStore};

/// The stores of one service in a SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

/// How hard a commit is made durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL` (WAL): survives a killed process, not a power loss.
    #[default]
    Normal,
    /// `synchronous=FULL`: survives a power loss too; each commit syncs the WAL.
    Full,
}

/// Where and how to open a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    path: PathBuf,
    prefix: String,
    durability: Durability,
    busy_timeout: Duration,
    readers: u32,
    partitions: u16,
    clock: SharedClock,
}

impl SqliteOptions {
    /// A database file at `path` (created if missing), no table prefix, `NORMAL` durability,
    /// a 5 s busy timeout, 4 reader connections, 16 partitions, the system clock.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            prefix: String::new(),
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            partitions: 16,
            clock: Arc::new(SystemClock),
        }
    }

    /// Prefixes every table name (`[a-z_][a-z0-9_]*`, e.g. `billing_`), so several services
    /// share one file.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the durability of a commit.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a statement waits for another process holding the write lock.
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How many read connections (at least 1).
    #[must_use]
    pub fn with_readers(mut self, readers: u32) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// The clock timestamps come from (tests pass a `ManualClock`).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the database and applies the migrations.
    pub async fn open(options: SqliteOptions) -> saga_core::Result<Self> {
        let tables = Tables::with_prefix(&options.prefix)?;
        let synchronous = match options.durability {
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Full => SqliteSynchronous::Full,
        };
        let connect = SqliteConnectOptions::new()
            .filename(&options.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(options.busy_timeout);
        // One writer: units of work queue for this connection instead of failing with
        // SQLITE_BUSY ("database is locked").
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await
            .map_err(db_err)?;
        {
            let mut conn = write.acquire().await.map_err(db_err)?;
            super::migrations::migrate(&mut conn, &tables).await?;
        }
        let read = SqlitePoolOptions::new()
            .max_connections(options.readers)
            .test_before_acquire(false)
            .connect_with(connect.read_only(true))
            .await
            .map_err(db_err)?;
        Ok(Self {
            inner: Arc::new(Inner {
                read,
                write,
                sql: Statements::new(&tables, Dialect::Sqlite),
                tables,
                clock: options.clock,
                partitions: options.partitions,
                signal: Arc::new(Notify::new()),
                channel: String::new(),
                remote_wake: None,
                local_parts: None,
            }),
        })
    }
}

crate::sql::backend::impl_sql_backend!(Sqlite, SqliteConnection);
