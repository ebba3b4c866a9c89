//! The crate's error type and the kind a caller branches on.

use std::fmt;

/// What a caller should do about an [`Error`], independent of its message.
///
/// Stores, brokers and the HTTP layer of an application map errors by kind:
/// `InvalidInput` is a 4xx, `Conflict` is a reload-and-retry (or 409),
/// `Transient` is a retry with backoff, `Permanent` is a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input can never succeed as given (bad bytes, unknown type, invalid definition).
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// Someone else changed the same thing first (optimistic version, idempotency key in use).
    Conflict,
    /// A passing fault (connection dropped, timeout): retrying later may succeed.
    Transient,
    /// A fault that retrying will not fix.
    Permanent,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
        })
    }
}

/// A boxed error from an adapter's backend (database driver, broker client).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every error `saga-core` and the adapters built on its traits return.
///
/// Each variant says what a caller should do with it; [`Error::kind`] gives the
/// coarse classification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No event type of this name is registered. Dead-letter the message; register the type
    /// (or route it elsewhere) and replay.
    #[error("unknown event type `{event_type}`")]
    UnknownEventType {
        /// The `event_type` the message carried.
        event_type: String,
    },

    /// The message is of a newer schema version than this process knows. Dead-letter it and
    /// deploy a consumer that knows the version, then replay.
    #[error(
        "event `{event_type}` has version {version}, newer than the latest known version {latest}"
    )]
    UnsupportedVersion {
        /// The event type.
        event_type: String,
        /// The version the message carried.
        version: u32,
        /// The newest version registered here.
        latest: u32,
    },

    /// No upcaster leads from this version towards the current one. Register the missing
    /// upcaster; until then the message is dead-lettered.
    #[error("event `{event_type}`: no upcaster from version {from}")]
    MissingUpcaster {
        /// The event type.
        event_type: String,
        /// The version no upcaster starts from.
        from: u32,
    },

    /// The payload does not fit the type (after upcasting). Permanent: dead-letter it.
    #[error("event `{event_type}` version {version}: payload does not fit: {reason}")]
    PayloadMismatch {
        /// The event type.
        event_type: String,
        /// The version being decoded (after upcasting).
        version: u32,
        /// What did not fit.
        reason: String,
    },

    /// Bytes or a document that is not a valid envelope (or CloudEvent). Permanent.
    #[error("invalid envelope: {reason}")]
    InvalidEnvelope {
        /// What is wrong with it.
        reason: String,
    },

    /// A saga definition that cannot run (no steps, duplicate names, clashing replies).
    /// Fix the definition; nothing was started.
    #[error("invalid saga definition `{saga}`: {reason}")]
    InvalidDefinition {
        /// The saga's name.
        saga: String,
        /// What is wrong.
        reason: String,
    },

    /// A topic pattern that is not AMQP-style (`order.*`, `payment.#`).
    #[error("invalid topic pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern given.
        pattern: String,
        /// What is wrong.
        reason: String,
    },

    /// Some other argument a caller passed is out of range. Fix the call.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The record does not exist.
    #[error("{entity} `{id}` not found")]
    NotFound {
        /// What kind of record ("saga", "dead letter", ...).
        entity: &'static str,
        /// Its id.
        id: String,
    },

    /// Optimistic concurrency: the record changed since it was loaded. Reload, re-apply, save.
    #[error(
        "{entity} `{id}` was changed concurrently: expected version {expected}, found {actual}"
    )]
    VersionConflict {
        /// What kind of record.
        entity: &'static str,
        /// Its id.
        id: String,
        /// The version the caller loaded.
        expected: u64,
        /// The version stored now.
        actual: u64,
    },

    /// A record with this id exists already (creating a saga twice, say).
    #[error("{entity} `{id}` already exists")]
    AlreadyExists {
        /// What kind of record.
        entity: &'static str,
        /// Its id.
        id: String,
    },

    /// The broker, subscription or store was shut down. Stop using it.
    #[error("closed: {0}")]
    Closed(String),

    /// A backend (database, broker) failed. `transient` says whether a retry may help.
    #[error("backend error: {source}")]
    Backend {
        /// The driver's error.
        #[source]
        source: BoxError,
        /// Whether retrying may succeed.
        transient: bool,
    },
}

impl Error {
    /// The classification a caller branches on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownEventType { .. }
            | Error::UnsupportedVersion { .. }
            | Error::MissingUpcaster { .. }
            | Error::PayloadMismatch { .. }
            | Error::InvalidEnvelope { .. }
            | Error::InvalidDefinition { .. }
            | Error::InvalidPattern { .. }
            | Error::InvalidArgument(_) => ErrorKind::InvalidInput,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::VersionConflict { .. } | Error::AlreadyExists { .. } => ErrorKind::Conflict,
            Error::Closed(_) => ErrorKind::Permanent,
            Error::Backend { transient, .. } => {
                if *transient {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Permanent
                }
            }
        }
    }

    /// Wraps a backend error that a retry may fix.
    pub fn transient(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            source: source.into(),
            transient: true,
        }
    }

    /// Wraps a backend error that a retry will not fix.
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            source: source.into(),
            transient: false,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
