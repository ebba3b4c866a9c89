//! The app's error type, and how it reads to a message handler and to an HTTP client.

use saga_core::HandlerError;

use crate::api::problem::Problem;

/// What can go wrong inside a service.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A database statement failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A store, broker or saga operation failed.
    #[error(transparent)]
    Core(#[from] saga_core::Error),
    /// A stored or received document did not decode.
    #[error("decoding {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        source: serde_json::Error,
    },
    /// The settings are unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A dependency did not answer (the payment gateway during an outage, or its circuit is
    /// open): retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A file or socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl AppError {
    /// A decoding error.
    pub fn decode(what: &'static str, source: serde_json::Error) -> Self {
        AppError::Decode { what, source }
    }
}

impl From<AppError> for HandlerError {
    /// Database and broker faults retry; documents that do not decode never will.
    fn from(e: AppError) -> Self {
        match e {
            AppError::Core(e) => e.into(),
            AppError::Decode { .. } | AppError::Config(_) => HandlerError::permanent(e.to_string()),
            AppError::Db(_) | AppError::Io(_) | AppError::Unavailable(_) => {
                HandlerError::transient(e.to_string())
            }
        }
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        tracing::error!(error = %e, "request failed");
        match &e {
            AppError::Core(saga_core::Error::NotFound { entity, id }) => {
                Problem::not_found(entity, id)
            }
            AppError::Db(_) | AppError::Io(_) | AppError::Core(_) | AppError::Unavailable(_) => {
                Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "the service could not reach its storage; retry shortly",
                )
            }
            _ => Problem::internal(),
        }
    }
}
