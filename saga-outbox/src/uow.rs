//! The unit of work: a handler's business writes, its inbox mark, its outgoing events and its
//! saga state on one transaction, committed once.
//!
//! ```ignore
//! let mut uow = store.begin().await?;
//! if !uow.mark_inbox("billing", delivery.envelope.event_id).await? {
//!     return Ok(Handled::Duplicate); // dropped: rolled back, nothing written
//! }
//! sqlx::query("INSERT INTO invoices (id, total) VALUES ($1, $2)")
//!     .bind(id).bind(total)
//!     .execute(uow.tx()).await?;
//! uow.publish(&[Envelope::new("invoice.created", id, payload)]).await?;
//! uow.save_saga(&instance, expected_version).await?;
//! uow.commit().await?;
//! ```
//!
//! Dropping a unit of work without `commit` rolls it back: an error anywhere in the handler
//! leaves no business write, no inbox mark and no outbox row.

use sqlx::{Database, Transaction};

use crate::sql::store::SqlStore;

/// One transaction of a [`SqlStore`]: see the [module docs](self).
///
/// The methods (`tx`, `mark_inbox`, `publish`, `create_saga`, `save_saga`,
/// `append_saga_log`, `batch`, `commit`, `rollback`) exist for `UnitOfWork<Sqlite>` and
/// `UnitOfWork<Postgres>`, written once for both.
pub struct UnitOfWork<DB: Database> {
    pub(crate) tx: Transaction<'static, DB>,
    pub(crate) store: SqlStore<DB>,
    pub(crate) published: usize,
    /// Appended to a partition no relay of this process holds: other processes' relays
    /// must be told (`NOTIFY`) after the commit.
    pub(crate) remote: bool,
    /// A batch found a duplicate: the effects written since must not commit.
    pub(crate) discard: bool,
}

impl<DB: Database> UnitOfWork<DB> {
    pub(crate) fn new(tx: Transaction<'static, DB>, store: SqlStore<DB>) -> Self {
        Self {
            tx,
            store,
            published: 0,
            remote: false,
            discard: false,
        }
    }

    /// How many events this unit of work appended so far.
    pub fn published_count(&self) -> usize {
        self.published
    }
}

impl<DB: Database> std::fmt::Debug for UnitOfWork<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("store", &self.store)
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

/// What a handler run through a unit of work did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled<T> {
    /// First delivery: the effects were committed.
    Processed(T),
    /// Already processed by this consumer: nothing was written.
    Duplicate,
}
