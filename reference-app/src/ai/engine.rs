//! [`AiEngine`]: the fraud and payment-success models, loaded from their files or trained from
//! generated data on first start, and the pure scoring of one order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use saga_ai::fraud::{Estimator, FraudModel};
use saga_ai::payment::{
    PAYMENT_FORMAT, PAYMENT_KIND, PaymentFeatures, PaymentModel, PaymentSuccessPredictor,
};
use saga_ai::payment_method::PaymentMethod;
use saga_ai::{AiError, ModelMeta, SavedModel};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::assessment::{Assessment, RiskLevel};
use super::error::AiAppError;
use super::facts::{CustomerHistory, OrderFacts};
use super::features::{SET, Slots, payment_features, shop_values};
use super::reasons::reasons;
use super::training::{train_fraud, train_payment};

/// The fraud model's file in the model folder.
pub const FRAUD_MODEL_FILE: &str = "fraud-model.json";
/// The payment-success model's file in the model folder.
pub const PAYMENT_MODEL_FILE: &str = "payment-model.json";

/// A model the engine uses, for a `/models` route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// What it predicts: `fraud` or `payment_success`.
    pub name: String,
    /// Its kind (`fraud.gbdt`, `payment.logistic_calibrated`).
    pub kind: String,
    /// Format version of its file.
    pub format_version: u32,
    /// When it was trained.
    pub trained_at: DateTime<Utc>,
    /// Rows it was trained on.
    pub training_rows: usize,
    /// Metrics on held-out data (`roc_auc`, `average_precision`, `log_loss`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// How the metrics were obtained, in a sentence.
    pub evaluation: String,
    /// The file it was loaded from or saved to.
    pub file: PathBuf,
}

impl ModelInfo {
    fn new(name: &str, meta: &ModelMeta, file: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            kind: meta.kind.clone(),
            format_version: meta.format_version,
            trained_at: meta.trained_at,
            training_rows: meta.training_rows,
            metrics: meta.metrics.clone(),
            evaluation: meta.evaluation.clone(),
            file,
        }
    }
}

/// The AI service's engine: scores orders for fraud and payment success. Cheap to share
/// (`Arc<AiEngine>`); scoring takes `&self` and does no I/O.
#[derive(Debug, Clone)]
pub struct AiEngine {
    slots: Slots,
    fraud: FraudModel,
    payment: PaymentModel,
    infos: [ModelInfo; 2],
    label: String,
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AiAppError> + Send + 'static,
) -> Result<T, AiAppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AiAppError::Task(e.to_string()))?
}

/// Whether `path` exists; failing to tell (permissions, a file where a folder should be) is an
/// I/O error.
fn exists(path: &Path) -> Result<bool, AiAppError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(AiAppError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn model_error(path: &Path, source: AiError) -> AiAppError {
    AiAppError::Model {
        path: path.to_path_buf(),
        source,
    }
}

/// A feature row every model must score, to find unusable parameters at load time.
fn probe_fraud(model: &FraudModel) -> Result<(), AiError> {
    if model.set != SET {
        return Err(AiError::IncompatibleModel(format!(
            "the engine fills the {SET:?} feature set, the model reads {:?}",
            model.set
        )));
    }
    contributions(model, &vec![0.0; SET.len()]).map(drop)
}

fn probe_payment(model: &PaymentModel) -> Result<(), AiError> {
    model
        .success_probability(&PaymentFeatures {
            method: PaymentMethod::Card,
            amount: 50.0,
            account_age_days: 0.0,
            past_successes: 0,
            past_failures: 0,
            gateway_attempts: 0,
            gateway_failures: 0,
        })
        .map(drop)
}

fn load_fraud(path: &Path) -> Result<Option<SavedModel<FraudModel>>, AiAppError> {
    if !exists(path)? {
        return Ok(None);
    }
    let saved = FraudModel::load(path).map_err(|e| model_error(path, e))?;
    probe_fraud(&saved.model).map_err(|e| model_error(path, e))?;
    Ok(Some(saved))
}

fn load_payment(path: &Path) -> Result<Option<SavedModel<PaymentModel>>, AiAppError> {
    if !exists(path)? {
        return Ok(None);
    }
    let saved = SavedModel::<PaymentModel>::load(path, PAYMENT_KIND, PAYMENT_FORMAT)
        .map_err(|e| model_error(path, e))?;
    probe_payment(&saved.model).map_err(|e| model_error(path, e))?;
    Ok(Some(saved))
}

/// Writes through a temporary file and a rename, so a crash never leaves half a model.
fn save<M: Serialize + DeserializeOwned>(
    saved: &SavedModel<M>,
    path: &Path,
) -> Result<(), AiAppError> {
    let tmp = path.with_extension("json.tmp");
    saved.save(&tmp).map_err(|e| model_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|source| AiAppError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn metric(meta: &ModelMeta, name: &str) -> String {
    meta.metrics
        .get(name)
        .map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// The loaded model, or one trained from generated data and saved to `path`, with a log line
/// either way.
async fn obtain<M>(
    name: &str,
    path: &Path,
    loaded: Option<SavedModel<M>>,
    train: impl FnOnce() -> Result<SavedModel<M>, AiAppError> + Send + 'static,
    held_out: impl Fn(&ModelMeta) -> String,
    log: &impl Fn(&str),
) -> Result<SavedModel<M>, AiAppError>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    if let Some(saved) = loaded {
        log(&format!(
            "loaded {name} model {} (trained {}) from {}",
            saved.meta.kind,
            saved
                .meta
                .trained_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            path.display()
        ));
        return Ok(saved);
    }
    log(&format!(
        "no {name} model at {}: training one from generated data",
        path.display()
    ));
    let target = path.to_path_buf();
    let saved = blocking(move || {
        let saved = train()?;
        save(&saved, &target)?;
        Ok(saved)
    })
    .await?;
    log(&format!(
        "trained {name} model {} from generated data ({} rows); {}; saved to {}",
        saved.meta.kind,
        saved.meta.training_rows,
        held_out(&saved.meta),
        path.display()
    ));
    Ok(saved)
}

fn contributions(model: &FraudModel, row: &[f64]) -> Result<(f64, Vec<f64>), AiError> {
    match &model.estimator {
        Estimator::Gbdt(m) => m.contributions(row),
        Estimator::Logistic(m) => m.contributions(row),
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl AiEngine {
    /// Loads the fraud model from `dir/`[`FRAUD_MODEL_FILE`] and the payment-success model
    /// from `dir/`[`PAYMENT_MODEL_FILE`]. A file that is absent is trained from `saga-ai`'s
    /// generated data (seeded: the same parameters every time; a few seconds), written to
    /// `dir`, and `log` says so with its metrics on data it did not train on. A file that is
    /// present but unusable is an [`AiAppError::Model`], found before anything is trained; it
    /// is never overwritten, so an operator's model is not silently replaced. Files are read
    /// and models trained on tokio's blocking pool.
    pub async fn load_or_train(dir: &Path, log: impl Fn(&str)) -> Result<AiEngine, AiAppError> {
        let slots = Slots::new()?;
        let fraud_path = dir.join(FRAUD_MODEL_FILE);
        let payment_path = dir.join(PAYMENT_MODEL_FILE);
        let (fraud, payment) = {
            let (f, p) = (fraud_path.clone(), payment_path.clone());
            blocking(move || Ok((load_fraud(&f)?, load_payment(&p)?))).await?
        };
        let fraud = obtain(
            "fraud",
            &fraud_path,
            fraud,
            move || train_fraud(&slots),
            |meta| {
                format!(
                    "on the last week of generated orders, which it did not train on: ROC-AUC \
                     {}, average precision {} (the seed's rules on the same orders: ROC-AUC {}, \
                     average precision {})",
                    metric(meta, "roc_auc"),
                    metric(meta, "average_precision"),
                    metric(meta, "rules_roc_auc"),
                    metric(meta, "rules_average_precision"),
                )
            },
            &log,
        )
        .await?;
        let payment = obtain(
            "payment-success",
            &payment_path,
            payment,
            train_payment,
            |meta| {
                format!(
                    "on the last two days of generated attempts, which it did not train on: \
                     ROC-AUC {}, log-loss {}, calibration error {}",
                    metric(meta, "roc_auc"),
                    metric(meta, "log_loss"),
                    metric(meta, "ece"),
                )
            },
            &log,
        )
        .await?;
        Ok(Self::from_models(
            slots,
            fraud,
            fraud_path,
            payment,
            payment_path,
        ))
    }

    fn from_models(
        slots: Slots,
        fraud: SavedModel<FraudModel>,
        fraud_path: PathBuf,
        payment: SavedModel<PaymentModel>,
        payment_path: PathBuf,
    ) -> Self {
        let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let label = format!(
            "{} v{} trained {}; {} v{} trained {}",
            fraud.meta.kind,
            fraud.meta.format_version,
            stamp(fraud.meta.trained_at),
            payment.meta.kind,
            payment.meta.format_version,
            stamp(payment.meta.trained_at)
        );
        Self {
            slots,
            infos: [
                ModelInfo::new("fraud", &fraud.meta, fraud_path),
                ModelInfo::new("payment_success", &payment.meta, payment_path),
            ],
            fraud: fraud.model,
            payment: payment.model,
            label,
        }
    }

    /// Scores `order` given the customer's `history`: fraud score with its level and reasons,
    /// and the probability that the charge succeeds. Pure and fast (no I/O; microseconds).
    ///
    /// Fails on an order the order service would not accept (an unknown payment method:
    /// [`AiAppError::InvalidInput`]); [`AiAppError::Scoring`] would be a bug, the models having
    /// been probed when loaded.
    pub fn try_assess(
        &self,
        order: &OrderFacts,
        history: &CustomerHistory,
    ) -> Result<Assessment, AiAppError> {
        let values = shop_values(order, history)?;
        let row = self.slots.row(&values);
        let (bias, contrib) = contributions(&self.fraud, &row).map_err(AiAppError::Scoring)?;
        let fraud_score = sigmoid(bias + contrib.iter().sum::<f64>()).clamp(0.0, 1.0);
        let payment_success_probability = self
            .payment
            .success_probability(&payment_features(order, history)?)
            .map_err(AiAppError::Scoring)?
            .clamp(0.0, 1.0);
        Ok(Assessment {
            fraud_score,
            risk_level: RiskLevel::of(fraud_score),
            reasons: reasons(&self.slots, &contrib, order, history, &values),
            payment_success_probability,
            model: self.label.clone(),
        })
    }

    /// [`try_assess`](Self::try_assess), failing closed: an order that cannot be scored gets
    /// fraud score 1 (critical), payment-success probability 0, and the error as its reason,
    /// so fraud screening rejects it and says why. Never panics.
    pub fn assess(&self, order: &OrderFacts, history: &CustomerHistory) -> Assessment {
        self.try_assess(order, history)
            .unwrap_or_else(|e| Assessment {
                fraud_score: 1.0,
                risk_level: RiskLevel::Critical,
                reasons: vec![e.to_string()],
                payment_success_probability: 0.0,
                model: self.label.clone(),
            })
    }

    /// The models in use, with their held-out metrics.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.infos.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use saga_ai::fraud::{FeatureSet, Gbdt, GbdtParams};
    use saga_ai::payment::{PaymentGeneratorConfig, PaymentHistory, generate_payments};
    use uuid::Uuid;

    use super::*;
    use crate::ai::assessment::{FraudDecision, decide};
    use crate::api::Money;
    use crate::api::order::Address;

    fn meta(kind: &str, format_version: u32, features: Vec<String>) -> ModelMeta {
        ModelMeta {
            kind: kind.into(),
            format_version,
            trained_at: Utc::now(),
            training_rows: 0,
            features,
            metrics: BTreeMap::new(),
            evaluation: "unit test".into(),
        }
    }

    /// A small tree model on `n` features: fraud when feature 0 is large.
    fn gbdt(n: usize) -> Gbdt {
        let x: Vec<Vec<f64>> = (0..200)
            .map(|i| {
                let mut row = vec![0.0; n];
                row[0] = f64::from(i % 10);
                row
            })
            .collect();
        let y: Vec<bool> = x.iter().map(|r| r[0] > 7.0).collect();
        let params = GbdtParams {
            n_trees: 3,
            ..GbdtParams::default()
        };
        Gbdt::fit(&x, &y, &params, |_, _| {}).unwrap()
    }

    fn payment_model() -> SavedModel<PaymentModel> {
        let data = generate_payments(&PaymentGeneratorConfig {
            days: 2,
            attempts_per_day: 300,
            customers: 200,
            ..PaymentGeneratorConfig::default()
        })
        .unwrap();
        let rows = PaymentHistory::new(15).unwrap().replay(&data).unwrap();
        let (train, valid) = rows.split_at(rows.len() * 3 / 4);
        SavedModel {
            meta: meta(PAYMENT_KIND, PAYMENT_FORMAT, vec![]),
            model: PaymentModel::fit(train, valid).unwrap(),
        }
    }

    fn engine() -> AiEngine {
        let model = FraudModel::new(SET, Estimator::Gbdt(gbdt(SET.len()))).unwrap();
        let fraud = SavedModel {
            meta: meta("fraud.gbdt", 1, SET.names()),
            model,
        };
        AiEngine::from_models(
            Slots::new().unwrap(),
            fraud,
            "fraud.json".into(),
            payment_model(),
            "payment.json".into(),
        )
    }

    fn order(method: &str) -> OrderFacts {
        OrderFacts {
            order_id: Uuid::from_u128(1),
            customer_id: Uuid::from_u128(2),
            items: vec![],
            total: Money::from_cents(4_200),
            shipping_address: Address {
                street: "1 Elm St".into(),
                city: "Springfield".into(),
                state: "IL".into(),
                zip: "62701".into(),
            },
            payment_method: method.into(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn an_order_that_cannot_be_scored_fails_closed_with_its_reason() {
        let engine = engine();
        let history = CustomerHistory::default();
        let ok = engine.assess(&order("paypal"), &history);
        assert!(ok.fraud_score < 1.0 && ok.payment_success_probability > 0.0);
        let bad = order("gold_bars");
        assert!(matches!(
            engine.try_assess(&bad, &history),
            Err(AiAppError::InvalidInput(_))
        ));
        let a = engine.assess(&bad, &history);
        assert_eq!((a.fraud_score, a.risk_level), (1.0, RiskLevel::Critical));
        assert_eq!(a.payment_success_probability, 0.0);
        assert!(a.reasons[0].contains("unknown payment method"), "{a:?}");
        let FraudDecision::Reject { reason } = decide(&a, 0.8) else {
            panic!("an unscorable order passed");
        };
        assert!(reason.contains("gold_bars"), "{reason}");
    }

    #[test]
    fn models_report_their_metadata() {
        let models = engine().models();
        let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["fraud", "payment_success"]);
        assert_eq!(models[0].kind, "fraud.gbdt");
        assert_eq!(models[1].kind, PAYMENT_KIND);
        assert_eq!(models[0].file, PathBuf::from("fraud.json"));
    }

    #[test]
    fn fraud_models_that_do_not_fit_the_features_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        // A valid saga-ai model of the handbook set, and one whose trees read too few features.
        let handbook = FraudModel::new(
            FeatureSet::Handbook,
            Estimator::Gbdt(gbdt(FeatureSet::Handbook.len())),
        )
        .unwrap();
        let short = FraudModel {
            set: SET,
            ..handbook.clone()
        };
        for (name, model, names) in [
            ("handbook.json", handbook, FeatureSet::Handbook.names()),
            ("short.json", short, SET.names()),
        ] {
            let path = dir.path().join(name);
            SavedModel {
                meta: meta("fraud.gbdt", 1, names),
                model,
            }
            .save(&path)
            .unwrap();
            let err = load_fraud(&path).unwrap_err();
            assert!(matches!(err, AiAppError::Model { .. }), "{name}: {err:?}");
        }
        assert!(
            load_fraud(&dir.path().join("absent.json"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_saved_model_is_written_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(PAYMENT_MODEL_FILE);
        let saved = payment_model();
        save(&saved, &path).unwrap();
        assert!(!path.with_extension("json.tmp").exists());
        let back = load_payment(&path).unwrap().unwrap();
        assert_eq!(back.model, saved.model);
        assert_eq!(back.meta, saved.meta);
    }
}
