//! Fraud scoring: generator, feature store, models, evaluation, persistence, CSV loader.

use std::path::PathBuf;

use chrono::NaiveDate;
use saga_ai::fraud::{
    Estimator, FeatureSet, FeatureState, FraudModel, FraudScorer, Gbdt, GbdtParams, ModelKind,
    OrderInfo, PaymentMethod, Protocol, RiskLevel, RuleScorer, Scenario, SimConfig, Transaction,
    evaluate, generate, load_creditcard_csv, parse_creditcard_csv, split_by_time,
};
use saga_ai::{AiError, ModelMeta, SavedModel, metrics};

const DAY: i64 = 86_400;

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2018, 4, 1).unwrap()
}

fn tx(id: u64, time: i64, customer: u32, terminal: u32, amount: f64, fraud: bool) -> Transaction {
    Transaction {
        id,
        time,
        customer,
        terminal,
        amount,
        order: None,
        fraud,
        scenario: if fraud {
            Scenario::CompromisedTerminal
        } else {
            Scenario::Legit
        },
    }
}

fn order() -> OrderInfo {
    OrderInfo {
        account_age_days: 100.0,
        shipping_address: 7,
        shipping_new: false,
        shipping_differs_billing: false,
        item_count: 2,
        resale_share: 0.0,
        payment_method: PaymentMethod::Card,
    }
}

/// Features and labels of days `from..to` of a small generated set.
fn small_rows(seed: u64, from: i64, to: i64) -> (Vec<Vec<f64>>, Vec<bool>) {
    let data = generate(&SimConfig::small(seed)).unwrap();
    let mut state = FeatureState::new(FeatureSet::Orders, data.config.start_date);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for t in &data.transactions {
        if (from..to).contains(&t.day()) {
            x.push(state.features(t).unwrap().values);
            y.push(t.fraud);
        }
        state.observe(t).unwrap();
    }
    (x, y)
}

fn quick_gbdt() -> GbdtParams {
    GbdtParams {
        n_trees: 20,
        max_depth: 3,
        learning_rate: 0.3,
        ..GbdtParams::default()
    }
}

#[test]
fn generator_is_deterministic() {
    let a = generate(&SimConfig::small(1)).unwrap();
    let b = generate(&SimConfig::small(1)).unwrap();
    assert_eq!(a.transactions, b.transactions);
    let c = generate(&SimConfig::small(2)).unwrap();
    assert_ne!(a.transactions, c.transactions);
}

#[test]
fn generator_orders_by_time_with_about_one_percent_fraud() {
    let d = generate(&SimConfig::small(3)).unwrap();
    assert!(d.transactions.len() > 5_000);
    assert!(d.transactions.windows(2).all(|w| w[0].time <= w[1].time));
    assert!(d.transactions.iter().all(|t| t.order.is_some()));
    let rate = d.fraud_rate();
    assert!((0.004..0.03).contains(&rate), "fraud rate {rate}");
}

#[test]
fn generator_applies_every_scenario() {
    let d = generate(&SimConfig::small(4)).unwrap();
    for s in [
        Scenario::LargeAmount,
        Scenario::CompromisedTerminal,
        Scenario::CompromisedCard,
        Scenario::AccountTakeover,
        Scenario::NewAccountDropAddress,
    ] {
        assert!(
            d.transactions.iter().any(|t| t.scenario == s && t.fraud),
            "{s:?} missing"
        );
    }
    assert!(
        d.transactions
            .iter()
            .filter(|t| t.amount > 220.0 && t.scenario != Scenario::CompromisedCard)
            .all(|t| t.fraud)
    );
}

#[test]
fn handbook_config_has_the_handbooks_settings_and_no_order_fields() {
    let c = SimConfig::handbook(0);
    assert_eq!(
        (c.n_customers, c.n_terminals, c.nb_days, c.radius),
        (5000, 10_000, 183, 5.0)
    );
    assert_eq!(c.start_date, start());
    let small = generate(&SimConfig {
        n_customers: 50,
        n_terminals: 100,
        nb_days: 10,
        radius: 30.0,
        ..c
    })
    .unwrap();
    assert!(small.transactions.iter().all(|t| t.order.is_none()));
}

#[test]
fn bad_simulator_settings_are_invalid_input() {
    let bad = SimConfig {
        radius: f64::NAN,
        ..SimConfig::small(0)
    };
    assert!(matches!(generate(&bad), Err(AiError::InvalidInput(_))));
    let empty = SimConfig {
        n_customers: 0,
        ..SimConfig::small(0)
    };
    assert!(matches!(generate(&empty), Err(AiError::InvalidInput(_))));
}

#[test]
fn customer_windows_include_the_current_transaction() {
    let mut s = FeatureState::new(FeatureSet::Handbook, start());
    s.observe(&tx(0, 10 * DAY, 1, 1, 10.0, false)).unwrap(); // 5 days before
    s.observe(&tx(1, 14 * DAY + 3600, 1, 2, 20.0, false))
        .unwrap(); // within 1 day
    let f = s.features(&tx(2, 15 * DAY, 1, 3, 30.0, false)).unwrap();
    assert_eq!(f.get("customer_nb_tx_1day"), Some(2.0));
    assert_eq!(f.get("customer_avg_amount_1day"), Some(25.0));
    assert_eq!(f.get("customer_nb_tx_7day"), Some(3.0));
    assert_eq!(f.get("customer_avg_amount_7day"), Some(20.0));
    assert_eq!(f.get("tx_amount"), Some(30.0));
}

#[test]
fn terminal_risk_reads_only_labels_older_than_the_delay() {
    let mut s = FeatureState::new(FeatureSet::Handbook, start());
    // a fraud 3 days ago (inside the delay: unknown), one 9 days ago (known)
    s.observe(&tx(0, 21 * DAY, 9, 5, 10.0, true)).unwrap();
    s.observe(&tx(1, 22 * DAY, 9, 5, 10.0, false)).unwrap();
    s.observe(&tx(2, 27 * DAY, 9, 5, 10.0, true)).unwrap();
    let f = s.features(&tx(3, 30 * DAY, 8, 5, 10.0, false)).unwrap();
    assert_eq!(f.get("terminal_nb_tx_7day"), Some(2.0));
    assert_eq!(f.get("terminal_risk_7day"), Some(0.5));
    assert_eq!(f.get("terminal_nb_tx_1day"), Some(0.0));
    assert_eq!(f.get("terminal_risk_1day"), Some(0.0));
}

#[test]
fn weekend_and_night_flags() {
    let s = FeatureState::new(FeatureSet::Handbook, start()); // 2018-04-01 is a Sunday
    let f = s.features(&tx(0, 3600, 1, 1, 5.0, false)).unwrap();
    assert_eq!(f.get("tx_during_weekend"), Some(1.0));
    assert_eq!(f.get("tx_during_night"), Some(1.0));
    let f = s
        .features(&tx(0, DAY + 12 * 3600, 1, 1, 5.0, false))
        .unwrap();
    assert_eq!(f.get("tx_during_weekend"), Some(0.0));
    assert_eq!(f.get("tx_during_night"), Some(0.0));
}

#[test]
fn address_features_see_shared_drop_addresses() {
    let mut s = FeatureState::new(FeatureSet::Orders, start());
    for c in 0..3u32 {
        let mut t = tx(c as u64, DAY + c as i64, c, 1, 50.0, false);
        t.order = Some(order());
        s.observe(&t).unwrap();
    }
    let mut t = tx(9, DAY + 100, 42, 1, 50.0, false);
    t.order = Some(order());
    let f = s.features(&t).unwrap();
    assert_eq!(f.get("address_customers_7day"), Some(4.0));
    assert_eq!(f.get("payment_card"), Some(1.0));
}

#[test]
fn feature_store_rejects_bad_input() {
    let mut s = FeatureState::new(FeatureSet::Orders, start());
    assert!(matches!(
        s.features(&tx(0, 0, 1, 1, 5.0, false)),
        Err(AiError::InvalidInput(_))
    )); // no order fields
    let mut t = tx(0, 100, 1, 1, f64::NAN, false);
    t.order = Some(order());
    assert!(matches!(s.features(&t), Err(AiError::InvalidInput(_))));
    t.amount = 5.0;
    s.observe(&t).unwrap();
    t.time = 50; // older than the last observed
    assert!(matches!(s.observe(&t), Err(AiError::InvalidInput(_))));
    t.time = 200;
    t.order = Some(OrderInfo {
        resale_share: 3.0,
        ..order()
    });
    assert!(matches!(s.features(&t), Err(AiError::InvalidInput(_))));
}

#[test]
fn boosting_learns_fraud_on_later_days() {
    let (x, y) = small_rows(5, 7, 21);
    let model = Gbdt::fit(&x, &y, &quick_gbdt(), |_, _| {}).unwrap();
    let (tx_, ty) = small_rows(5, 25, 35);
    let scores: Vec<f64> = tx_
        .iter()
        .map(|r| model.predict_proba(r).unwrap())
        .collect();
    let auc = metrics::roc_auc(&scores, &ty).unwrap();
    let ap = metrics::average_precision(&scores, &ty).unwrap();
    let rate = ty.iter().filter(|&&v| v).count() as f64 / ty.len() as f64;
    assert!(auc > 0.8, "auc {auc}");
    assert!(ap > 5.0 * rate, "ap {ap}, base rate {rate}");
}

#[test]
fn scores_come_with_reasons_and_levels() {
    let (x, y) = small_rows(6, 7, 21);
    let model = FraudModel::new(
        FeatureSet::Orders,
        Estimator::Gbdt(Gbdt::fit(&x, &y, &quick_gbdt(), |_, _| {}).unwrap()),
    )
    .unwrap();
    let i = y.iter().position(|&f| f).unwrap();
    let s = model
        .score(&saga_ai::fraud::Features {
            set: FeatureSet::Orders,
            values: x[i].clone(),
        })
        .unwrap();
    assert!((0.0..=1.0).contains(&s.probability));
    assert!(s.reasons.len() <= 3);
    assert!(
        s.reasons
            .windows(2)
            .all(|w| w[0].contribution >= w[1].contribution)
    );
    assert!(
        s.reasons
            .iter()
            .all(|r| r.contribution > 0.0 && !r.description.is_empty())
    );
    assert_eq!(s.risk_level, model.thresholds.level(s.probability));
}

#[test]
fn models_reject_bad_features_and_survive_huge_values() {
    let (x, y) = small_rows(7, 7, 14);
    let model = FraudModel::new(
        FeatureSet::Orders,
        Estimator::Gbdt(Gbdt::fit(&x, &y, &quick_gbdt(), |_, _| {}).unwrap()),
    )
    .unwrap();
    let mut v = x[0].clone();
    v[0] = f64::NAN;
    let nan = saga_ai::fraud::Features {
        set: FeatureSet::Orders,
        values: v,
    };
    assert!(matches!(model.score(&nan), Err(AiError::InvalidInput(_))));
    let short = saga_ai::fraud::Features {
        set: FeatureSet::Handbook,
        values: vec![1.0; 15],
    };
    assert!(matches!(model.score(&short), Err(AiError::InvalidInput(_))));
    let huge = saga_ai::fraud::Features {
        set: FeatureSet::Orders,
        values: vec![1e300; FeatureSet::Orders.len()],
    };
    let p = model.score(&huge).unwrap().probability;
    assert!((0.0..=1.0).contains(&p));
}

#[test]
fn boosting_rejects_one_class_and_ragged_rows() {
    let x = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
    assert!(matches!(
        Gbdt::fit(&x, &[false, false], &quick_gbdt(), |_, _| {}),
        Err(AiError::NotEnoughData(_))
    ));
    let ragged = vec![vec![1.0, 2.0], vec![3.0]];
    assert!(matches!(
        Gbdt::fit(&ragged, &[false, true], &quick_gbdt(), |_, _| {}),
        Err(AiError::InvalidInput(_))
    ));
    assert!(matches!(
        Gbdt::fit(&[], &[], &quick_gbdt(), |_, _| {}),
        Err(AiError::NotEnoughData(_))
    ));
}

#[test]
fn rules_flag_the_seed_signals() {
    let rules = RuleScorer::default();
    let mut s = FeatureState::new(FeatureSet::Orders, start());
    let mut t = tx(0, DAY + 12 * 3600, 1, 1, 30.0, false);
    t.order = Some(order());
    let calm = rules.score(&s.features(&t).unwrap()).unwrap();
    assert_eq!(calm.probability, 0.0);
    assert_eq!(calm.risk_level, RiskLevel::Low);
    s.observe(&t).unwrap();
    t.time += 60;
    t.amount = 1500.0;
    t.order = Some(OrderInfo {
        account_age_days: 1.0,
        shipping_differs_billing: true,
        shipping_new: true,
        ..order()
    });
    let risky = rules.score(&s.features(&t).unwrap()).unwrap();
    assert_eq!(risky.risk_level, RiskLevel::High);
    assert_eq!(risky.reasons[0].feature, "tx_amount");
}

#[test]
fn split_removes_known_compromised_customers_from_test() {
    let p = Protocol {
        train_start_day: 0,
        train_days: 2,
        delay_days: 1,
        test_days: 1,
    };
    let txs = vec![
        tx(0, 0, 1, 1, 10.0, true),   // customer 1 defrauded in training
        tx(1, 10, 2, 1, 10.0, false), // customer 2 clean
        tx(2, 3 * DAY, 1, 1, 10.0, false),
        tx(3, 3 * DAY + 1, 2, 1, 10.0, true),
    ];
    let s = split_by_time(&txs, &p);
    assert_eq!(s.train, vec![0, 1]);
    assert_eq!(s.test, vec![3]);
}

#[test]
fn evaluation_beats_nothing_and_refuses_impossible_protocols() {
    let data = generate(&SimConfig::small(8)).unwrap();
    let p = Protocol {
        train_start_day: 16,
        train_days: 7,
        delay_days: 3,
        test_days: 7,
    };
    let r = evaluate(&data, FeatureSet::Orders, &p, &[ModelKind::Rules], &mut ()).unwrap();
    let rules = &r.results[0];
    assert!(rules.roc_auc > 0.5 && rules.roc_auc <= 1.0);
    assert!(r.test_rows.1 > 0);
    let too_long = Protocol {
        train_days: 30,
        ..p
    };
    assert!(matches!(
        evaluate(
            &data,
            FeatureSet::Orders,
            &too_long,
            &[ModelKind::Rules],
            &mut ()
        ),
        Err(AiError::InvalidInput(_))
    ));
}

#[cfg(feature = "linfa")]
#[test]
fn logistic_regression_learns_and_explains() {
    use saga_ai::fraud::{Logistic, LogisticParams};
    // few rows: linfa is unoptimised in debug builds
    let (x, y) = small_rows(9, 7, 17);
    let p = LogisticParams {
        alpha: 10.0,
        max_iterations: 100,
    };
    let m = Logistic::fit(&x, &y, &p).unwrap();
    let (tx_, ty) = small_rows(9, 25, 35);
    let scores: Vec<f64> = tx_.iter().map(|r| m.predict_proba(r).unwrap()).collect();
    let auc = metrics::roc_auc(&scores, &ty).unwrap();
    assert!(auc > 0.7, "auc {auc}");
    let (b, c) = m.contributions(&tx_[0]).unwrap();
    let p = 1.0 / (1.0 + (-(b + c.iter().sum::<f64>())).exp());
    assert!((p - scores[0]).abs() < 1e-9);
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("saga-ai-fraud-{}-{name}", std::process::id()))
}

#[test]
fn saved_model_round_trips_with_metadata() {
    let (x, y) = small_rows(10, 7, 14);
    let model = FraudModel::new(
        FeatureSet::Orders,
        Estimator::Gbdt(Gbdt::fit(&x, &y, &quick_gbdt(), |_, _| {}).unwrap()),
    )
    .unwrap();
    let saved = SavedModel {
        meta: ModelMeta {
            kind: model.kind().into(),
            format_version: saga_ai::fraud::MODEL_FORMAT_VERSION,
            trained_at: chrono::Utc::now(),
            training_rows: x.len(),
            features: FeatureSet::Orders.names(),
            metrics: [("roc_auc".to_string(), 0.9)].into(),
            evaluation: "test".into(),
        },
        model,
    };
    let path = tmp("model.json");
    saved.save(&path).unwrap();
    let loaded = FraudModel::load(&path).unwrap();
    assert_eq!(loaded.meta, saved.meta);
    let f = saga_ai::fraud::Features {
        set: FeatureSet::Orders,
        values: x[3].clone(),
    };
    assert_eq!(
        loaded.model.score(&f).unwrap(),
        saved.model.score(&f).unwrap()
    );
    std::fs::write(&path, b"{\"meta\": 1}").unwrap();
    assert!(matches!(
        FraudModel::load(&path),
        Err(AiError::IncompatibleModel(_))
    ));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn creditcard_sample_loads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/creditcard_sample.csv");
    let rows = load_creditcard_csv(&path).unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows.iter().filter(|r| r.fraud).count(), 2);
    assert_eq!(rows[0].features().len(), 30);
    assert!(rows.windows(2).all(|w| w[0].time <= w[1].time));
}

fn csv_line(values: &[&str]) -> String {
    values.join(",")
}

fn header() -> String {
    let mut h = vec!["Time".to_string()];
    h.extend((1..=28).map(|i| format!("V{i}")));
    h.push("Amount".into());
    h.push("Class".into());
    h.join(",")
}

#[test]
fn creditcard_errors_name_line_and_column() {
    let mut cells = vec!["0"; 31];
    cells[5] = "abc";
    let text = format!("{}\n{}\n", header(), csv_line(&cells));
    let err = parse_creditcard_csv(text.as_bytes(), "t.csv").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AiError::Data(_)));
    assert!(
        msg.contains("line 2") && msg.contains("column 6") && msg.contains("V5"),
        "{msg}"
    );

    let mut cells = vec!["0"; 31];
    cells[30] = "2";
    let text = format!("{}\n{}\n", header(), csv_line(&cells));
    let msg = parse_creditcard_csv(text.as_bytes(), "t.csv")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("Class"), "{msg}");

    let text = format!("{}\n0,1\n", header());
    let msg = parse_creditcard_csv(text.as_bytes(), "t.csv")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 2") && msg.contains("2 columns"), "{msg}");

    let bad_header = header().replace("V7", "X7");
    let msg = parse_creditcard_csv(bad_header.as_bytes(), "t.csv")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 1") && msg.contains("column 8"), "{msg}");

    assert!(matches!(
        parse_creditcard_csv(&b""[..], "t.csv"),
        Err(AiError::Data(_))
    ));
    assert!(matches!(
        load_creditcard_csv(&tmp("missing.csv")),
        Err(AiError::Io { .. })
    ));
}
