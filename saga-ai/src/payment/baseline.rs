//! The baseline: each method's success rate.

use serde::{Deserialize, Serialize};

use super::PaymentSuccessPredictor;
use super::attempt::PaymentFeatures;
use crate::error::{AiError, Result};

/// Predicts the success rate of the attempt's method (Laplace-smoothed), ignoring the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRateBaseline {
    /// Success rate per method, in [`PaymentMethod::ALL`](super::PaymentMethod::ALL) order.
    pub rates: [f64; 4],
}

impl MethodRateBaseline {
    /// Counts successes per method in `rows` of `(features, succeeded)`.
    pub fn fit(rows: &[(PaymentFeatures, bool)]) -> Result<Self> {
        if rows.is_empty() {
            return Err(AiError::NotEnoughData("no rows to count".into()));
        }
        let mut ok = [1.0f64; 4];
        let mut all = [2.0f64; 4];
        for (f, s) in rows {
            let m = f.method.index();
            all[m] += 1.0;
            if *s {
                ok[m] += 1.0;
            }
        }
        Ok(Self {
            rates: [0, 1, 2, 3].map(|m| ok[m] / all[m]),
        })
    }
}

impl PaymentSuccessPredictor for MethodRateBaseline {
    fn success_probability(&self, features: &PaymentFeatures) -> Result<f64> {
        features.validate()?;
        Ok(self.rates[features.method.index()])
    }
}
