//! How a message handler says what went wrong.

use std::fmt;

/// The outcome of a failed handler: retry it, or give up on this message now.
///
/// ```
/// use saga_core::HandlerError;
/// let e = HandlerError::transient("database connection reset");
/// assert!(e.is_transient());
/// let e = HandlerError::permanent("order total is negative");
/// assert!(!e.is_transient());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// A passing fault: retry with backoff until the attempt limit, then dead-letter.
    Transient(String),
    /// Retrying will not help (bad data, a rule violated): dead-letter at once.
    Permanent(String),
}

impl HandlerError {
    /// A transient error with this message.
    pub fn transient(msg: impl Into<String>) -> Self {
        HandlerError::Transient(msg.into())
    }

    /// A permanent error with this message.
    pub fn permanent(msg: impl Into<String>) -> Self {
        HandlerError::Permanent(msg.into())
    }

    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, HandlerError::Transient(_))
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            HandlerError::Transient(m) | HandlerError::Permanent(m) => m,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Transient(m) => write!(f, "transient: {m}"),
            HandlerError::Permanent(m) => write!(f, "permanent: {m}"),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<crate::Error> for HandlerError {
    /// Store and decode errors classify themselves: transient backend faults and conflicts
    /// retry, everything else (bad input, unknown types, newer versions) is permanent.
    fn from(e: crate::Error) -> Self {
        use crate::ErrorKind;
        match e.kind() {
            ErrorKind::Transient | ErrorKind::Conflict => HandlerError::Transient(e.to_string()),
            _ => HandlerError::Permanent(e.to_string()),
        }
    }
}
