//! Model metadata and persistence: every saved model carries what it was trained on and how it
//! scored on data it did not see.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{AiError, Result};

/// What a model is and how good it is, saved beside its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// The model's kind (`fraud.gbdt`, `forecast.theta`, ...).
    pub kind: String,
    /// Format version of the saved parameters; loading a different one is an error.
    pub format_version: u32,
    /// When it was trained.
    pub trained_at: DateTime<Utc>,
    /// Rows (or series, or users) it was trained on.
    pub training_rows: usize,
    /// The names of its input features, in order.
    pub features: Vec<String>,
    /// Metrics on held-out data (`roc_auc`, `average_precision`, `smape`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// How the metrics were obtained (the protocol, in a sentence).
    pub evaluation: String,
}

/// A model saved with its metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedModel<M> {
    /// The metadata.
    pub meta: ModelMeta,
    /// The fitted parameters.
    pub model: M,
}

impl<M: Serialize + DeserializeOwned> SavedModel<M> {
    /// Writes the model as JSON to `path`, creating its folder if needed.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| AiError::IncompatibleModel(format!("cannot encode model: {e}")))?;
        let io = |source| AiError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(path, bytes).map_err(|source| AiError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a model of kind `kind` and format `format_version` from `path`.
    pub fn load(path: &Path, kind: &str, format_version: u32) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| AiError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let saved: Self = serde_json::from_slice(&bytes).map_err(|e| {
            AiError::IncompatibleModel(format!("{} is not a {kind} model: {e}", path.display()))
        })?;
        if saved.meta.kind != kind || saved.meta.format_version != format_version {
            return Err(AiError::IncompatibleModel(format!(
                "{} holds {} v{}, expected {kind} v{format_version}",
                path.display(),
                saved.meta.kind,
                saved.meta.format_version
            )));
        }
        Ok(saved)
    }
}
