//! The AI engine's error type.

use std::path::PathBuf;

/// What can go wrong loading, training or using the AI engine. Each variant says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AiAppError {
    /// A model file exists but cannot be used (corrupt JSON, another kind or format version,
    /// parameters that do not fit the features). The engine does not overwrite it: fix the
    /// file, or delete it and restart to train a fresh one from generated data.
    #[error("model file {}: {source}; delete it to train a new one at the next start", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: saga_ai::AiError,
    },

    /// Training from generated data failed (a bug or an incompatible `saga-ai`; not an input
    /// problem). Report it.
    #[error("training the {model} model from generated data failed: {source}")]
    Training {
        /// Which model (`fraud`, `payment_success`).
        model: &'static str,
        /// The cause.
        #[source]
        source: saga_ai::AiError,
    },

    /// Reading the model folder or writing a trained model failed (permissions, full disk).
    /// Fix the folder.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// An order that cannot be scored as given (an unknown payment method). The order
    /// service's validation rules this out; an HTTP layer answers 422.
    #[error("cannot score the order: {0}")]
    InvalidInput(String),

    /// The fraud or payment model failed on a feature row (it passed the probe at load time,
    /// so this is a bug). Report it.
    #[error("scoring failed: {0}")]
    Scoring(#[source] saga_ai::AiError),

    /// The blocking task that loads or trains a model panicked or was cancelled.
    #[error("the model loading task did not finish: {0}")]
    Task(String),
}
