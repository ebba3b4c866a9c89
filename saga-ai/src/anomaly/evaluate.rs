//! The evaluation protocol: learn from a period of normal sagas, score a later period with
//! injected anomalies and storms, next to a static timeout rule.

use std::collections::BTreeMap;

use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::SagaAnomalyDetector;
use super::detector::{ANOMALY_FORMAT, ANOMALY_KIND, DetectorConfig, SagaDetector, TimeoutRule};
use super::generator::{TraceGeneratorConfig, generate_traces};
use super::kind::AnomalyKind;
use super::trace::SagaTrace;
use crate::error::{AiError, Result};
use crate::metrics;
use crate::model::{ModelMeta, SavedModel};

/// Settings of [`evaluate_anomaly`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEvalConfig {
    /// The normal training period (its anomaly rate and storms are ignored: set to 0).
    pub train: TraceGeneratorConfig,
    /// The test period, with anomalies and storms.
    pub test: TraceGeneratorConfig,
    /// The detector's settings.
    pub detector: DetectorConfig,
    /// The baseline's fixed timeout, milliseconds.
    pub timeout_ms: f64,
}

impl Default for AnomalyEvalConfig {
    fn default() -> Self {
        let test = TraceGeneratorConfig::default();
        Self {
            train: TraceGeneratorConfig {
                seed: test.seed + 1000,
                anomaly_rate: 0.0,
                storms: 0,
                start: test.start - TimeDelta::days(1),
                ..test.clone()
            },
            test,
            detector: DetectorConfig::default(),
            timeout_ms: 5000.0,
        }
    }
}

/// Average precision of one kind (its sagas against the normal ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindRow {
    /// The kind, or `None` for all anomalies together.
    pub kind: Option<AnomalyKind>,
    /// Sagas of that kind in the test period.
    pub positives: usize,
    /// Average precision of the detector.
    pub detector: f64,
    /// Average precision of the timeout rule (a yes/no flag).
    pub timeout_rule: f64,
    /// Average precision of ranking by the longest step (the timeout rule's generous form).
    pub longest_step: f64,
}

/// One storm and how fast the rate detector raised its alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StormDelay {
    /// Minutes from the test period's start to the storm's start.
    pub starts_at_minute: f64,
    /// Storm length, minutes.
    pub minutes: f64,
    /// Seconds from storm start to the first alarm, `None` if none came before it ended.
    pub delay_secs: Option<f64>,
}

/// The outcome of [`evaluate_anomaly`].
#[derive(Debug, Clone)]
pub struct AnomalyEvaluation {
    /// Normal sagas learned from, and test sagas scored.
    pub sizes: (usize, usize),
    /// Per kind, then overall (`kind: None`).
    pub rows: Vec<KindRow>,
    /// The storms.
    pub storms: Vec<StormDelay>,
    /// Alarm episodes outside every storm.
    pub false_alarms: usize,
    /// At the detector's own limit (score > 1): precision and recall over all anomalies.
    pub precision_recall: (f64, f64),
    /// Same for the timeout rule.
    pub timeout_precision_recall: (f64, f64),
    /// Of the anomalies the detector flagged, the share whose top finding names the right kind.
    pub kind_accuracy: f64,
    /// A few flagged test sagas with their explanation: (label, explanation).
    pub examples: Vec<(AnomalyKind, String)>,
    /// The fitted detector with its metadata.
    pub saved: SavedModel<SagaDetector>,
}

fn precision_recall(flags: &[bool], labels: &[bool]) -> (f64, f64) {
    let tp = flags.iter().zip(labels).filter(|(f, l)| **f && **l).count() as f64;
    let flagged = flags.iter().filter(|f| **f).count() as f64;
    let pos = labels.iter().filter(|l| **l).count() as f64;
    (
        if flagged > 0.0 { tp / flagged } else { 0.0 },
        if pos > 0.0 { tp / pos } else { 0.0 },
    )
}

/// Fits the detector on the normal period, scores the test period and measures it.
/// `progress` is told each stage's name.
pub fn evaluate_anomaly(
    config: &AnomalyEvalConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<AnomalyEvaluation> {
    progress("generating traces");
    let normal_config = TraceGeneratorConfig {
        anomaly_rate: 0.0,
        storms: 0,
        ..config.train.clone()
    };
    let train: Vec<SagaTrace> = generate_traces(&normal_config)?
        .traces
        .into_iter()
        .map(|t| t.trace)
        .collect();
    let test = generate_traces(&config.test)?;
    let traces: Vec<SagaTrace> = test.traces.iter().map(|t| t.trace.clone()).collect();
    let labels: Vec<Option<AnomalyKind>> = test.traces.iter().map(|t| t.label).collect();

    progress("learning from normal sagas");
    let detector = SagaDetector::fit(&train, &config.detector)?;
    let rule = TimeoutRule {
        timeout_ms: config.timeout_ms,
    };

    progress("scoring the test period");
    let reports = detector.score_all(&traces)?;
    let rule_reports = rule.score_all(&traces)?;
    let s_det: Vec<f64> = reports.iter().map(|r| r.score).collect();
    let s_rule: Vec<f64> = rule_reports.iter().map(|r| r.score).collect();
    let s_long: Vec<f64> = traces
        .iter()
        .map(|t| t.events.iter().map(|e| e.duration_ms).fold(0.0, f64::max))
        .collect();

    let mut rows = Vec::new();
    let kinds = AnomalyKind::ALL
        .into_iter()
        .map(Some)
        .chain(std::iter::once(None));
    for kind in kinds {
        let keep: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i].is_none() || kind.is_none() || labels[i] == kind)
            .collect();
        let y: Vec<bool> = keep.iter().map(|&i| labels[i].is_some()).collect();
        let positives = y.iter().filter(|v| **v).count();
        if positives == 0 {
            continue;
        }
        let pick = |s: &[f64]| keep.iter().map(|&i| s[i]).collect::<Vec<f64>>();
        rows.push(KindRow {
            kind,
            positives,
            detector: metrics::average_precision(&pick(&s_det), &y)?,
            timeout_rule: metrics::average_precision(&pick(&s_rule), &y)?,
            longest_step: metrics::average_precision(&pick(&s_long), &y)?,
        });
    }
    if rows.is_empty() {
        return Err(AiError::NotEnoughData(
            "the test period holds no anomaly".into(),
        ));
    }

    let alarms = detector.rate.alarms(&traces);
    let window = TimeDelta::seconds(detector.rate.window_secs);
    let storms = test
        .storms
        .iter()
        .map(|&(a, b)| StormDelay {
            starts_at_minute: (a - config.test.start).num_seconds() as f64 / 60.0,
            minutes: (b - a).num_seconds() as f64 / 60.0,
            delay_secs: alarms
                .iter()
                .find(|&&t| t >= a && t < b)
                .map(|&t| (t - a).num_milliseconds() as f64 / 1000.0),
        })
        .collect();
    let false_alarms = alarms
        .iter()
        .filter(|&&t| !test.storms.iter().any(|&(a, b)| t >= a && t < b + window))
        .count();

    let truth: Vec<bool> = labels.iter().map(Option::is_some).collect();
    let flags: Vec<bool> = reports.iter().map(|r| r.is_anomalous()).collect();
    let rule_flags: Vec<bool> = rule_reports.iter().map(|r| r.is_anomalous()).collect();
    let flagged_anomalies: Vec<usize> = (0..labels.len())
        .filter(|&i| flags[i] && truth[i])
        .collect();
    let right_kind = flagged_anomalies
        .iter()
        .filter(|&&i| reports[i].top().map(|a| a.kind) == labels[i])
        .count();
    let mut examples = Vec::new();
    for kind in AnomalyKind::ALL {
        if let Some(i) = flagged_anomalies.iter().find(|&&i| labels[i] == Some(kind)) {
            if let Some(top) = reports[*i].top() {
                examples.push((kind, format!("[{}] {}", top.kind, top.explanation)));
            }
        }
    }

    let overall = rows.last().map_or(0.0, |r| r.detector);
    let mut metrics_map = BTreeMap::new();
    metrics_map.insert("average_precision".to_string(), overall);
    for r in &rows {
        if let Some(k) = r.kind {
            metrics_map.insert(format!("average_precision.{k}"), r.detector);
        }
    }
    let saved = SavedModel {
        meta: ModelMeta {
            kind: ANOMALY_KIND.to_string(),
            format_version: ANOMALY_FORMAT,
            trained_at: Utc::now(),
            training_rows: train.len(),
            features: vec![
                "step log-duration robust z (median/MAD)".into(),
                "event-sequence surprise (first-order Markov, additive smoothing)".into(),
                format!("compensation-rate z over {} s", config.detector.window_secs),
            ],
            metrics: metrics_map,
            evaluation: format!(
                "learned from {} minutes of normal generated sagas (seed {}), average precision \
                 on a later {} minutes with injected anomalies and {} storms (seed {})",
                config.train.minutes,
                config.train.seed,
                config.test.minutes,
                test.storms.len(),
                config.test.seed
            ),
        },
        model: detector,
    };
    Ok(AnomalyEvaluation {
        sizes: (train.len(), traces.len()),
        rows,
        storms,
        false_alarms,
        precision_recall: precision_recall(&flags, &truth),
        timeout_precision_recall: precision_recall(&rule_flags, &truth),
        kind_accuracy: if flagged_anomalies.is_empty() {
            0.0
        } else {
            right_kind as f64 / flagged_anomalies.len() as f64
        },
        examples,
        saved,
    })
}
