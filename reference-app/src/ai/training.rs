//! Training the two models from `saga-ai`'s seeded generators when no model file exists: small,
//! fixed settings (a few seconds in a debug build), and a held-out measure on later days the
//! model was not trained on.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use saga_ai::fraud::{
    Estimator, FeatureState, Features, FraudModel, FraudScorer, Gbdt, GbdtParams,
    MODEL_FORMAT_VERSION, RuleScorer, Scenario, SimConfig, generate,
};
use saga_ai::payment::{PaymentEvalConfig, PaymentGeneratorConfig, PaymentModel, evaluate_payment};
use saga_ai::{AiError, ModelMeta, SavedModel, metrics};

use super::error::AiAppError;
use super::features::{SET, Slots};

/// Seed of the generated fraud data.
pub(crate) const FRAUD_SEED: u64 = 7;
/// Seed of the generated payment attempts.
pub(crate) const PAYMENT_SEED: u64 = 7;

/// Days of generated orders; the first are history only, the last are the held-out test.
const FRAUD_DAYS: u32 = 42;
const FRAUD_WARMUP_DAYS: i64 = 7;
const FRAUD_TEST_DAYS: i64 = 7;

fn fraud_config() -> SimConfig {
    SimConfig {
        n_customers: 300,
        n_terminals: 200,
        nb_days: FRAUD_DAYS,
        start_date: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(),
        radius: 15.0,
        seed: FRAUD_SEED,
        // A shop has no terminals: no compromised-terminal fraud to learn.
        compromised_terminals_per_day: 0.0,
        compromised_cards_per_day: 0.5,
        orders: true,
        takeovers_per_day: 1.0,
        fraud_accounts_per_day: 1.0,
    }
}

fn fraud_params() -> GbdtParams {
    GbdtParams {
        n_trees: 50,
        max_depth: 4,
        learning_rate: 0.15,
        subsample: 0.8,
        min_child_weight: 1.0,
        lambda: 1.0,
        max_bins: 32,
        seed: FRAUD_SEED,
    }
}

/// A sentence on which features the shop fills.
fn fraud_feature_note(slots: &Slots) -> String {
    let used = slots.used();
    let held: Vec<&str> = (0..SET.len())
        .filter(|i| !used.contains(i))
        .filter_map(|i| SET.name(i))
        .collect();
    format!(
        "features the shop cannot compute are held at 0 in training and scoring: {}",
        held.join(", ")
    )
}

/// Trains the fraud model: `saga-ai`'s orders generator (compromised cards, account takeovers,
/// fresh accounts shipping to drop addresses), features from `FeatureState`, boosted trees
/// fitted on days 7-34 and measured on days 35-41.
///
/// The handbook's first scenario (every amount above 220 is fraud) is relabelled genuine:
/// it is a rule planted in the simulator, and a shop that learned it would refuse every order
/// above 220.
pub(crate) fn train_fraud(slots: &Slots) -> Result<SavedModel<FraudModel>, AiAppError> {
    let err = |source: AiError| AiAppError::Training {
        model: "fraud",
        source,
    };
    let config = fraud_config();
    let mut data = generate(&config).map_err(err)?;
    for tx in &mut data.transactions {
        if tx.scenario == Scenario::LargeAmount {
            tx.fraud = false;
            tx.scenario = Scenario::Legit;
        }
    }
    let rows = FeatureState::new(SET, config.start_date)
        .transform_all(&data.transactions)
        .map_err(err)?;
    let test_start = i64::from(config.nb_days) - FRAUD_TEST_DAYS;
    let (mut x_train, mut y_train) = (vec![], vec![]);
    let (mut x_test, mut y_test, mut unmasked_test) = (vec![], vec![], vec![]);
    for (tx, features) in data.transactions.iter().zip(rows) {
        let mut values = features.values.clone();
        slots.mask(&mut values);
        let day = tx.day();
        if day >= test_start {
            x_test.push(values);
            y_test.push(tx.fraud);
            unmasked_test.push(features);
        } else if day >= FRAUD_WARMUP_DAYS {
            x_train.push(values);
            y_train.push(tx.fraud);
        }
    }
    let params = fraud_params();
    let gbdt = Gbdt::fit(&x_train, &y_train, &params, |_, _| {}).map_err(err)?;
    let model = FraudModel::new(SET, Estimator::Gbdt(gbdt)).map_err(err)?;

    let scores = x_test
        .iter()
        .map(|v| {
            model.probability(&Features {
                set: SET,
                values: v.clone(),
            })
        })
        .collect::<Result<Vec<f64>, AiError>>()
        .map_err(err)?;
    // The rules read every feature they know, the absolute amount and the hour included.
    let rules = RuleScorer::default();
    let rules = unmasked_test
        .iter()
        .map(|f| rules.probability(f))
        .collect::<Result<Vec<f64>, AiError>>()
        .map_err(err)?;
    let metrics = BTreeMap::from([
        (
            "roc_auc".to_string(),
            metrics::roc_auc(&scores, &y_test).map_err(err)?,
        ),
        (
            "average_precision".to_string(),
            metrics::average_precision(&scores, &y_test).map_err(err)?,
        ),
        (
            "rules_roc_auc".to_string(),
            metrics::roc_auc(&rules, &y_test).map_err(err)?,
        ),
        (
            "rules_average_precision".to_string(),
            metrics::average_precision(&rules, &y_test).map_err(err)?,
        ),
        (
            "test_fraud_rate".to_string(),
            y_test.iter().filter(|&&y| y).count() as f64 / y_test.len().max(1) as f64,
        ),
    ]);
    let frauds = |y: &[bool]| y.iter().filter(|&&v| v).count();
    let evaluation = format!(
        "generated orders (saga-ai orders generator, seed {seed}, {customers} customers, {days} \
         days; amounts above 220 not labelled fraud, no compromised terminals); boosted trees \
         ({trees} trees of depth {depth}, learning rate {lr}) trained on days {warm}-{last_train} \
         ({n_train} orders, {f_train} fraud), metrics on days {test_start}-{last} ({n_test} \
         orders, {f_test} fraud) not trained on; rules_* is the seed's rule score on the same \
         orders, reading every feature it knows; {note}",
        seed = config.seed,
        customers = config.n_customers,
        days = config.nb_days,
        trees = params.n_trees,
        depth = params.max_depth,
        lr = params.learning_rate,
        warm = FRAUD_WARMUP_DAYS,
        last_train = test_start - 1,
        n_train = y_train.len(),
        f_train = frauds(&y_train),
        last = config.nb_days - 1,
        n_test = y_test.len(),
        f_test = frauds(&y_test),
        note = fraud_feature_note(slots),
    );
    Ok(SavedModel {
        meta: ModelMeta {
            kind: model.kind().to_string(),
            format_version: MODEL_FORMAT_VERSION,
            trained_at: Utc::now(),
            training_rows: y_train.len(),
            features: SET.names(),
            metrics,
            evaluation,
        },
        model,
    })
}

/// Trains the payment-success model with `saga-ai`'s own protocol on a small generated set:
/// 10 days, fitted on days 1-6, penalty and calibration chosen on days 7-8, metrics on days
/// 9-10.
pub(crate) fn train_payment() -> Result<SavedModel<PaymentModel>, AiAppError> {
    let config = PaymentEvalConfig {
        generator: PaymentGeneratorConfig {
            seed: PAYMENT_SEED,
            days: 10,
            attempts_per_day: 600,
            customers: 2_000,
            outages_per_method_per_day: 0.6,
            start: Utc
                .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        },
        window_minutes: 15,
        train_days: 6,
        valid_days: 2,
        ece_bins: 10,
    };
    let evaluation =
        evaluate_payment(&config, &mut |_| {}).map_err(|source| AiAppError::Training {
            model: "payment_success",
            source,
        })?;
    Ok(evaluation.saved)
}
