//! The AI engine end to end: trained from generated data on first start, read back on the
//! next, scoring risky orders above ordinary ones, and refusing a corrupt model file.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use reference_app::ai::{
    ANOMALY_MODEL_FILE, AiAppError, AiEngine, Assessment, CustomerHistory, FRAUD_MODEL_FILE,
    FraudDecision, OrderFacts, OrderOutcome, PAYMENT_MODEL_FILE, PastOrder, RiskLevel, address_key,
    decide,
};
use reference_app::api::Money;
use reference_app::api::order::{Address, OrderItem};
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    // A weekday afternoon, fixed so the test does not depend on the clock.
    DateTime::parse_from_rfc3339("2025-03-12T15:00:00Z")
        .unwrap()
        .to_utc()
}

fn address(street: &str) -> Address {
    Address {
        street: street.into(),
        city: "Springfield".into(),
        state: "IL".into(),
        zip: "62701".into(),
    }
}

fn order(id: u128, cents_each: i64, quantity: i64, street: &str, method: &str) -> OrderFacts {
    OrderFacts {
        order_id: Uuid::from_u128(id),
        customer_id: Uuid::from_u128(7),
        items: vec![OrderItem {
            product_id: "p-1".into(),
            quantity,
            price: Money::from_cents(cents_each),
        }],
        total: Money::from_cents(cents_each * quantity),
        shipping_address: address(street),
        payment_method: method.into(),
        created_at: now(),
    }
}

fn past(id: u128, ago: TimeDelta, cents: i64, street: &str, outcome: OrderOutcome) -> PastOrder {
    PastOrder {
        order_id: Uuid::from_u128(id),
        total: Money::from_cents(cents),
        address_key: address_key(&address(street)),
        created_at: now() - ago,
        outcome,
    }
}

/// A customer of eight months, an order every couple of weeks around 45.00, always shipped
/// home and paid; today an order of 42.00 shipped home by card.
fn ordinary() -> (OrderFacts, CustomerHistory) {
    let o = order(1, 2_100, 2, "12 Elm St", "credit_card");
    let past: Vec<PastOrder> = (0..16)
        .map(|k| {
            past(
                100 + k,
                TimeDelta::days(15 * (i64::try_from(k).unwrap() + 1)),
                4_000 + 500 * i64::try_from(k % 3).unwrap(),
                "12 Elm St",
                OrderOutcome::Paid,
            )
        })
        .collect();
    let h = CustomerHistory::before(&o, &past);
    (o, h)
}

/// A customer first seen three hours ago, ten orders since to six different addresses (some
/// declined), now 1,999.99 x 2 to a seventh address.
fn risky() -> (OrderFacts, CustomerHistory) {
    let o = order(2, 199_999, 2, "99 Drop Ln", "credit_card");
    let streets = ["1 A St", "2 B St", "3 C St", "4 D St", "5 E St", "6 F St"];
    let past: Vec<PastOrder> = (0..10)
        .map(|k: u32| {
            past(
                200 + u128::from(k),
                TimeDelta::minutes(15 * i64::from(k) + 5),
                15_000,
                streets[k as usize % streets.len()],
                if k % 3 == 0 {
                    OrderOutcome::PaymentFailed
                } else {
                    OrderOutcome::Paid
                },
            )
        })
        .collect();
    let h = CustomerHistory::before(&o, &past);
    assert_eq!(h.orders_last_24h, 10);
    assert_eq!(h.distinct_addresses(), 6);
    (o, h)
}

/// A busy customer (an order a day for a month, around 50.00, always shipped home) whose
/// account is taken over: an order of 150.00 to another address an hour ago, and now another.
fn takeover() -> (OrderFacts, CustomerHistory) {
    let o = order(3, 15_000, 1, "66 Drop Ln", "credit_card");
    let mut orders: Vec<PastOrder> = (0..30)
        .map(|k: u32| {
            past(
                300 + u128::from(k),
                TimeDelta::hours(24 * i64::from(k) + 20),
                5_000,
                "12 Elm St",
                OrderOutcome::Paid,
            )
        })
        .collect();
    // a customer for more than a year
    orders.push(past(
        398,
        TimeDelta::days(400),
        5_000,
        "12 Elm St",
        OrderOutcome::Paid,
    ));
    orders.push(past(
        399,
        TimeDelta::minutes(50),
        15_000,
        "66 Drop Ln",
        OrderOutcome::Paid,
    ));
    let h = CustomerHistory::before(&o, &orders);
    (o, h)
}

/// Orders of every shape, for range and determinism checks.
fn variety() -> Vec<(OrderFacts, CustomerHistory)> {
    let mut v = vec![ordinary(), risky(), takeover()];
    for (i, method) in [
        "credit_card",
        "debit_card",
        "paypal",
        "bank_transfer",
        "wallet",
    ]
    .into_iter()
    .enumerate()
    {
        for (cents, quantity) in [(1, 1), (2_500, 2), (49_900, 1), (1_000_000, 10)] {
            let o = order(10 + i as u128, cents, quantity, "12 Elm St", method);
            v.push((o.clone(), CustomerHistory::default()));
            v.push((o.clone(), ordinary().1));
            v.push((o.clone(), risky().1));
            v.push((o, takeover().1));
        }
    }
    v
}

struct Log(Mutex<Vec<String>>);

impl Log {
    fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }
    fn push(&self, m: &str) {
        self.0.lock().unwrap().push(m.to_string());
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_trains_and_saves_then_a_restart_loads_the_same_models() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new();
    let started = Instant::now();
    let engine = AiEngine::load_or_train(dir.path(), |m| log.push(m))
        .await
        .unwrap();
    let trained_in = started.elapsed();
    let lines = log.lines();
    println!("trained in {trained_in:?}");
    for l in &lines {
        println!("{l}");
    }
    for file in [FRAUD_MODEL_FILE, PAYMENT_MODEL_FILE, ANOMALY_MODEL_FILE] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
    for (model, metric) in [
        ("trained fraud model", "ROC-AUC 0."),
        ("trained payment-success model", "ROC-AUC 0."),
        ("trained saga anomaly model", "average precision 0."),
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(model))
            .unwrap_or_else(|| panic!("no `{model}` line in {lines:?}"));
        assert!(line.contains("generated data"), "{line}");
        assert!(line.contains(metric), "{line}");
        assert!(line.contains("did not train on"), "{line}");
    }

    // The held-out metrics are real measurements, better than chance and than the rules.
    let models = engine.models();
    assert_eq!(models.len(), 3);
    let fraud = &models[0];
    assert_eq!(
        (fraud.name.as_str(), fraud.kind.as_str()),
        ("fraud", "fraud.gbdt")
    );
    let auc = fraud.metrics["roc_auc"];
    assert!(auc > 0.75 && auc <= 1.0, "fraud ROC-AUC {auc}");
    assert!(
        fraud.metrics["average_precision"] > fraud.metrics["rules_average_precision"],
        "{:?}",
        fraud.metrics
    );
    let payment = &models[1];
    assert_eq!(payment.name, "payment_success");
    let auc = payment.metrics["roc_auc"];
    assert!(auc > 0.6 && auc <= 1.0, "payment ROC-AUC {auc}");
    let anomaly = &models[2];
    assert_eq!(
        (anomaly.name.as_str(), anomaly.kind.as_str()),
        ("saga_anomaly", "anomaly.saga")
    );
    // Anomalies are about a tenth of the test sagas: ranking them well beats that base rate.
    let ap = anomaly.metrics["average_precision"];
    assert!(
        ap > 3.0 * anomaly.metrics["test_anomaly_rate"] && ap <= 1.0,
        "{:?}",
        anomaly.metrics
    );

    // Scores are probabilities, and a risky order scores above an ordinary one.
    let orders = variety();
    let first: Vec<Assessment> = orders.iter().map(|(o, h)| engine.assess(o, h)).collect();
    for a in &first {
        assert!((0.0..=1.0).contains(&a.fraud_score), "{a:?}");
        assert!(
            (0.0..=1.0).contains(&a.payment_success_probability),
            "{a:?}"
        );
        assert_eq!(a.risk_level, RiskLevel::of(a.fraud_score));
        assert!(a.reasons.len() <= 3, "{a:?}");
        assert!(a.model.starts_with("fraud.gbdt v1 trained "), "{}", a.model);
    }
    let (o, h) = ordinary();
    let calm = engine.assess(&o, &h);
    println!("ordinary: {calm:?}");
    assert!(calm.fraud_score < 0.2, "{calm:?}");
    assert_eq!(decide(&calm, 0.8), FraudDecision::Pass);
    for (name, (o, h)) in [("risky", risky()), ("takeover", takeover())] {
        let wild = engine.assess(&o, &h);
        println!("{name}: {wild:?}");
        assert!(
            wild.fraud_score > calm.fraud_score + 0.3,
            "{name} {wild:?} vs ordinary {calm:?}"
        );
        assert!(wild.risk_level >= RiskLevel::High, "{wild:?}");
        assert!(!wild.reasons.is_empty(), "{wild:?}");
        // Screening follows the threshold on real scores.
        let FraudDecision::Reject { reason } = decide(&wild, wild.fraud_score - 0.01) else {
            panic!("{name} passed a threshold below its score: {wild:?}");
        };
        assert!(reason.contains(&wild.reasons[0]), "{reason}");
        assert_eq!(decide(&wild, wild.fraud_score), FraudDecision::Pass);
    }
    // The taken-over account is refused at the default threshold.
    let (o, h) = takeover();
    assert!(matches!(
        decide(&engine.assess(&o, &h), 0.8),
        FraudDecision::Reject { .. }
    ));
    // Earlier declines lower the chance that this charge succeeds.
    let (o, h) = risky();
    assert!(engine.assess(&o, &h).payment_success_probability < calm.payment_success_probability);

    // An ordinary first order, and a large one, are not turned away.
    for cents in [2_500, 250_000] {
        let first_order = order(4, cents, 2, "12 Elm St", "credit_card");
        let newcomer = engine.assess(&first_order, &CustomerHistory::default());
        println!("newcomer: {newcomer:?}");
        assert_eq!(decide(&newcomer, 0.8), FraudDecision::Pass);
    }

    // Scoring is fast: microseconds even in a debug build.
    let started = Instant::now();
    for _ in 0..200 {
        std::hint::black_box(engine.assess(&o, &h));
    }
    let per_order = started.elapsed() / 200;
    println!("assess: {per_order:?} per order");
    assert!(per_order.as_millis() < 5, "{per_order:?}");

    // A restart reads the files back and scores exactly the same.
    let log = Log::new();
    let again = AiEngine::load_or_train(dir.path(), |m| log.push(m))
        .await
        .unwrap();
    let lines = log.lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("loaded ")), "{lines:?}");
    let second: Vec<Assessment> = orders.iter().map(|(o, h)| again.assess(o, h)).collect();
    assert_eq!(first, second);
    assert_eq!(engine.models(), again.models());
}

#[tokio::test]
async fn a_corrupt_model_file_is_a_typed_error_and_is_left_alone() {
    for (file, other) in [
        (FRAUD_MODEL_FILE, PAYMENT_MODEL_FILE),
        (PAYMENT_MODEL_FILE, FRAUD_MODEL_FILE),
        (ANOMALY_MODEL_FILE, FRAUD_MODEL_FILE),
    ] {
        for bad in [
            "not json at all",
            r#"{"meta": {"kind": "forecast.theta"}, "model": {}}"#,
            "",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(file);
            std::fs::write(&path, bad).unwrap();
            let log = Log::new();
            let err = AiEngine::load_or_train(dir.path(), |m| log.push(m))
                .await
                .unwrap_err();
            match &err {
                AiAppError::Model { path: p, .. } => assert_eq!(p, &path),
                other => panic!("expected a model error, got {other:?}"),
            }
            assert!(err.to_string().contains("delete it"), "{err}");
            // Nothing was trained or written: the bad file is found before any training.
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
            assert!(!dir.path().join(other).exists());
            assert!(log.lines().is_empty(), "{:?}", log.lines());
        }
    }
}

#[tokio::test]
async fn an_unreadable_model_folder_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let err = AiEngine::load_or_train(&not_a_dir, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, AiAppError::Io { .. }), "{err:?}");
}
