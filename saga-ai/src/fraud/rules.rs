//! The seed's rule score, reimplemented as the transparent baseline: points for large amounts,
//! a new account, many recent orders and a shipping address unlike billing.

use serde::{Deserialize, Serialize};

use super::features::{FeatureSet, Features};
use super::scorer::{FraudScore, FraudScorer, Reason, RiskThresholds};
use crate::error::{AiError, Result};

/// A rule scorer: each rule that fires adds its points; the score is the sum, capped at 1.
/// It needs no training. On handbook features (no order fields) only the amount and night
/// rules can fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleScorer {
    /// (amount threshold, points) pairs; every threshold exceeded adds its points.
    pub amount_points: Vec<(f64, f64)>,
    /// An account younger than this many days...
    pub new_account_days: f64,
    /// ...adds these points.
    pub new_account_points: f64,
    /// This many or more orders by the customer in the last day...
    pub many_orders: f64,
    /// ...add these points.
    pub many_orders_points: f64,
    /// Shipping differs from billing: points.
    pub address_mismatch_points: f64,
    /// Shipping to an address never used before: points.
    pub new_address_points: f64,
    /// Ordered at night: points.
    pub night_points: f64,
    /// Risk levels.
    pub thresholds: RiskThresholds,
}

impl Default for RuleScorer {
    /// Amount over 200: 0.15, over 500: +0.15, over 1000: +0.2; account under 7 days: 0.25;
    /// 4 or more orders in a day: 0.2; address mismatch: 0.2; new address: 0.1; night: 0.1.
    fn default() -> Self {
        Self {
            amount_points: vec![(200.0, 0.15), (500.0, 0.15), (1000.0, 0.2)],
            new_account_days: 7.0,
            new_account_points: 0.25,
            many_orders: 4.0,
            many_orders_points: 0.2,
            address_mismatch_points: 0.2,
            new_address_points: 0.1,
            night_points: 0.1,
            thresholds: RiskThresholds::default(),
        }
    }
}

impl RuleScorer {
    fn flag(features: &Features, name: &str) -> bool {
        features.get(name).is_some_and(|v| v > 0.5)
    }
}

impl FraudScorer for RuleScorer {
    fn score(&self, features: &Features) -> Result<FraudScore> {
        let set = features.set;
        features.validate(set)?;
        let amount = features
            .get("tx_amount")
            .ok_or_else(|| AiError::InvalidInput("no tx_amount feature".into()))?;
        let mut reasons = Vec::new();
        let mut add = |feature: &str, points: f64, description: String| {
            if points > 0.0 {
                reasons.push(Reason {
                    feature: feature.to_string(),
                    contribution: points,
                    description,
                });
            }
        };
        let amount_pts: f64 = self
            .amount_points
            .iter()
            .filter(|(t, _)| amount > *t)
            .map(|(_, p)| p)
            .sum();
        add(
            "tx_amount",
            amount_pts,
            format!("amount {amount:.2} above threshold"),
        );
        if Self::flag(features, "tx_during_night") {
            add(
                "tx_during_night",
                self.night_points,
                "placed at night".into(),
            );
        }
        if set == FeatureSet::Orders {
            if features
                .get("account_age_days")
                .is_some_and(|a| a < self.new_account_days)
            {
                add(
                    "account_age_days",
                    self.new_account_points,
                    format!("account younger than {} days", self.new_account_days),
                );
            }
            if features
                .get("customer_nb_tx_1day")
                .is_some_and(|n| n >= self.many_orders)
            {
                add(
                    "customer_nb_tx_1day",
                    self.many_orders_points,
                    format!("{} or more orders in a day", self.many_orders),
                );
            }
            if Self::flag(features, "shipping_differs_billing") {
                add(
                    "shipping_differs_billing",
                    self.address_mismatch_points,
                    "shipping address differs from billing".into(),
                );
            }
            if Self::flag(features, "shipping_new") {
                add(
                    "shipping_new",
                    self.new_address_points,
                    "new shipping address".into(),
                );
            }
        }
        let probability = reasons.iter().map(|r| r.contribution).sum::<f64>().min(1.0);
        reasons.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        Ok(FraudScore {
            probability,
            risk_level: self.thresholds.level(probability),
            reasons,
        })
    }
}
