//! The crate's error type.

/// Everything `saga-ai` returns as an error. Each variant says what a caller does about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AiError {
    /// Input that can never be scored or fitted as given (wrong length, NaN, negative amount,
    /// unknown category). Fix the input; an HTTP layer answers 422.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Too little data to fit or evaluate (no positives, an empty series, fewer rows than
    /// features). Gather more data or use the baseline.
    #[error("not enough data: {0}")]
    NotEnoughData(String),

    /// A model file that cannot be read as this model (another kind, another feature set,
    /// a newer format). Retrain, or load the right file.
    #[error("incompatible model: {0}")]
    IncompatibleModel(String),

    /// Fitting did not converge or failed inside the numerical library. Try other settings.
    #[error("fitting failed: {0}")]
    Fit(String),

    /// A data file could not be read or parsed. The message names the file and the line.
    #[error("data error: {0}")]
    Data(String),

    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`AiError`].
pub type Result<T, E = AiError> = std::result::Result<T, E>;
