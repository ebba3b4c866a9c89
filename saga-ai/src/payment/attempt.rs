//! A payment attempt and the features a predictor sees.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};

pub use crate::payment_method::PaymentMethod;

/// What is known when a charge is about to be sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentAttempt {
    /// When the charge is sent.
    pub at: DateTime<Utc>,
    /// The paying customer.
    pub customer_id: u64,
    /// The method.
    pub method: PaymentMethod,
    /// The amount, in currency units (not cents).
    pub amount: f64,
    /// Age of the customer's account, in days.
    pub account_age_days: f64,
}

/// The inputs of a payment-success predictor: the attempt plus history and gateway health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentFeatures {
    /// The method.
    pub method: PaymentMethod,
    /// The amount, in currency units.
    pub amount: f64,
    /// Age of the customer's account, in days.
    pub account_age_days: f64,
    /// The customer's earlier successful charges.
    pub past_successes: u32,
    /// The customer's earlier failed charges.
    pub past_failures: u32,
    /// Attempts with this method, by anyone, in the recent health window.
    pub gateway_attempts: u32,
    /// How many of those failed.
    pub gateway_failures: u32,
}

impl PaymentFeatures {
    /// Checks that the features can be scored.
    pub fn validate(&self) -> Result<()> {
        if !self.amount.is_finite() || self.amount < 0.0 {
            return Err(AiError::InvalidInput(format!(
                "amount must be a finite non-negative number, got {}",
                self.amount
            )));
        }
        if !self.account_age_days.is_finite() || self.account_age_days < 0.0 {
            return Err(AiError::InvalidInput(format!(
                "account age must be a finite non-negative number of days, got {}",
                self.account_age_days
            )));
        }
        if self.gateway_failures > self.gateway_attempts {
            return Err(AiError::InvalidInput(format!(
                "{} gateway failures out of {} attempts",
                self.gateway_failures, self.gateway_attempts
            )));
        }
        Ok(())
    }

    /// The method's recent error rate, shrunk towards `prior` with the weight of
    /// `prior_weight` attempts (so a quiet window does not read as 0% or 100%).
    pub fn smoothed_gateway_error_rate(&self, prior: f64, prior_weight: f64) -> f64 {
        (f64::from(self.gateway_failures) + prior * prior_weight)
            / (f64::from(self.gateway_attempts) + prior_weight)
    }
}
