//! Driver errors as `saga_core::Error`: transient (retry may help) or permanent.

use saga_core::Error;

/// Maps a sqlx error: lost connections, pool timeouts, serialisation failures, deadlocks and
/// a busy SQLite file are transient; everything else is permanent.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    let transient = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            matches!(
                code.as_deref(),
                // Postgres: serialization_failure, deadlock_detected, lock_not_available,
                // admin shutdown / cannot connect now; SQLite: BUSY, LOCKED (and extended).
                Some("40001" | "40P01" | "55P03" | "57P01" | "57P03" | "5" | "6" | "517" | "262")
            )
        }
        _ => false,
    };
    if transient {
        Error::transient(e)
    } else {
        Error::permanent(e)
    }
}

/// A stored value that does not decode (corrupt row): permanent.
pub(crate) fn corrupt(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::permanent(format!("stored {what} does not decode: {reason}"))
}

/// A `u64`/`usize` that does not fit a `BIGINT`.
pub(crate) fn to_i64(value: u64, what: &str) -> saga_core::Result<i64> {
    i64::try_from(value).map_err(|_| Error::InvalidArgument(format!("{what} {value} is too large")))
}
