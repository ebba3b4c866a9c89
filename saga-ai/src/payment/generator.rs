//! Seeded payment attempts with their true success probability.
//!
//! The ground truth is a logistic model the predictor never sees directly:
//!
//! - a base rate per method, and amount effects that differ by method (cards and wallets lose a
//!   little with larger amounts, pay-later declines large baskets, bank transfers do not care);
//! - new accounts fail more, more so for large amounts (an interaction);
//! - each customer has a hidden reliability (funds, card quality) that only shows through their
//!   past successes and failures;
//! - gateway outage episodes per method (15 minutes to 2 hours) push the success odds down
//!   sharply; they show only through the method's recent error rate.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use serde::{Deserialize, Serialize};

use super::attempt::{PaymentAttempt, PaymentMethod};
use crate::error::{AiError, Result};

/// Settings of [`generate_payments`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentGeneratorConfig {
    /// Seed of the random generator: the same seed gives the same data.
    pub seed: u64,
    /// Days simulated.
    pub days: u32,
    /// Mean attempts per day.
    pub attempts_per_day: u32,
    /// Customers.
    pub customers: u32,
    /// Mean gateway outage episodes per method per day.
    pub outages_per_method_per_day: f64,
    /// Start of the simulated period.
    pub start: DateTime<Utc>,
}

impl Default for PaymentGeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            days: 28,
            attempts_per_day: 6000,
            customers: 20_000,
            outages_per_method_per_day: 0.6,
            start: Utc
                .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        }
    }
}

/// One generated attempt with its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedAttempt {
    /// The attempt.
    pub attempt: PaymentAttempt,
    /// The true probability that it succeeds (the oracle).
    pub true_probability: f64,
    /// Whether it succeeded (drawn from `true_probability`).
    pub succeeded: bool,
    /// Whether the method's gateway was in an outage episode.
    pub in_outage: bool,
}

struct Customer {
    created_minutes: f64,
    reliability: f64,
    preferred: PaymentMethod,
    amount_median: f64,
    weight: f64,
}

struct Outage {
    start: f64,
    end: f64,
    severity: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The true log-odds of success (without the customer's hidden reliability and outages).
fn base_logit(method: PaymentMethod, amount: f64, account_age_days: f64) -> f64 {
    let la = (amount.max(0.01) / 50.0).ln();
    let newness = (-account_age_days / 14.0).exp();
    let method_part = match method {
        PaymentMethod::Card => 2.6 - 0.35 * la,
        PaymentMethod::Wallet => 3.0 - 0.15 * la,
        PaymentMethod::BankTransfer => 1.9 + 0.1 * la,
        PaymentMethod::PayLater => 2.2 - 0.9 * la.max(0.0),
    };
    method_part - 1.3 * newness - 0.5 * newness * la.max(0.0)
}

/// Generates attempts in time order, with their true success probabilities.
pub fn generate_payments(config: &PaymentGeneratorConfig) -> Result<Vec<GeneratedAttempt>> {
    if config.days == 0 || config.attempts_per_day == 0 || config.customers == 0 {
        return Err(AiError::InvalidInput(
            "days, attempts_per_day and customers must be at least 1".into(),
        ));
    }
    if !config.outages_per_method_per_day.is_finite() || config.outages_per_method_per_day < 0.0 {
        return Err(AiError::InvalidInput(
            "outages_per_method_per_day must be a finite non-negative number".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let total_minutes = f64::from(config.days) * 1440.0;
    let reliability = Normal::new(0.0, 0.9).map_err(|e| AiError::Fit(e.to_string()))?;
    let median = LogNormal::new(60f64.ln(), 0.8).map_err(|e| AiError::Fit(e.to_string()))?;
    let activity = LogNormal::new(0.0, 1.0).map_err(|e| AiError::Fit(e.to_string()))?;
    let customers: Vec<Customer> = (0..config.customers)
        .map(|_| {
            // 85% existed before the period (up to ~3 years), 15% sign up during it.
            let created_minutes = if rng.random_bool(0.85) {
                -rng.random_range(0.0..1000.0f64) * 1440.0
            } else {
                rng.random_range(0.0..total_minutes)
            };
            let preferred = match rng.random_range(0..100) {
                0..55 => PaymentMethod::Card,
                55..80 => PaymentMethod::Wallet,
                80..90 => PaymentMethod::BankTransfer,
                _ => PaymentMethod::PayLater,
            };
            Customer {
                created_minutes,
                reliability: reliability.sample(&mut rng),
                preferred,
                amount_median: median.sample(&mut rng),
                weight: activity.sample(&mut rng),
            }
        })
        .collect();
    let mut cumulative = Vec::with_capacity(customers.len());
    let mut acc = 0.0;
    for c in &customers {
        acc += c.weight;
        cumulative.push(acc);
    }

    let mut outages: [Vec<Outage>; 4] = Default::default();
    for list in &mut outages {
        let expected = config.outages_per_method_per_day * f64::from(config.days);
        let count = (expected + rng.random_range(-0.5..0.5) * expected.sqrt())
            .round()
            .max(0.0);
        for _ in 0..count as u32 {
            let start = rng.random_range(0.0..total_minutes);
            list.push(Outage {
                start,
                end: start + rng.random_range(15.0..120.0),
                severity: rng.random_range(1.5..4.5),
            });
        }
    }

    let amount_noise = LogNormal::new(0.0, 0.6).map_err(|e| AiError::Fit(e.to_string()))?;
    let n = u64::from(config.days) * u64::from(config.attempts_per_day);
    let mut times: Vec<f64> = (0..n)
        .map(|_| rng.random_range(0.0..total_minutes))
        .collect();
    times.sort_by(f64::total_cmp);
    let mut out = Vec::with_capacity(times.len());
    for t in times {
        let mut pick = None;
        for _ in 0..20 {
            let u = rng.random_range(0.0..acc);
            let i = cumulative
                .partition_point(|&c| c < u)
                .min(customers.len() - 1);
            if customers[i].created_minutes <= t {
                pick = Some(i);
                break;
            }
        }
        let Some(i) = pick else { continue };
        let c = &customers[i];
        let method = if rng.random_bool(0.8) {
            c.preferred
        } else {
            PaymentMethod::ALL[rng.random_range(0..4)]
        };
        let amount = (c.amount_median * amount_noise.sample(&mut rng) * 100.0).round() / 100.0;
        let account_age_days = (t - c.created_minutes) / 1440.0;
        let outage = outages[method.index()]
            .iter()
            .filter(|o| o.start <= t && t < o.end)
            .map(|o| o.severity)
            .fold(0.0, f64::max);
        let logit = base_logit(method, amount, account_age_days) + c.reliability - outage;
        let true_probability = sigmoid(logit);
        let at = config.start + TimeDelta::milliseconds((t * 60_000.0) as i64);
        out.push(GeneratedAttempt {
            attempt: PaymentAttempt {
                at,
                customer_id: i as u64,
                method,
                amount,
                account_age_days,
            },
            true_probability,
            succeeded: rng.random_bool(true_probability.clamp(0.0, 1.0)),
            in_outage: outage > 0.0,
        });
    }
    Ok(out)
}
