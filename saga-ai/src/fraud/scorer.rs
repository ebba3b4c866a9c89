//! What every fraud model offers: a probability, a risk level and the reasons behind it.

use serde::{Deserialize, Serialize};

use super::features::Features;
use crate::error::{AiError, Result};

/// How worried to be about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RiskLevel {
    /// Let it through.
    Low,
    /// Look at it (or ask for more authentication).
    Medium,
    /// Hold it for review.
    High,
}

/// Probability thresholds between the risk levels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskThresholds {
    /// From this probability on, the risk is at least medium.
    pub medium: f64,
    /// From this probability on, the risk is high.
    pub high: f64,
}

impl Default for RiskThresholds {
    /// Medium from 0.2, high from 0.5.
    fn default() -> Self {
        Self {
            medium: 0.2,
            high: 0.5,
        }
    }
}

impl RiskThresholds {
    /// Checks `0 <= medium <= high <= 1`.
    pub fn new(medium: f64, high: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&medium) || !(medium..=1.0).contains(&high) {
            return Err(AiError::InvalidInput(format!(
                "risk thresholds need 0 <= medium <= high <= 1, got {medium} and {high}"
            )));
        }
        Ok(Self { medium, high })
    }

    /// The level of a probability.
    pub fn level(&self, probability: f64) -> RiskLevel {
        if probability >= self.high {
            RiskLevel::High
        } else if probability >= self.medium {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        }
    }
}

/// One feature's part in a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The feature's name (`tx_amount`, ...).
    pub feature: String,
    /// Its contribution to the score in log-odds (positive: towards fraud). For logistic
    /// regression: coefficient x standardised value; for boosted trees: the sum, along the
    /// paths taken, of the change in node value at splits on this feature; for rules: the
    /// points the rule adds.
    pub contribution: f64,
    /// What the feature means and its value, for a person.
    pub description: String,
}

/// A fraud score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FraudScore {
    /// Estimated probability that the order is fraud, in [0, 1].
    pub probability: f64,
    /// Its level under the scorer's thresholds.
    pub risk_level: RiskLevel,
    /// The features that pushed the score up most, largest first (at most
    /// [`MAX_REASONS`]; only positive contributions).
    pub reasons: Vec<Reason>,
}

/// The most reasons a score carries.
pub const MAX_REASONS: usize = 3;

/// A fraud model: scores a feature vector computed by
/// [`FeatureState`](super::FeatureState).
pub trait FraudScorer {
    /// The probability of fraud with its reasons. Fails with
    /// [`AiError::InvalidInput`] on features of another set or non-finite values.
    fn score(&self, features: &Features) -> Result<FraudScore>;

    /// The probability only (no reasons), for evaluation over many rows.
    fn probability(&self, features: &Features) -> Result<f64> {
        Ok(self.score(features)?.probability)
    }
}

/// Builds the top reasons from per-feature contributions.
pub(crate) fn top_reasons(features: &Features, contributions: &[f64]) -> Vec<Reason> {
    let mut idx: Vec<usize> = (0..contributions.len())
        .filter(|&i| contributions[i] > 1e-9)
        .collect();
    idx.sort_by(|&a, &b| contributions[b].total_cmp(&contributions[a]));
    idx.truncate(MAX_REASONS);
    idx.into_iter()
        .map(|i| {
            let name = features.set.name(i).unwrap_or("?");
            let value = features.values.get(i).copied().unwrap_or(f64::NAN);
            Reason {
                feature: name.to_string(),
                contribution: contributions[i],
                description: format!(
                    "{} = {}",
                    features.set.description(i).unwrap_or(name),
                    format_value(value)
                ),
            }
        })
        .collect()
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

pub(crate) use crate::math::sigmoid;
