//! Payment-success prediction: the model learns, is calibrated, rejects bad input, persists.

use chrono::{TimeDelta, TimeZone, Utc};
use saga_ai::metrics;
use saga_ai::payment::{
    MethodRateBaseline, PAYMENT_FORMAT, PAYMENT_KIND, PaymentAttempt, PaymentFeatures,
    PaymentGeneratorConfig, PaymentHistory, PaymentMethod, PaymentModel, PaymentSuccessPredictor,
    generate_payments,
};
use saga_ai::{AiError, ModelMeta, SavedModel};

type Rows = Vec<(PaymentFeatures, bool)>;

fn small_rows(seed: u64) -> (Rows, Vec<f64>) {
    let data = generate_payments(&PaymentGeneratorConfig {
        seed,
        days: 4,
        attempts_per_day: 2000,
        customers: 2000,
        outages_per_method_per_day: 1.0,
        ..Default::default()
    })
    .unwrap();
    let truth = data.iter().map(|g| g.true_probability).collect();
    (
        PaymentHistory::new(15).unwrap().replay(&data).unwrap(),
        truth,
    )
}

fn fitted() -> (PaymentModel, Rows, Vec<f64>) {
    let (rows, truth) = small_rows(1);
    let a = rows.len() / 2;
    let b = rows.len() * 3 / 4;
    let model = PaymentModel::fit(&rows[..a], &rows[a..b]).unwrap();
    (model, rows[b..].to_vec(), truth[b..].to_vec())
}

fn features() -> PaymentFeatures {
    PaymentFeatures {
        method: PaymentMethod::Card,
        amount: 80.0,
        account_age_days: 200.0,
        past_successes: 5,
        past_failures: 0,
        gateway_attempts: 30,
        gateway_failures: 2,
    }
}

#[test]
fn the_model_learns_and_beats_the_per_method_baseline() {
    let (model, test, _) = fitted();
    let labels: Vec<bool> = test.iter().map(|r| r.1).collect();
    let p: Vec<f64> = test
        .iter()
        .map(|r| model.success_probability(&r.0).unwrap())
        .collect();
    let auc = metrics::roc_auc(&p, &labels).unwrap();
    assert!(auc > 0.65, "auc {auc}");
    let (rows, _) = small_rows(1);
    let baseline = MethodRateBaseline::fit(&rows[..rows.len() * 3 / 4]).unwrap();
    let pb: Vec<f64> = test
        .iter()
        .map(|r| baseline.success_probability(&r.0).unwrap())
        .collect();
    assert!(metrics::log_loss(&p, &labels).unwrap() < metrics::log_loss(&pb, &labels).unwrap());
}

#[test]
fn the_model_is_calibrated_on_later_data() {
    let (model, test, _) = fitted();
    let labels: Vec<bool> = test.iter().map(|r| r.1).collect();
    let p: Vec<f64> = test
        .iter()
        .map(|r| model.success_probability(&r.0).unwrap())
        .collect();
    let ece = metrics::expected_calibration_error(&p, &labels, 10).unwrap();
    assert!(ece < 0.05, "ece {ece}");
}

#[test]
fn the_oracle_is_better_than_the_model_on_generated_data() {
    // The generator's true probabilities are what the model estimates; they must rank better.
    let (model, test, truth) = fitted();
    let labels: Vec<bool> = test.iter().map(|r| r.1).collect();
    let p: Vec<f64> = test
        .iter()
        .map(|r| model.success_probability(&r.0).unwrap())
        .collect();
    let oracle = metrics::log_loss(&truth, &labels).unwrap();
    assert!(oracle < metrics::log_loss(&p, &labels).unwrap());
}

#[test]
fn a_failing_gateway_lowers_the_probability() {
    let (model, _, _) = fitted();
    let healthy = model.success_probability(&features()).unwrap();
    let failing = model
        .success_probability(&PaymentFeatures {
            gateway_failures: 25,
            ..features()
        })
        .unwrap();
    assert!(failing < healthy - 0.1, "{failing} vs {healthy}");
}

#[test]
fn bad_features_are_typed_errors() {
    let (model, _, _) = fitted();
    for bad in [
        PaymentFeatures {
            amount: f64::NAN,
            ..features()
        },
        PaymentFeatures {
            amount: -1.0,
            ..features()
        },
        PaymentFeatures {
            account_age_days: f64::INFINITY,
            ..features()
        },
        PaymentFeatures {
            gateway_failures: 31,
            ..features()
        },
    ] {
        assert!(matches!(
            model.success_probability(&bad),
            Err(AiError::InvalidInput(_))
        ));
    }
}

#[test]
fn extreme_but_valid_features_give_a_probability() {
    let (model, _, _) = fitted();
    for f in [
        PaymentFeatures {
            amount: 1e12,
            ..features()
        },
        PaymentFeatures {
            amount: 0.0,
            account_age_days: 0.0,
            ..features()
        },
        PaymentFeatures {
            past_successes: u32::MAX,
            past_failures: u32::MAX,
            ..features()
        },
        PaymentFeatures {
            gateway_attempts: 0,
            gateway_failures: 0,
            ..features()
        },
    ] {
        let p = model.success_probability(&f).unwrap();
        assert!((0.0..=1.0).contains(&p), "{p}");
    }
}

#[test]
fn too_little_data_is_not_enough_data() {
    let (rows, _) = small_rows(2);
    assert!(matches!(
        PaymentModel::fit(&rows[..10], &rows[10..40]),
        Err(AiError::NotEnoughData(_))
    ));
    assert!(matches!(
        MethodRateBaseline::fit(&[]),
        Err(AiError::NotEnoughData(_))
    ));
}

#[test]
fn bad_settings_are_typed_errors() {
    assert!(matches!(
        PaymentHistory::new(0),
        Err(AiError::InvalidInput(_))
    ));
    let zero_days = PaymentGeneratorConfig {
        days: 0,
        ..Default::default()
    };
    assert!(matches!(
        generate_payments(&zero_days),
        Err(AiError::InvalidInput(_))
    ));
    assert!(matches!(
        "cash".parse::<PaymentMethod>(),
        Err(AiError::InvalidInput(_))
    ));
    assert_eq!(
        "pay_later".parse::<PaymentMethod>().unwrap(),
        PaymentMethod::PayLater
    );
}

#[test]
fn gateway_health_counts_only_the_recent_window() {
    let mut h = PaymentHistory::new(10).unwrap();
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let attempt = |minutes: i64, customer: u64| PaymentAttempt {
        at: t0 + TimeDelta::minutes(minutes),
        customer_id: customer,
        method: PaymentMethod::Wallet,
        amount: 10.0,
        account_age_days: 3.0,
    };
    h.record(&attempt(0, 1), false);
    h.record(&attempt(5, 2), true);
    h.record(&attempt(12, 1), false);
    let f = h.features(&attempt(14, 1)).unwrap();
    assert_eq!((f.gateway_attempts, f.gateway_failures), (2, 1));
    assert_eq!((f.past_successes, f.past_failures), (0, 2));
    let card = PaymentAttempt {
        method: PaymentMethod::Card,
        ..attempt(14, 3)
    };
    assert_eq!(h.features(&card).unwrap().gateway_attempts, 0);
}

#[test]
fn the_generator_is_seeded() {
    let c = PaymentGeneratorConfig {
        days: 1,
        attempts_per_day: 200,
        ..Default::default()
    };
    assert_eq!(
        generate_payments(&c).unwrap(),
        generate_payments(&c).unwrap()
    );
}

#[test]
fn a_saved_model_loads_with_its_metadata_and_predicts_the_same() {
    let (model, test, _) = fitted();
    let saved = SavedModel {
        meta: ModelMeta {
            kind: PAYMENT_KIND.into(),
            format_version: PAYMENT_FORMAT,
            trained_at: Utc::now(),
            training_rows: 42,
            features: vec!["f".into()],
            metrics: [("roc_auc".to_string(), 0.7)].into_iter().collect(),
            evaluation: "test".into(),
        },
        model,
    };
    let path = std::env::temp_dir().join(format!("saga-ai-payment-{}.json", std::process::id()));
    saved.save(&path).unwrap();
    let loaded = SavedModel::<PaymentModel>::load(&path, PAYMENT_KIND, PAYMENT_FORMAT).unwrap();
    let wrong = SavedModel::<PaymentModel>::load(&path, "fraud.gbdt", PAYMENT_FORMAT);
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded.meta, saved.meta);
    let a = saved.model.success_probability(&test[0].0).unwrap();
    let b = loaded.model.success_probability(&test[0].0).unwrap();
    assert!((a - b).abs() < 1e-12);
    assert!(matches!(wrong, Err(AiError::IncompatibleModel(_))));
}
