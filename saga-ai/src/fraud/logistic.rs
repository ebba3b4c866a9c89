//! Logistic regression on standardised features. Scoring and persistence need no extra crate;
//! fitting uses `linfa-logistic` (feature `linfa`).

use serde::{Deserialize, Serialize};

use super::scorer::sigmoid;
use crate::error::{AiError, Result};

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    /// L2 penalty weight (linfa's `alpha`).
    pub alpha: f64,
    /// Iteration limit of the optimiser.
    pub max_iterations: u64,
}

impl Default for LogisticParams {
    /// alpha 1.0, 200 iterations.
    fn default() -> Self {
        Self {
            alpha: 1.0,
            max_iterations: 200,
        }
    }
}

/// A fitted logistic regression: `p = sigmoid(intercept + sum coef_j * (x_j - mean_j) / std_j)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    mean: Vec<f64>,
    std: Vec<f64>,
    coef: Vec<f64>,
    intercept: f64,
}

impl Logistic {
    /// The number of features it expects.
    pub fn n_features(&self) -> usize {
        self.coef.len()
    }

    /// Coefficients on the standardised features.
    pub fn coefficients(&self) -> &[f64] {
        &self.coef
    }

    fn check(&self, row: &[f64]) -> Result<()> {
        if row.len() != self.coef.len() {
            return Err(AiError::InvalidInput(format!(
                "{} features, expected {}",
                row.len(),
                self.coef.len()
            )));
        }
        if let Some(i) = row.iter().position(|v| !v.is_finite()) {
            return Err(AiError::InvalidInput(format!("feature {i} is {}", row[i])));
        }
        Ok(())
    }

    /// Per-feature contributions in log-odds (coefficient x standardised value) and the
    /// intercept.
    pub fn contributions(&self, row: &[f64]) -> Result<(f64, Vec<f64>)> {
        self.check(row)?;
        let c = row
            .iter()
            .enumerate()
            .map(|(j, &x)| self.coef[j] * (x - self.mean[j]) / self.std[j])
            .collect();
        Ok((self.intercept, c))
    }

    /// The probability of the positive class.
    pub fn predict_proba(&self, row: &[f64]) -> Result<f64> {
        self.check(row)?;
        let z: f64 = self.intercept
            + row
                .iter()
                .enumerate()
                .map(|(j, &x)| self.coef[j] * (x - self.mean[j]) / self.std[j])
                .sum::<f64>();
        Ok(sigmoid(z))
    }

    /// Standardises the columns of `x` and fits with `linfa-logistic`. Needs both classes.
    #[cfg(feature = "linfa")]
    pub fn fit(x: &[Vec<f64>], y: &[bool], params: &LogisticParams) -> Result<Self> {
        use linfa::prelude::*;
        use linfa_logistic::LogisticRegression;
        use ndarray::{Array1, Array2};

        if x.len() != y.len() {
            return Err(AiError::InvalidInput(format!(
                "{} rows but {} labels",
                x.len(),
                y.len()
            )));
        }
        let d = x.first().map_or(0, Vec::len);
        if d == 0 {
            return Err(AiError::NotEnoughData("no rows or no features".into()));
        }
        if !(params.alpha.is_finite() && params.alpha >= 0.0) {
            return Err(AiError::InvalidInput(format!("alpha {}", params.alpha)));
        }
        let pos = y.iter().filter(|&&l| l).count();
        if pos == 0 || pos == y.len() {
            return Err(AiError::NotEnoughData(format!(
                "need both classes, got {pos} positives among {} rows",
                y.len()
            )));
        }
        let n = x.len() as f64;
        let mut mean = vec![0.0; d];
        let mut std = vec![0.0; d];
        for (i, r) in x.iter().enumerate() {
            if r.len() != d || r.iter().any(|v| !v.is_finite()) {
                return Err(AiError::InvalidInput(format!(
                    "row {i}: wrong length or non-finite value"
                )));
            }
            for j in 0..d {
                mean[j] += r[j] / n;
            }
        }
        for r in x {
            for j in 0..d {
                std[j] += (r[j] - mean[j]).powi(2) / n;
            }
        }
        for s in &mut std {
            *s = if *s > 1e-24 { s.sqrt() } else { 1.0 };
        }
        let mut records = Array2::<f64>::zeros((x.len(), d));
        for (i, r) in x.iter().enumerate() {
            for j in 0..d {
                records[[i, j]] = (r[j] - mean[j]) / std[j];
            }
        }
        let targets: Array1<bool> = y.iter().copied().collect();
        let dataset = Dataset::new(records, targets);
        let fitted = LogisticRegression::default()
            .alpha(params.alpha)
            .max_iterations(params.max_iterations)
            .fit(&dataset)
            .map_err(|e| AiError::Fit(format!("logistic regression: {e}")))?;
        // linfa's "positive" class is the larger one; we want P(fraud = true).
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Self {
            mean,
            std,
            coef: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
        })
    }
}
