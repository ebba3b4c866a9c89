//! Saga anomaly detection: the detector learns, explains, rejects bad input, persists.

use chrono::{TimeDelta, TimeZone, Utc};
use saga_ai::anomaly::{
    ANOMALY_FORMAT, ANOMALY_KIND, AnomalyEvalConfig, AnomalyKind, CompensationRateModel,
    DetectorConfig, SagaAnomalyDetector, SagaDetector, SagaTrace, TimeoutRule, TraceEvent,
    TraceGeneratorConfig, TraceStatus, evaluate_anomaly, generate_traces,
};
use saga_ai::{AiError, SavedModel};
use saga_core::saga::{LogStatus, SagaLogEntry};
use uuid::Uuid;

fn normal(minutes: u32, seed: u64) -> Vec<SagaTrace> {
    generate_traces(&TraceGeneratorConfig {
        seed,
        minutes,
        anomaly_rate: 0.0,
        storms: 0,
        ..Default::default()
    })
    .unwrap()
    .traces
    .into_iter()
    .map(|t| t.trace)
    .collect()
}

fn detector() -> (SagaDetector, Vec<SagaTrace>) {
    let traces = normal(40, 1);
    (
        SagaDetector::fit(&traces, &DetectorConfig::default()).unwrap(),
        traces,
    )
}

/// A normal saga that went all the way (six completed steps).
fn completed(traces: &[SagaTrace]) -> SagaTrace {
    traces
        .iter()
        .find(|t| {
            t.events.len() == 6 && t.events.iter().all(|e| e.status == TraceStatus::Completed)
        })
        .cloned()
        .unwrap()
}

#[test]
fn the_detector_beats_the_timeout_rule_on_held_out_traces() {
    let mut config = AnomalyEvalConfig::default();
    config.train.minutes = 60;
    config.test.minutes = 60;
    config.test.anomaly_rate = 0.03;
    config.test.storms = 1;
    let eval = evaluate_anomaly(&config, &mut |_| {}).unwrap();
    let overall = eval.rows.iter().find(|r| r.kind.is_none()).unwrap();
    assert!(overall.detector > 0.8, "{:?}", eval.rows);
    assert!(
        overall.detector > overall.timeout_rule + 0.3,
        "{:?}",
        eval.rows
    );
    assert!(
        eval.storms.iter().all(|s| s.delay_secs.is_some()),
        "{:?}",
        eval.storms
    );
}

#[test]
fn a_normal_saga_is_within_the_normal_limit() {
    let (d, traces) = detector();
    let report = d.score(&completed(&traces)).unwrap();
    assert!(!report.is_anomalous(), "{report:?}");
}

#[test]
fn payment_before_reservation_is_an_impossible_sequence() {
    let (d, traces) = detector();
    let mut t = completed(&traces);
    t.events.swap(2, 3);
    let report = d.score(&t).unwrap();
    let top = report.top().unwrap();
    assert!(report.is_anomalous());
    assert_eq!(top.kind, AnomalyKind::ImpossibleSequence);
    assert!(
        top.explanation.contains("ChargePayment:completed"),
        "{}",
        top.explanation
    );
}

#[test]
fn a_step_repeated_many_times_is_a_retry_loop() {
    let (d, traces) = detector();
    let mut t = completed(&traces);
    let mut failed = t.events[3].clone();
    failed.status = TraceStatus::Failed;
    for _ in 0..8 {
        t.events.insert(3, failed.clone());
    }
    let top = d.score(&t).unwrap().top().cloned().unwrap();
    assert_eq!(top.kind, AnomalyKind::RetryLoop);
    assert_eq!(top.step.as_deref(), Some("payment"));
}

#[test]
fn slow_and_stuck_steps_name_the_step_and_the_mads() {
    let (d, traces) = detector();
    let mut slow = completed(&traces);
    slow.events[1].duration_ms *= 20.0;
    let top = d.score(&slow).unwrap().top().cloned().unwrap();
    assert_eq!(top.kind, AnomalyKind::SlowStep);
    assert!(top.explanation.contains("fraud_check") && top.explanation.contains("MADs"));

    let mut stuck = completed(&traces);
    stuck.events.truncate(4);
    stuck.events[3].status = TraceStatus::TimedOut;
    stuck.events[3].duration_ms = 30_000.0;
    let top = d.score(&stuck).unwrap().top().cloned().unwrap();
    assert_eq!(top.kind, AnomalyKind::StuckStep);
}

#[test]
fn a_burst_of_compensations_raises_a_storm_alarm_and_normal_traffic_does_not() {
    let train = normal(60, 2);
    let model = CompensationRateModel::fit(&train, 300).unwrap();
    assert!(model.alarms(&normal(60, 3)).is_empty());
    // Every saga of a later period compensates.
    let storm: Vec<SagaTrace> = normal(20, 4)
        .into_iter()
        .map(|mut t| {
            t.events.push(TraceEvent {
                step: "order".into(),
                event_type: "CancelOrder".into(),
                status: TraceStatus::Compensated,
                start_ms: 10.0,
                duration_ms: 10.0,
            });
            t
        })
        .collect();
    let alarms = model.alarms(&storm);
    assert!(!alarms.is_empty());
    let first = storm.iter().map(|t| t.started_at).min().unwrap();
    assert!(alarms[0] - first < TimeDelta::minutes(2));
}

#[test]
fn bad_input_is_a_typed_error_and_odd_input_does_not_panic() {
    let (d, traces) = detector();
    let mut t = completed(&traces);
    t.events[0].duration_ms = f64::NAN;
    assert!(matches!(d.score(&t), Err(AiError::InvalidInput(_))));
    t.events[0].duration_ms = -5.0;
    assert!(matches!(d.score(&t), Err(AiError::InvalidInput(_))));
    let empty = SagaTrace {
        id: "e".into(),
        started_at: Utc::now(),
        events: vec![],
    };
    assert!(d.score(&empty).unwrap().score.is_finite());
    let mut huge = completed(&traces);
    huge.events[0].duration_ms = 1e300;
    huge.events[0].event_type = "NeverSeen".into();
    assert!(d.score_all(&[huge, empty]).is_ok());
    assert!(matches!(
        SagaDetector::fit(&traces[..5], &DetectorConfig::default()),
        Err(AiError::NotEnoughData(_))
    ));
    let bad = DetectorConfig {
        alpha: 0.0,
        ..Default::default()
    };
    assert!(matches!(
        SagaDetector::fit(&traces, &bad),
        Err(AiError::InvalidInput(_))
    ));
}

#[test]
fn a_running_saga_is_not_an_odd_sequence() {
    let (d, traces) = detector();
    let mut t = completed(&traces);
    t.events.truncate(4);
    t.events[3].status = TraceStatus::Pending;
    t.events[3].duration_ms = 100.0;
    assert!(!d.score(&t).unwrap().is_anomalous());
}

#[test]
fn the_timeout_rule_flags_only_long_steps() {
    let (_, traces) = detector();
    let rule = TimeoutRule { timeout_ms: 5000.0 };
    let mut t = completed(&traces);
    assert!(!rule.score(&t).unwrap().is_anomalous());
    t.events[5].duration_ms = 6000.0;
    assert!(rule.score(&t).unwrap().is_anomalous());
}

#[test]
fn traces_are_built_from_the_saga_log() {
    let id = Uuid::from_u128(7);
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let entry =
        |ms: i64, step: &str, ev: &str, status: LogStatus, detail: Option<&str>| SagaLogEntry {
            saga_id: id,
            step: step.into(),
            event_type: ev.into(),
            event_id: Uuid::from_u128(ms as u128),
            status,
            at: t0 + TimeDelta::milliseconds(ms),
            detail: detail.map(str::to_string),
        };
    let log = vec![
        entry(0, "saga", "OrderSaga", LogStatus::Started, None),
        entry(0, "inventory", "ReserveInventory", LogStatus::Started, None),
        entry(
            50,
            "inventory",
            "InventoryReserved",
            LogStatus::Completed,
            None,
        ),
        entry(60, "payment", "ChargePayment", LogStatus::Started, None),
        entry(
            30_060,
            "payment",
            "ChargePayment",
            LogStatus::Failed,
            Some("deadline passed"),
        ),
        entry(
            30_070,
            "inventory",
            "ReleaseInventory",
            LogStatus::Compensating,
            None,
        ),
    ];
    let now = t0 + TimeDelta::milliseconds(31_070);
    let traces = SagaTrace::from_log(&log, now);
    assert_eq!(traces.len(), 1);
    let e = &traces[0].events;
    assert_eq!(e.len(), 3);
    assert_eq!(
        (e[0].status, e[0].duration_ms),
        (TraceStatus::Completed, 50.0)
    );
    assert_eq!(e[0].event_type, "ReserveInventory");
    assert_eq!(
        (e[1].status, e[1].duration_ms),
        (TraceStatus::TimedOut, 30_000.0)
    );
    assert_eq!(
        (e[2].status, e[2].duration_ms),
        (TraceStatus::Pending, 1000.0)
    );
}

#[test]
fn the_generator_is_seeded_and_labels_its_anomalies() {
    let c = TraceGeneratorConfig {
        minutes: 30,
        anomaly_rate: 0.05,
        ..Default::default()
    };
    let a = generate_traces(&c).unwrap();
    assert_eq!(a, generate_traces(&c).unwrap());
    assert!(
        a.traces
            .iter()
            .any(|t| t.label == Some(AnomalyKind::RetryLoop))
    );
    let bad = TraceGeneratorConfig {
        anomaly_rate: 0.9,
        ..Default::default()
    };
    assert!(matches!(
        generate_traces(&bad),
        Err(AiError::InvalidInput(_))
    ));
}

#[test]
fn a_saved_detector_loads_and_scores_the_same() {
    let mut config = AnomalyEvalConfig::default();
    config.train.minutes = 30;
    config.test.minutes = 30;
    config.test.anomaly_rate = 0.03;
    let eval = evaluate_anomaly(&config, &mut |_| {}).unwrap();
    let path = std::env::temp_dir().join(format!("saga-ai-anomaly-{}.json", std::process::id()));
    eval.saved.save(&path).unwrap();
    let loaded = SavedModel::<SagaDetector>::load(&path, ANOMALY_KIND, ANOMALY_FORMAT).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded.meta.kind, eval.saved.meta.kind);
    assert_eq!(loaded.meta.trained_at, eval.saved.meta.trained_at);
    assert_eq!(loaded.meta.training_rows, eval.saved.meta.training_rows);
    for (k, v) in &eval.saved.meta.metrics {
        assert!((loaded.meta.metrics[k] - v).abs() < 1e-12, "{k}");
    }
    let t = normal(5, 9);
    let a = eval.saved.model.score_all(&t).unwrap();
    let b = loaded.model.score_all(&t).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x.score - y.score).abs() < 1e-9);
    }
}
