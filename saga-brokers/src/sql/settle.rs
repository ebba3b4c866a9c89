//! Group commit of settlements: the acks and retries of every consumer of one broker go to one
//! task, which writes whatever is queued when it wakes (up to
//! [`SqlOptions::max_settle_batch`](super::SqlOptions::max_settle_batch)) in one commit and then
//! answers each caller. No timer: an idle broker commits a lone ack at once; under load the
//! acks that arrive during one commit share the next.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use saga_core::{Error, ErrorKind, Result};
use sqlx::{Pool, Postgres, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::db::{Db, Stmt, db_err, sql};

/// One settlement, written by the statements of [`Statements`](super::db::Statements).
#[derive(Debug)]
pub(crate) enum Settle {
    /// Deletes the row: `ack`, batched as `ack_many`.
    Ack {
        /// The row.
        id: i64,
    },
    /// Makes the row visible again at `visible` and drops the lease, if this claim (`attempt`,
    /// `consumer`) still holds it: `retry`.
    Retry {
        /// The row.
        id: i64,
        /// The attempt of the claim.
        attempt: i64,
        /// The consumer of the claim.
        consumer: Arc<str>,
        /// When it becomes visible, in microseconds since the epoch.
        visible: i64,
    },
}

/// A settlement and the caller waiting for its commit.
struct Request {
    op: Settle,
    done: oneshot::Sender<Result<()>>,
}

/// What the group commit of one [`SqlBroker`](super::SqlBroker) has done since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleStats {
    /// Batches committed (one database commit each).
    pub commits: u64,
    /// Acks and retries those commits carried.
    pub settled: u64,
    /// Batches that failed; each of their callers got the error.
    pub failed_batches: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    settled: AtomicU64,
    failed_batches: AtomicU64,
}

/// The statements one batch runs.
struct BatchStatements {
    /// `DELETE ... WHERE id IN (<one bound list>)`.
    ack_many: Stmt,
    retry: Stmt,
}

/// The callers' side of the settlement task. The task ends once this is dropped and the queue
/// is drained.
pub(crate) struct Settler {
    tx: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Settler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settler")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Settler {
    /// Spawns the settlement task on the current tokio runtime; batches of at most
    /// `max_batch`, and a queue of `4 * max_batch` callers before they wait to enqueue.
    pub(crate) fn start(db: Db, ack_many: Stmt, retry: Stmt, max_batch: usize) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::InvalidArgument("an SqlBroker must be opened inside a tokio runtime".into())
        })?;
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch.saturating_mul(4));
        let counters = Arc::new(Counters::default());
        let stmts = BatchStatements { ack_many, retry };
        runtime.spawn(run(db, stmts, rx, max_batch, counters.clone()));
        Ok(Self { tx, counters })
    }

    /// Queues `op` and returns once the batch holding it committed, or with that batch's
    /// error (then nothing of the batch was written). [`Error::Closed`] if the task is gone
    /// (its runtime shut down).
    pub(crate) async fn settle(&self, op: Settle) -> Result<()> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Request { op, done })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    pub(crate) fn stats(&self) -> SettleStats {
        SettleStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            settled: self.counters.settled.load(Ordering::Relaxed),
            failed_batches: self.counters.failed_batches.load(Ordering::Relaxed),
        }
    }
}

fn gone() -> Error {
    Error::Closed("sql broker settlement task".into())
}

/// The task: takes what is queued, writes it in one commit, answers every caller; ends when
/// every [`Settler`] is gone and the queue is empty.
async fn run(
    db: Db,
    stmts: BatchStatements,
    mut rx: mpsc::Receiver<Request>,
    max_batch: usize,
    counters: Arc<Counters>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let written = match &db {
            Db::Sqlite(pool, gate) => {
                let _writing = gate.lock().await;
                write_sqlite(pool, &stmts, &batch).await
            }
            Db::Postgres(pool) => write_postgres(pool, &stmts, &batch).await,
        };
        match written {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .settled
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for request in batch.drain(..) {
                    // A caller that stopped waiting: its settlement is written all the same.
                    let _ = request.done.send(Ok(()));
                }
            }
            Err(e) => {
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, settlements = batch.len(),
                    "sql broker: a settlement batch failed; its leases run out and the messages come again");
                let e = Arc::new(e);
                for request in batch.drain(..) {
                    let _ = request.done.send(Err(share(&e)));
                }
            }
        }
    }
}

/// The acked row ids of a batch, and whether it holds anything else.
fn acked(batch: &[Request]) -> (Vec<i64>, bool) {
    let mut ids = Vec::with_capacity(batch.len());
    let mut others = false;
    for request in batch {
        match request.op {
            Settle::Ack { id } => ids.push(id),
            Settle::Retry { .. } => others = true,
        }
    }
    (ids, others)
}

/// Binds each retry of `$batch` to the `retry` statement and runs it in `$tx`.
macro_rules! retries_in {
    ($stmts:expr, $tx:ident, $batch:expr) => {
        for request in $batch {
            if let Settle::Retry {
                id,
                attempt,
                consumer,
                visible,
            } = &request.op
            {
                sqlx::query(sql(&$stmts.retry))
                    .bind(*visible)
                    .bind(*id)
                    .bind(*attempt)
                    .bind(&**consumer)
                    .execute(&mut *$tx)
                    .await
                    .map_err(db_err)?;
            }
        }
    };
}

/// Acks only: one autocommit `DELETE` (atomic on its own). With retries: one `BEGIN
/// IMMEDIATE` transaction.
async fn write_sqlite(
    pool: &Pool<Sqlite>,
    stmts: &BatchStatements,
    batch: &[Request],
) -> Result<()> {
    let (ids, others) = acked(batch);
    // The ids as a JSON array, expanded by `json_each`: one statement text for every size.
    let list = serde_json::to_string(&ids).map_err(|e| Error::permanent(e.to_string()))?;
    if !others {
        sqlx::query(sql(&stmts.ack_many))
            .bind(list)
            .execute(pool)
            .await
            .map_err(db_err)?;
        return Ok(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    if !ids.is_empty() {
        sqlx::query(sql(&stmts.ack_many))
            .bind(list)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    retries_in!(stmts, tx, batch);
    tx.commit().await.map_err(db_err)
}

/// As [`write_sqlite`], with the ids bound as one `BIGINT[]`.
async fn write_postgres(
    pool: &Pool<Postgres>,
    stmts: &BatchStatements,
    batch: &[Request],
) -> Result<()> {
    let (ids, others) = acked(batch);
    if !others {
        sqlx::query(sql(&stmts.ack_many))
            .bind(ids)
            .execute(pool)
            .await
            .map_err(db_err)?;
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(db_err)?;
    if !ids.is_empty() {
        sqlx::query(sql(&stmts.ack_many))
            .bind(ids)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    retries_in!(stmts, tx, batch);
    tx.commit().await.map_err(db_err)
}

/// The error of a failed batch, given to one of its callers.
#[derive(Debug)]
struct BatchFailed(Arc<Error>);

impl fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "settlement batch failed: {}", self.0)
    }
}

impl std::error::Error for BatchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// One caller's copy of a batch error, of the same kind ([`Error::Closed`] stays `Closed`).
fn share(e: &Arc<Error>) -> Error {
    match &**e {
        Error::Closed(what) => Error::Closed(what.clone()),
        other => Error::Backend {
            transient: other.kind() == ErrorKind::Transient,
            source: Box::new(BatchFailed(e.clone())),
        },
    }
}
