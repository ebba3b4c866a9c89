//! The engine's answer for one order ([`Assessment`]) and the fraud-screening decision taken
//! from it ([`decide`]).

use serde::{Deserialize, Serialize};

/// How worried to be about an order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Fraud score below 0.2.
    Low,
    /// From 0.2, below 0.5.
    Medium,
    /// From 0.5, below 0.8.
    High,
    /// From 0.8 (the default rejection threshold).
    Critical,
}

impl RiskLevel {
    /// The level of a fraud score (a NaN score is critical).
    pub fn of(score: f64) -> Self {
        if score < 0.2 {
            RiskLevel::Low
        } else if score < 0.5 {
            RiskLevel::Medium
        } else if score < 0.8 {
            RiskLevel::High
        } else {
            RiskLevel::Critical
        }
    }
}

/// What the engine says about an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Assessment {
    /// Estimated probability that the order is fraud, in `[0, 1]`.
    pub fraud_score: f64,
    /// The score's level.
    pub risk_level: RiskLevel,
    /// The factors that raised the score most, in plain words, most important first (at most
    /// three; empty when nothing raised it).
    pub reasons: Vec<String>,
    /// Estimated probability that the order's charge succeeds, in `[0, 1]`.
    pub payment_success_probability: f64,
    /// Which models scored: kind and training time of each.
    pub model: String,
}

/// The outcome of fraud screening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum FraudDecision {
    /// The order goes on.
    Pass,
    /// The order fails, with this reason.
    Reject {
        /// Score, threshold and the main factors, for the order's failure reason.
        reason: String,
    },
}

/// Rejects an order whose fraud score is above `threshold`. A NaN score or threshold
/// rejects (screening fails closed).
pub fn decide(assessment: &Assessment, threshold: f64) -> FraudDecision {
    let score = assessment.fraud_score;
    if score <= threshold {
        return FraudDecision::Pass;
    }
    let mut reason = format!("fraud score {score:.2} is above the threshold {threshold:.2}");
    if !assessment.reasons.is_empty() {
        reason.push_str(": ");
        reason.push_str(&assessment.reasons.join("; "));
    }
    FraudDecision::Reject { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assessment(score: f64) -> Assessment {
        Assessment {
            fraud_score: score,
            risk_level: RiskLevel::of(score),
            reasons: vec!["12 orders from this customer in the last 24 hours".into()],
            payment_success_probability: 0.9,
            model: "test".into(),
        }
    }

    #[test]
    fn levels_follow_the_score() {
        assert_eq!(RiskLevel::of(0.0), RiskLevel::Low);
        assert_eq!(RiskLevel::of(0.2), RiskLevel::Medium);
        assert_eq!(RiskLevel::of(0.5), RiskLevel::High);
        assert_eq!(RiskLevel::of(0.8), RiskLevel::Critical);
        assert_eq!(RiskLevel::of(f64::NAN), RiskLevel::Critical);
        assert_eq!(
            serde_json::to_string(&RiskLevel::Critical).unwrap(),
            "\"critical\""
        );
    }

    #[test]
    fn decide_rejects_only_above_the_threshold() {
        assert_eq!(decide(&assessment(0.8), 0.8), FraudDecision::Pass);
        assert_eq!(decide(&assessment(0.1), 0.8), FraudDecision::Pass);
        let FraudDecision::Reject { reason } = decide(&assessment(0.81), 0.8) else {
            panic!("0.81 > 0.8 must reject");
        };
        assert_eq!(
            reason,
            "fraud score 0.81 is above the threshold 0.80: 12 orders from this customer in the last 24 hours"
        );
        assert_eq!(decide(&assessment(0.81), 0.9), FraudDecision::Pass);
        assert!(matches!(
            decide(&assessment(0.5), f64::NAN),
            FraudDecision::Reject { .. }
        ));
    }

    #[test]
    fn the_decision_serialises_with_a_tag() {
        let json = serde_json::to_value(decide(&assessment(0.95), 0.8)).unwrap();
        assert_eq!(json["decision"], "reject");
        assert_eq!(
            serde_json::to_value(FraudDecision::Pass).unwrap()["decision"],
            "pass"
        );
    }
}
