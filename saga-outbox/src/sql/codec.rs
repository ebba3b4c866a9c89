//! Rows to and from saga-core types, independent of the database.

use chrono::{DateTime, Utc};
use saga_core::dead_letter::{DeadLetter, DeadLetterStatus};
use saga_core::idempotency::StoredResponse;
use saga_core::saga::instance::{SagaInstance, SagaStatus};
use saga_core::saga::log::SagaLogEntry;
use saga_core::{Envelope, Result};

use super::error::{corrupt, to_i64};
use crate::time::{from_nanos, to_nanos};

/// The columns of a saga row.
pub(crate) struct SagaRow {
    pub(crate) id: String,
    pub(crate) saga: String,
    pub(crate) status: &'static str,
    pub(crate) terminal: i32,
    pub(crate) deadline: Option<i64>,
    pub(crate) version: i64,
    pub(crate) created_at: i64,
    pub(crate) body: String,
}

pub(crate) fn saga_row(instance: &SagaInstance) -> Result<SagaRow> {
    Ok(SagaRow {
        id: instance.id.to_string(),
        saga: instance.saga.clone(),
        status: instance.status.as_str(),
        terminal: i32::from(instance.is_terminal()),
        deadline: instance.deadline.map(to_nanos),
        version: to_i64(instance.version, "saga version")?,
        created_at: to_nanos(instance.created_at),
        body: to_json(instance, "saga")?,
    })
}

pub(crate) fn saga_from(body: &str) -> Result<SagaInstance> {
    serde_json::from_str(body).map_err(|e| corrupt("saga", e))
}

pub(crate) fn log_from(body: &str) -> Result<SagaLogEntry> {
    serde_json::from_str(body).map_err(|e| corrupt("saga log entry", e))
}

pub(crate) fn envelope_from(body: &str) -> Result<Envelope> {
    serde_json::from_str(body).map_err(|e| corrupt("outbox envelope", e))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| saga_core::Error::InvalidArgument(format!("{what} does not encode: {e}")))
}

pub(crate) fn status_from(s: &str) -> Result<DeadLetterStatus> {
    match s {
        "pending" => Ok(DeadLetterStatus::Pending),
        "replayed" => Ok(DeadLetterStatus::Replayed),
        "discarded" => Ok(DeadLetterStatus::Discarded),
        other => Err(corrupt("dead letter status", other)),
    }
}

pub(crate) fn saga_status_str(s: Option<SagaStatus>) -> Option<&'static str> {
    s.map(|s| s.as_str())
}

/// A dead letter from its stored body and its current status.
pub(crate) fn dead_letter_from(body: &str, status: &str, updated_at: i64) -> Result<DeadLetter> {
    let mut letter: DeadLetter =
        serde_json::from_str(body).map_err(|e| corrupt("dead letter", e))?;
    letter.status = status_from(status)?;
    letter.updated_at = from_nanos(updated_at);
    Ok(letter)
}

pub(crate) fn response_from(body: &str) -> Result<StoredResponse> {
    serde_json::from_str(body).map_err(|e| corrupt("idempotency response", e))
}

/// `[1,2,3]`: a list of sequence numbers for the `id_list` subquery.
pub(crate) fn id_list(seqs: &[i64]) -> String {
    let mut out = String::with_capacity(seqs.len() * 8 + 2);
    out.push('[');
    for (i, seq) in seqs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&seq.to_string());
    }
    out.push(']');
    out
}

/// `LIMIT` as a bound `BIGINT` (`None` is no limit).
pub(crate) fn limit(limit: Option<usize>) -> i64 {
    limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX))
}

pub(crate) fn nanos(at: DateTime<Utc>) -> i64 {
    to_nanos(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_list_is_json() {
        assert_eq!(id_list(&[]), "[]");
        assert_eq!(id_list(&[1, -2, 30]), "[1,-2,30]");
    }

    #[test]
    fn bad_rows_are_errors_not_panics() {
        assert!(saga_from("{").is_err());
        assert!(envelope_from("null").is_err());
        assert!(status_from("weird").is_err());
        assert!(dead_letter_from("[]", "pending", 0).is_err());
    }
}
