//! The payment-success model: feature encoding, logistic regression, calibration.

use serde::{Deserialize, Serialize};

use super::PaymentSuccessPredictor;
use super::attempt::PaymentFeatures;
use super::calibration::Calibrator;
use super::logistic::LogisticRegression;
use crate::error::{AiError, Result};
use crate::metrics;

/// Model kind in saved files.
pub const PAYMENT_KIND: &str = "payment.logistic_calibrated";
/// Format version of saved [`PaymentModel`]s.
pub const PAYMENT_FORMAT: u32 = 1;

/// Names of the encoded features, in order.
pub const PAYMENT_FEATURES: [&str; 23] = [
    "method=card",
    "method=wallet",
    "method=bank_transfer",
    "method=pay_later",
    "log_amount",
    "log_amount_above_50",
    "log_amount*card",
    "log_amount*wallet",
    "log_amount*bank_transfer",
    "log_amount*pay_later",
    "log_amount_above_50*card",
    "log_amount_above_50*wallet",
    "log_amount_above_50*bank_transfer",
    "log_amount_above_50*pay_later",
    "account_newness",
    "account_newness*log_amount_above_50",
    "log_account_age",
    "log1p_past_successes",
    "log1p_past_failures",
    "customer_success_logodds",
    "gateway_error_rate",
    "gateway_error_logodds",
    "gateway_error_above_0.3",
];

/// Prior error rate and its weight (in attempts) for the smoothed gateway error rate.
const GATEWAY_PRIOR: (f64, f64) = (0.1, 5.0);
const L2_GRID: [f64; 5] = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/// Encodes features into the model's input row (see [`PAYMENT_FEATURES`]).
fn encode(f: &PaymentFeatures) -> Result<Vec<f64>> {
    f.validate()?;
    let mut row = Vec::with_capacity(PAYMENT_FEATURES.len());
    let m = f.method.index();
    let la = ((f.amount + 1.0) / 50.0).ln();
    let la_pos = la.max(0.0);
    let one_hot = |k: usize| if k == m { 1.0 } else { 0.0 };
    row.extend((0..4).map(one_hot));
    row.push(la);
    row.push(la_pos);
    row.extend((0..4).map(|k| one_hot(k) * la));
    row.extend((0..4).map(|k| one_hot(k) * la_pos));
    let newness = (-f.account_age_days / 14.0).exp();
    row.push(newness);
    row.push(newness * la_pos);
    row.push(f.account_age_days.ln_1p());
    let (s, fl) = (f64::from(f.past_successes), f64::from(f.past_failures));
    row.push(s.ln_1p());
    row.push(fl.ln_1p());
    row.push(((s + 1.0) / (fl + 1.0)).ln());
    let g = f.smoothed_gateway_error_rate(GATEWAY_PRIOR.0, GATEWAY_PRIOR.1);
    row.push(g);
    let gc = g.clamp(1e-4, 1.0 - 1e-4);
    let g_logodds = (gc / (1.0 - gc)).ln();
    row.push(g_logodds);
    row.push((g - 0.3).max(0.0));
    Ok(row)
}

/// Logistic regression on encoded payment features, then a calibration map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentModel {
    /// Training means of the encoded features (for standardisation).
    pub means: Vec<f64>,
    /// Training standard deviations of the encoded features.
    pub stds: Vec<f64>,
    /// The fitted regression on standardised features.
    pub regression: LogisticRegression,
    /// The L2 penalty chosen on the validation split.
    pub l2: f64,
    /// The calibration map fitted on the validation split.
    pub calibrator: Calibrator,
}

fn encode_all(rows: &[(PaymentFeatures, bool)]) -> Result<(Vec<Vec<f64>>, Vec<bool>)> {
    let mut x = Vec::with_capacity(rows.len());
    let mut y = Vec::with_capacity(rows.len());
    for (f, ok) in rows {
        x.push(encode(f)?);
        y.push(*ok);
    }
    Ok((x, y))
}

fn standardise(x: &mut [Vec<f64>], means: &[f64], stds: &[f64]) {
    for row in x {
        for ((v, m), s) in row.iter_mut().zip(means).zip(stds) {
            *v = (*v - m) / s;
        }
    }
}

impl PaymentModel {
    /// Fits on `train`, then on `valid` (later in time) chooses the L2 penalty, and chooses
    /// and fits the calibration map (identity, Platt or isotonic, by two-fold cross-fitting on
    /// the halves of `valid`). Rows are `(features, succeeded)`.
    pub fn fit(
        train: &[(PaymentFeatures, bool)],
        valid: &[(PaymentFeatures, bool)],
    ) -> Result<Self> {
        if train.len() < 50 || valid.len() < 20 {
            return Err(AiError::NotEnoughData(format!(
                "need at least 50 training and 20 validation rows, got {} and {}",
                train.len(),
                valid.len()
            )));
        }
        let (mut xt, yt) = encode_all(train)?;
        let (mut xv, yv) = encode_all(valid)?;
        let d = PAYMENT_FEATURES.len();
        let n = xt.len() as f64;
        let means: Vec<f64> = (0..d)
            .map(|j| xt.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let stds: Vec<f64> = (0..d)
            .map(|j| {
                let var = xt.iter().map(|r| (r[j] - means[j]).powi(2)).sum::<f64>() / n;
                if var > 1e-12 { var.sqrt() } else { 1.0 }
            })
            .collect();
        standardise(&mut xt, &means, &stds);
        standardise(&mut xv, &means, &stds);

        let mut best: Option<(f64, f64, LogisticRegression, Vec<f64>)> = None;
        for l2 in L2_GRID {
            let model = LogisticRegression::fit(&xt, &yt, l2)?;
            let raw: Vec<f64> = xv.iter().map(|r| model.predict(r)).collect::<Result<_>>()?;
            let loss = metrics::log_loss(&raw, &yv)?;
            if best.as_ref().is_none_or(|b| loss < b.0) {
                best = Some((loss, l2, model, raw));
            }
        }
        let Some((_, l2, regression, raw)) = best else {
            return Err(AiError::Fit(
                "no penalty in the grid could be fitted".into(),
            ));
        };
        let calibrator = choose_calibrator(&raw, &yv)?;
        Ok(Self {
            means,
            stds,
            regression,
            l2,
            calibrator,
        })
    }

    /// The regression's probability before calibration.
    pub fn raw_probability(&self, features: &PaymentFeatures) -> Result<f64> {
        let mut row = encode(features)?;
        if self.means.len() != row.len() || self.stds.len() != row.len() {
            return Err(AiError::IncompatibleModel(format!(
                "model has {} feature scales, features have {}",
                self.means.len(),
                row.len()
            )));
        }
        for ((v, m), s) in row.iter_mut().zip(&self.means).zip(&self.stds) {
            *v = (*v - m) / s;
        }
        self.regression.predict(&row)
    }

    /// The regression weights by feature name (on standardised features), largest first.
    pub fn weights(&self) -> Vec<(&'static str, f64)> {
        let mut w: Vec<(&'static str, f64)> = PAYMENT_FEATURES
            .iter()
            .copied()
            .zip(self.regression.weights.iter().copied())
            .collect();
        w.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        w
    }
}

impl PaymentSuccessPredictor for PaymentModel {
    fn success_probability(&self, features: &PaymentFeatures) -> Result<f64> {
        let raw = self.raw_probability(features)?;
        Ok(self.calibrator.apply(raw).clamp(0.0, 1.0))
    }
}

/// Picks identity, Platt or isotonic by two-fold cross-fitting on the halves of the
/// validation data, then fits the winner on all of it.
fn choose_calibrator(raw: &[f64], labels: &[bool]) -> Result<Calibrator> {
    let half = raw.len() / 2;
    let folds = [(0..half, half..raw.len()), (half..raw.len(), 0..half)];
    let mut losses = [0.0f64; 3];
    for (fit_range, test_range) in folds {
        let (fr, fl) = (&raw[fit_range.clone()], &labels[fit_range]);
        let (tr, tl) = (&raw[test_range.clone()], &labels[test_range]);
        let candidates = [
            Ok(Calibrator::Identity),
            Calibrator::fit_platt(fr, fl),
            Calibrator::fit_isotonic(fr, fl),
        ];
        for (k, c) in candidates.into_iter().enumerate() {
            losses[k] += match c {
                Ok(c) => {
                    let p: Vec<f64> = tr.iter().map(|&r| c.apply(r)).collect();
                    metrics::log_loss(&p, tl).unwrap_or(f64::INFINITY)
                }
                Err(_) => f64::INFINITY,
            };
        }
    }
    let best = (0..3)
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .unwrap_or(0);
    match best {
        1 => Calibrator::fit_platt(raw, labels),
        2 => Calibrator::fit_isotonic(raw, labels),
        _ => Ok(Calibrator::Identity),
    }
}
