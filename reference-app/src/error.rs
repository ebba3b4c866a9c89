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
    /// A database or broker could not be reached; the URL's password is redacted and the
    /// driver's message scrubbed of it ([`crate::secrets`]).
    #[error("cannot connect to {what} at {url}: {reason}")]
    Connect {
        /// What (`Postgres`, `the broker`).
        what: &'static str,
        /// Its URL, password redacted.
        url: String,
        /// The driver's error, scrubbed of the password.
        reason: String,
    },
}

impl AppError {
    /// A decoding error.
    pub fn decode(what: &'static str, source: serde_json::Error) -> Self {
        AppError::Decode { what, source }
    }

    /// A failed connection to `what` at `url`, told without the URL's password.
    pub fn connect(what: &'static str, url: &str, error: impl std::fmt::Display) -> Self {
        AppError::Connect {
            what,
            url: crate::secrets::redact_url(url),
            reason: crate::secrets::scrub(&error.to_string(), url),
        }
    }
}

impl From<AppError> for HandlerError {
    /// Database and broker faults retry; documents that do not decode never will.
    fn from(e: AppError) -> Self {
        match e {
            AppError::Core(e) => e.into(),
            AppError::Decode { .. } | AppError::Config(_) => HandlerError::permanent(e.to_string()),
            AppError::Db(_)
            | AppError::Io(_)
            | AppError::Unavailable(_)
            | AppError::Connect { .. } => HandlerError::transient(e.to_string()),
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
            AppError::Db(_)
            | AppError::Io(_)
            | AppError::Core(_)
            | AppError::Unavailable(_)
            | AppError::Connect { .. } => Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "the service could not reach its storage; retry shortly",
            ),
            _ => Problem::internal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever an error says (a URL with its password included), the problem document a
    /// client gets carries none of it.
    #[test]
    fn problem_documents_carry_no_error_text() {
        let url = "postgres://app:s3cret@db:5432/shop";
        let errors = [
            AppError::Config(format!("bad setting {url}")),
            AppError::Unavailable(format!("gateway {url}")),
            AppError::Io(std::io::Error::other(format!("socket {url}"))),
            AppError::Db(sqlx::Error::Configuration(format!("url {url}").into())),
            AppError::Core(saga_core::Error::InvalidArgument(format!("x {url}"))),
            AppError::connect("Postgres", url, format!("refused s3cret {url}")),
        ];
        for e in errors {
            let shown = e.to_string();
            let body = serde_json::to_string(&Problem::from(e)).unwrap();
            assert!(
                !body.contains("s3cret") && !body.contains("postgres://"),
                "{body}"
            );
            assert!(body.contains("\"status\":5"), "{body}");
            if shown.starts_with("cannot connect") {
                assert!(!shown.contains("s3cret"), "{shown}");
                assert!(shown.contains("postgres://app:***@db:5432/shop"), "{shown}");
            }
        }
    }
}
