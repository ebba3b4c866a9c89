//! A fitted fraud model with its feature set and thresholds: what is saved and loaded.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::features::{FeatureSet, Features};
use super::gbdt::Gbdt;
use super::logistic::Logistic;
use super::scorer::{FraudScore, FraudScorer, RiskThresholds, sigmoid, top_reasons};
use crate::error::{AiError, Result};
use crate::model::SavedModel;

/// Format version of saved fraud models.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// The estimator inside a [`FraudModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Estimator {
    /// Gradient-boosted trees.
    Gbdt(Gbdt),
    /// Logistic regression.
    Logistic(Logistic),
}

/// A fitted fraud model: scores [`Features`] of its set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FraudModel {
    /// The features it reads.
    pub set: FeatureSet,
    /// Risk levels.
    pub thresholds: RiskThresholds,
    /// The estimator.
    pub estimator: Estimator,
}

impl FraudModel {
    /// Wraps an estimator, checking it reads as many features as the set has.
    pub fn new(set: FeatureSet, estimator: Estimator) -> Result<Self> {
        let n = match &estimator {
            Estimator::Gbdt(m) => m.n_features(),
            Estimator::Logistic(m) => m.n_features(),
        };
        if n != set.len() {
            return Err(AiError::IncompatibleModel(format!(
                "estimator reads {n} features, the {set:?} set has {}",
                set.len()
            )));
        }
        Ok(Self {
            set,
            thresholds: RiskThresholds::default(),
            estimator,
        })
    }

    /// The model's kind in [`crate::ModelMeta::kind`]: `fraud.gbdt` or `fraud.logistic`.
    pub fn kind(&self) -> &'static str {
        match self.estimator {
            Estimator::Gbdt(_) => "fraud.gbdt",
            Estimator::Logistic(_) => "fraud.logistic",
        }
    }

    /// Loads a saved fraud model of either kind.
    pub fn load(path: &Path) -> Result<SavedModel<FraudModel>> {
        let saved = match SavedModel::<FraudModel>::load(path, "fraud.gbdt", MODEL_FORMAT_VERSION) {
            Err(AiError::IncompatibleModel(_)) => {
                SavedModel::load(path, "fraud.logistic", MODEL_FORMAT_VERSION)?
            }
            other => other?,
        };
        if saved.meta.kind != saved.model.kind() || saved.meta.features != saved.model.set.names() {
            return Err(AiError::IncompatibleModel(format!(
                "{}: metadata does not match the model inside",
                path.display()
            )));
        }
        Ok(saved)
    }
}

impl FraudScorer for FraudModel {
    fn score(&self, features: &Features) -> Result<FraudScore> {
        features.validate(self.set)?;
        let (bias, contributions) = match &self.estimator {
            Estimator::Gbdt(m) => m.contributions(&features.values)?,
            Estimator::Logistic(m) => m.contributions(&features.values)?,
        };
        let probability = sigmoid(bias + contributions.iter().sum::<f64>());
        Ok(FraudScore {
            probability,
            risk_level: self.thresholds.level(probability),
            reasons: top_reasons(features, &contributions),
        })
    }

    fn probability(&self, features: &Features) -> Result<f64> {
        features.validate(self.set)?;
        match &self.estimator {
            Estimator::Gbdt(m) => m.predict_proba(&features.values),
            Estimator::Logistic(m) => m.predict_proba(&features.values),
        }
    }
}
