//! Saga anomalies of the shop: `saga-ai`'s detector (step durations, event sequences,
//! compensation rate) over the order sagas the AI service recorded.
//!
//! Until the service has seen [`MIN_OBSERVED_SAGAS`] finished sagas, the detector is the one
//! of the model file, trained on generated sagas in the shop's words; from then on it is
//! refitted on the shop's own finished sagas ([`fit_observed`]), so "slow" means slow for
//! this shop. Without labels the refit has no held-out measure: its normal limits are the
//! 99.5% quantiles of the shop's own sagas, so about one saga in two hundred scores above 1.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use saga_ai::anomaly::{
    ANOMALY_FORMAT, ANOMALY_KIND, AnomalyReport, DetectorConfig, SagaAnomalyDetector, SagaDetector,
    SagaTrace, TraceStatus,
};
use saga_ai::{AiError, ModelMeta};
use serde::{Deserialize, Serialize};

use super::engine::ModelInfo;
use super::error::AiAppError;

/// Finished sagas the service must have seen before its detector learns from them.
pub const MIN_OBSERVED_SAGAS: usize = 200;

/// Where the detector in use learned what normal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectorSource {
    /// The model file: sagas from `saga-ai`'s generator, in the shop's words.
    Generated,
    /// The shop's own finished sagas.
    Observed,
}

/// The detector that scored, as `GET /anomalies` names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DetectorSummary {
    /// Where it learned.
    pub source: DetectorSource,
    /// Its kind (`anomaly.saga`).
    pub kind: String,
    /// When it was fitted.
    pub trained_at: DateTime<Utc>,
    /// Normal sagas it learned from.
    pub trained_on: usize,
}

/// One finding about a saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    /// `slow_step`, `stuck_step`, `compensation_storm`, `retry_loop` or
    /// `impossible_sequence`.
    pub kind: String,
    /// How abnormal: 1 is the edge of normal.
    pub score: f64,
    /// The step concerned, if one.
    #[schema(required = true)]
    pub step: Option<String>,
    /// The detector's reason, in a sentence.
    pub explanation: String,
}

/// A saga the detector flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SagaAnomaly {
    /// The order whose saga it is.
    pub order_id: String,
    /// When its first event was sent.
    pub started_at: DateTime<Utc>,
    /// Its highest finding's score (above 1).
    pub score: f64,
    /// What the detector found above its normal limit, highest first.
    pub findings: Vec<Finding>,
}

/// A detector and what it is.
#[derive(Debug, Clone)]
pub struct Detector {
    /// The detector.
    pub detector: SagaDetector,
    /// Where it learned, when and from how many sagas.
    pub summary: DetectorSummary,
    /// Its metadata for `GET /models` (only for one fitted on observed sagas; the file model
    /// is listed by the engine).
    pub info: Option<ModelInfo>,
}

/// Whether a saga has ended as far as its trace shows: nothing waits for a reply, and its
/// order was shipped, cancelled or failed.
pub fn finished(trace: &SagaTrace) -> bool {
    use crate::order_saga::events::*;
    let waiting = trace
        .events
        .iter()
        .any(|e| e.status == TraceStatus::Pending);
    let ended = trace.events.iter().any(|e| {
        e.event_type == ORDER_CANCELLED
            || e.event_type == ORDER_FAILED
            || (e.event_type == SHIPPING_SCHEDULE_REQUESTED && e.status == TraceStatus::Completed)
    });
    !waiting && ended
}

/// Fits a detector on the finished sagas among `traces`, if there are at least
/// [`MIN_OBSERVED_SAGAS`] of them. CPU work: run it off the async threads.
pub fn fit_observed(
    traces: &[SagaTrace],
    now: DateTime<Utc>,
) -> Result<Option<Detector>, AiAppError> {
    let done: Vec<SagaTrace> = traces.iter().filter(|t| finished(t)).cloned().collect();
    if done.len() < MIN_OBSERVED_SAGAS {
        return Ok(None);
    }
    let config = DetectorConfig::default();
    let detector = SagaDetector::fit(&done, &config).map_err(|source| AiAppError::Training {
        model: "saga_anomaly",
        source,
    })?;
    let meta = ModelMeta {
        kind: ANOMALY_KIND.to_owned(),
        format_version: ANOMALY_FORMAT,
        trained_at: now,
        training_rows: done.len(),
        features: Vec::new(),
        metrics: BTreeMap::new(),
        evaluation: format!(
            "not measured: the shop's sagas carry no labels; the normal limits are the {:.1}% \
             quantiles of these sagas' own duration and sequence scores, so about {:.1}% of \
             normal sagas score above 1",
            config.quantile * 100.0,
            (1.0 - config.quantile) * 100.0
        ),
    };
    let training_data = format!(
        "the shop's {} latest finished order sagas, from the saga events the AI service \
         recorded",
        done.len()
    );
    Ok(Some(Detector {
        summary: DetectorSummary {
            source: DetectorSource::Observed,
            kind: ANOMALY_KIND.to_owned(),
            trained_at: now,
            trained_on: done.len(),
        },
        info: Some(ModelInfo::new(
            "saga_anomaly_observed",
            &meta,
            &training_data,
            None,
        )),
        detector,
    }))
}

/// The reports of the sagas of `traces` (scored together, so compensation storms show) whose
/// score is above the detector's normal limit, each with its trace, in the order of `traces`.
pub fn anomalous<'t>(
    detector: &SagaDetector,
    traces: &'t [SagaTrace],
) -> Result<Vec<(AnomalyReport, &'t SagaTrace)>, AiError> {
    Ok(detector
        .score_all(traces)?
        .into_iter()
        .zip(traces)
        .filter(|(r, _)| r.is_anomalous())
        .collect())
}

/// The sagas of `traces` (scored together, so compensation storms show) whose score is above
/// the detector's normal limit, most recently started first, at most `limit`.
pub fn find_anomalies(
    detector: &SagaDetector,
    traces: &[SagaTrace],
    limit: usize,
) -> Result<Vec<SagaAnomaly>, AiError> {
    let mut found: Vec<SagaAnomaly> = anomalous(detector, traces)?
        .into_iter()
        .map(|(r, t)| SagaAnomaly {
            order_id: r.saga_id.clone(),
            started_at: t.started_at,
            score: r.score,
            // Only what is above the normal limit: the detector also reports its components'
            // ordinary readings.
            findings: r
                .anomalies
                .into_iter()
                .filter(|a| a.score > 1.0)
                .map(|a| Finding {
                    kind: a.kind.as_str().to_owned(),
                    score: a.score,
                    step: a.step,
                    explanation: a.explanation,
                })
                .collect(),
        })
        .collect();
    found.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| a.order_id.cmp(&b.order_id))
    });
    found.truncate(limit);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use saga_ai::anomaly::{TraceGeneratorConfig, generate_traces};

    use super::*;
    use crate::ai::traces::{RecordedEvent, in_shop_words, trace_of};
    use crate::order_saga::events::*;

    fn generated(minutes: u32) -> Vec<SagaTrace> {
        generate_traces(&TraceGeneratorConfig {
            minutes,
            anomaly_rate: 0.0,
            storms: 0,
            ..TraceGeneratorConfig::default()
        })
        .unwrap()
        .traces
        .iter()
        .map(|t| in_shop_words(&t.trace))
        .collect()
    }

    fn recorded(start: DateTime<Utc>, list: &[(&str, i64)]) -> Vec<RecordedEvent> {
        list.iter()
            .map(|(t, ms)| RecordedEvent {
                event_type: (*t).to_owned(),
                at: start + TimeDelta::milliseconds(*ms),
            })
            .collect()
    }

    fn happy(start: DateTime<Utc>, payment_ms: i64) -> Vec<RecordedEvent> {
        recorded(
            start,
            &[
                (ORDER_PLACED, 0),
                (FRAUD_CHECK_REQUESTED, 0),
                (FRAUD_CHECK_PASSED, 100),
                (INVENTORY_RESERVE_REQUESTED, 105),
                (INVENTORY_RESERVED, 160),
                (PAYMENT_REQUESTED, 165),
                (PAYMENT_PROCESSED, 165 + payment_ms),
                (ORDER_CONFIRMED, 170 + payment_ms),
                (SHIPPING_SCHEDULE_REQUESTED, 170 + payment_ms),
                (SHIPPING_SCHEDULED, 1500 + payment_ms),
            ],
        )
    }

    #[test]
    fn the_generated_detector_passes_the_shops_plain_sagas_and_flags_odd_ones() {
        let detector = SagaDetector::fit(&generated(60), &DetectorConfig::default()).unwrap();
        let t0 = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
        let now = t0 + TimeDelta::minutes(5);
        let plain = trace_of("plain", &happy(t0, 800), now).unwrap();
        let slow = trace_of("slow", &happy(t0 + TimeDelta::seconds(1), 25_000), now).unwrap();
        // A refund though the payment failed, and shipping before anything was reserved.
        let odd = trace_of(
            "odd",
            &recorded(
                t0 + TimeDelta::seconds(2),
                &[
                    (ORDER_PLACED, 0),
                    (FRAUD_CHECK_REQUESTED, 0),
                    (FRAUD_CHECK_PASSED, 100),
                    (SHIPPING_SCHEDULE_REQUESTED, 110),
                    (SHIPPING_SCHEDULED, 1500),
                    (PAYMENT_REFUND_REQUESTED, 1600),
                    (PAYMENT_REFUNDED, 2200),
                ],
            ),
            now,
        )
        .unwrap();
        let found = find_anomalies(&detector, &[plain, slow, odd], 10).unwrap();
        let ids: Vec<&str> = found.iter().map(|a| a.order_id.as_str()).collect();
        assert_eq!(ids, ["odd", "slow"], "{found:#?}");
        assert_eq!(found[0].findings[0].kind, "impossible_sequence");
        assert_eq!(found[1].findings[0].kind, "slow_step");
        assert_eq!(
            found[1].findings[0].step.as_deref(),
            Some(crate::order_saga::steps::PROCESS_PAYMENT)
        );
        assert!(found.iter().all(|a| a.score > 1.0));
        assert_eq!(find_anomalies(&detector, &[], 10).unwrap(), vec![]);
    }

    #[test]
    fn the_shops_own_sagas_teach_it_once_there_are_enough() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
        let now = t0 + TimeDelta::hours(1);
        let traces: Vec<SagaTrace> = (0..MIN_OBSERVED_SAGAS as i64)
            .map(|i| {
                let start = t0 + TimeDelta::seconds(i);
                trace_of(&format!("o-{i}"), &happy(start, 40 + i % 7), now).unwrap()
            })
            .collect();
        assert!(traces.iter().all(finished));
        assert!(fit_observed(&traces[1..], now).unwrap().is_none());
        let fitted = fit_observed(&traces, now).unwrap().unwrap();
        assert_eq!(fitted.summary.source, DetectorSource::Observed);
        assert_eq!(fitted.summary.trained_on, MIN_OBSERVED_SAGAS);
        let info = fitted.info.unwrap();
        assert!(info.metrics.is_empty() && info.evaluation.starts_with("not measured"));
        // A payment of 3 s is slow for this shop, whose payments take 40 to 46 ms.
        let slow = trace_of("slow", &happy(now, 3_000), now + TimeDelta::minutes(1)).unwrap();
        let found = find_anomalies(&fitted.detector, &[slow], 5).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].findings[0].kind, "slow_step");
    }
}
