//! Settings of a [`SqlBroker`](super::SqlBroker): table names, lease, polling, clock.

use std::sync::Arc;
use std::time::Duration;

use saga_core::clock::{SharedClock, SystemClock};
use saga_core::{Error, Result};

/// How a [`SqlBroker`](super::SqlBroker) names its tables and times its work.
///
/// ```
/// use std::time::Duration;
/// use saga_brokers::sql::SqlOptions;
/// let options = SqlOptions::default()
///     .with_table_prefix("orders_")
///     .with_lease(Duration::from_secs(60));
/// assert!(options.validate().is_ok());
/// assert!(SqlOptions::default().with_table_prefix("bad-name").validate().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// Prefix of every table (`saga_` gives `saga_messages`, ...); `[a-z_][a-z0-9_]*`.
    pub table_prefix: String,
    /// Postgres schema holding the tables (created if missing); ignored on SQLite.
    pub schema: String,
    /// How long a claimed message stays invisible to other consumers. A consumer that dies
    /// holding it (the process killed) frees it when the lease runs out.
    pub lease: Duration,
    /// The slow fallback poll: how long an idle consumer waits when no wake-up arrives
    /// (messages published by another process on SQLite, a lost `NOTIFY`).
    pub poll_interval: Duration,
    /// SQLite only: `synchronous = FULL` (the default: a commit survives a power cut) or
    /// `NORMAL` (survives `kill -9` of the process but not a power cut; faster).
    pub sqlite_full_sync: bool,
    /// SQLite only: connections in the pool the broker opens. The broker's writes take one
    /// connection at a time (SQLite has one writer); the others serve its reads.
    pub sqlite_max_connections: u32,
    /// The clock stamping `visible_at`, leases and dead letters.
    pub clock: SharedClock,
    /// Most acks and retries written in one commit by the broker's group commit (at least 1);
    /// callers beyond four batches wait to enqueue.
    pub max_settle_batch: usize,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            table_prefix: "saga_".into(),
            schema: "public".into(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            sqlite_full_sync: true,
            sqlite_max_connections: 4,
            clock: Arc::new(SystemClock),
            max_settle_batch: 256,
        }
    }
}

impl SqlOptions {
    /// Sets the table prefix.
    #[must_use]
    pub fn with_table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Sets the Postgres schema.
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the lease of a claimed message.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the fallback poll interval.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Chooses SQLite's `synchronous` level: `true` for `FULL`, `false` for `NORMAL`.
    #[must_use]
    pub fn with_sqlite_full_sync(mut self, full: bool) -> Self {
        self.sqlite_full_sync = full;
        self
    }

    /// Sets the clock.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the largest group commit of acks and retries.
    #[must_use]
    pub fn with_max_settle_batch(mut self, max: usize) -> Self {
        self.max_settle_batch = max;
        self
    }

    /// Checks the identifiers and durations; [`Error::InvalidArgument`] says which is wrong.
    pub fn validate(&self) -> Result<()> {
        if !self.table_prefix.is_empty() {
            validate_identifier("table prefix", &self.table_prefix)?;
        }
        validate_identifier("schema", &self.schema)?;
        if self.lease.is_zero() {
            return Err(Error::InvalidArgument("the lease must be positive".into()));
        }
        if self.poll_interval.is_zero() {
            return Err(Error::InvalidArgument(
                "the poll interval must be positive".into(),
            ));
        }
        if self.max_settle_batch == 0 {
            return Err(Error::InvalidArgument(
                "the settle batch must hold at least one settlement".into(),
            ));
        }
        if self.sqlite_max_connections == 0 {
            return Err(Error::InvalidArgument(
                "SQLite needs at least one connection".into(),
            ));
        }
        Ok(())
    }
}

/// Accepts `[a-z_][a-z0-9_]*` of at most 40 characters (room for the table suffixes within
/// Postgres' 63-byte identifiers).
pub(crate) fn validate_identifier(what: &str, ident: &str) -> Result<()> {
    let mut chars = ident.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && ident.len() <= 40 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} `{ident}` is not an identifier [a-z_][a-z0-9_]* of at most 40 characters"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        for good in ["saga_", "a", "_x1", "orders_v2_"] {
            assert!(validate_identifier("t", good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "A", "a-b", "a b", "a;drop", "é", &"a".repeat(41)] {
            assert!(validate_identifier("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_prefix_is_allowed_but_zero_lease_is_not() {
        assert!(
            SqlOptions::default()
                .with_table_prefix("")
                .validate()
                .is_ok()
        );
        assert!(
            SqlOptions::default()
                .with_lease(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            SqlOptions::default()
                .with_schema("Public")
                .validate()
                .is_err()
        );
    }
}
