//! The evaluation protocol: train on earlier days, calibrate on the next, test on the last week.

use std::collections::BTreeMap;

use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::PaymentSuccessPredictor;
use super::attempt::PaymentFeatures;
use super::baseline::MethodRateBaseline;
use super::generator::{GeneratedAttempt, PaymentGeneratorConfig, generate_payments};
use super::history::PaymentHistory;
use super::model::{PAYMENT_FEATURES, PAYMENT_FORMAT, PAYMENT_KIND, PaymentModel};
use crate::error::{AiError, Result};
use crate::metrics;
use crate::model::{ModelMeta, SavedModel};

/// Settings of [`evaluate_payment`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentEvalConfig {
    /// The data.
    pub generator: PaymentGeneratorConfig,
    /// Gateway-health window, minutes.
    pub window_minutes: u32,
    /// Days used for training (from the start).
    pub train_days: u32,
    /// Days after those used for validation (penalty and calibration).
    pub valid_days: u32,
    /// Bins of the expected calibration error.
    pub ece_bins: usize,
}

impl Default for PaymentEvalConfig {
    fn default() -> Self {
        Self {
            generator: PaymentGeneratorConfig::default(),
            window_minutes: 15,
            train_days: 17,
            valid_days: 4,
            ece_bins: 10,
        }
    }
}

/// One line of the results table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRow {
    /// What was scored (`model`, `baseline`, `oracle`, ...).
    pub name: String,
    /// ROC-AUC.
    pub roc_auc: f64,
    /// Mean log-loss.
    pub log_loss: f64,
    /// Expected calibration error.
    pub ece: f64,
    /// Brier score.
    pub brier: f64,
}

/// The outcome of [`evaluate_payment`].
#[derive(Debug, Clone)]
pub struct PaymentEvaluation {
    /// Rows: calibrated model, raw model, baseline, oracle; then the same on outage-time attempts.
    pub rows: Vec<PaymentRow>,
    /// Attempts in the training, validation and test windows.
    pub sizes: (usize, usize, usize),
    /// Success rate in the test window.
    pub test_success_rate: f64,
    /// Test attempts made during an outage of their method.
    pub test_outage_attempts: usize,
    /// The fitted model with its metadata (test metrics included).
    pub saved: SavedModel<PaymentModel>,
}

fn row(name: &str, probs: &[f64], labels: &[bool], bins: usize) -> Result<PaymentRow> {
    Ok(PaymentRow {
        name: name.to_string(),
        roc_auc: metrics::roc_auc(probs, labels)?,
        log_loss: metrics::log_loss(probs, labels)?,
        ece: metrics::expected_calibration_error(probs, labels, bins)?,
        brier: metrics::brier(probs, labels)?,
    })
}

fn predict_all(
    p: &dyn PaymentSuccessPredictor,
    rows: &[(PaymentFeatures, bool)],
) -> Result<Vec<f64>> {
    rows.iter().map(|(f, _)| p.success_probability(f)).collect()
}

/// Generates the data, builds features by replaying it in time order, fits on the training
/// days, chooses the penalty and calibration on the validation days, and scores the test days
/// with the model, the per-method baseline (fitted on training + validation) and the oracle
/// (the true probabilities). `progress` is told each stage's name.
pub fn evaluate_payment(
    config: &PaymentEvalConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<PaymentEvaluation> {
    if config.train_days == 0
        || config.valid_days == 0
        || config.train_days + config.valid_days >= config.generator.days
    {
        return Err(AiError::InvalidInput(format!(
            "need train_days >= 1, valid_days >= 1 and a test window: {} + {} of {} days",
            config.train_days, config.valid_days, config.generator.days
        )));
    }
    progress("generating attempts");
    let data = generate_payments(&config.generator)?;
    progress("building features");
    let rows = PaymentHistory::new(config.window_minutes)?.replay(&data)?;
    let train_end = config.generator.start + TimeDelta::days(i64::from(config.train_days));
    let valid_end = train_end + TimeDelta::days(i64::from(config.valid_days));
    let a = data.partition_point(|g| g.attempt.at < train_end);
    let b = data.partition_point(|g| g.attempt.at < valid_end);
    let (train, valid, test) = (&rows[..a], &rows[a..b], &rows[b..]);
    let test_truth: &[GeneratedAttempt] = &data[b..];

    progress("fitting the model");
    let model = PaymentModel::fit(train, valid)?;
    let baseline = MethodRateBaseline::fit(&rows[..b])?;

    progress("scoring the test window");
    let labels: Vec<bool> = test.iter().map(|r| r.1).collect();
    let p_model = predict_all(&model, test)?;
    let p_raw: Vec<f64> = test
        .iter()
        .map(|(f, _)| model.raw_probability(f))
        .collect::<Result<_>>()?;
    let p_base = predict_all(&baseline, test)?;
    let p_oracle: Vec<f64> = test_truth.iter().map(|g| g.true_probability).collect();
    let bins = config.ece_bins;
    let calibrated_name = format!("logistic + {} calibration", model.calibrator.name());
    let mut out = vec![
        row(&calibrated_name, &p_model, &labels, bins)?,
        row("logistic, uncalibrated", &p_raw, &labels, bins)?,
        row("baseline: per-method success rate", &p_base, &labels, bins)?,
        row("oracle: true probability", &p_oracle, &labels, bins)?,
    ];
    let outage: Vec<usize> = (0..test_truth.len())
        .filter(|&i| test_truth[i].in_outage)
        .collect();
    let pick = |v: &[f64]| outage.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let outage_labels: Vec<bool> = outage.iter().map(|&i| labels[i]).collect();
    for (name, probs) in [
        ("during outages: model", &p_model),
        ("during outages: baseline", &p_base),
        ("during outages: oracle", &p_oracle),
    ] {
        // An outage subset without both outcomes has no AUC: leave it out rather than fail.
        if let Ok(r) = row(name, &pick(probs), &outage_labels, bins) {
            out.push(r);
        }
    }

    let mut metrics_map = BTreeMap::new();
    metrics_map.insert("roc_auc".to_string(), out[0].roc_auc);
    metrics_map.insert("log_loss".to_string(), out[0].log_loss);
    metrics_map.insert("ece".to_string(), out[0].ece);
    metrics_map.insert("brier".to_string(), out[0].brier);
    let saved = SavedModel {
        meta: ModelMeta {
            kind: PAYMENT_KIND.to_string(),
            format_version: PAYMENT_FORMAT,
            trained_at: Utc::now(),
            training_rows: train.len(),
            features: PAYMENT_FEATURES.iter().map(|s| s.to_string()).collect(),
            metrics: metrics_map,
            evaluation: format!(
                "generated attempts (seed {}), trained on days 1-{}, penalty and {} calibration \
                 chosen on days {}-{}, metrics on the remaining {} days",
                config.generator.seed,
                config.train_days,
                model.calibrator.name(),
                config.train_days + 1,
                config.train_days + config.valid_days,
                config.generator.days - config.train_days - config.valid_days
            ),
        },
        model,
    };
    let successes = labels.iter().filter(|&&l| l).count();
    Ok(PaymentEvaluation {
        rows: out,
        sizes: (train.len(), valid.len(), test.len()),
        test_success_rate: successes as f64 / labels.len().max(1) as f64,
        test_outage_attempts: outage.len(),
        saved,
    })
}
