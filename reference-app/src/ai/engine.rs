//! [`AiEngine`]: the fraud, payment-success and saga-anomaly models, loaded from their files or
//! trained from generated data on first start, and the pure scoring of one order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use saga_ai::anomaly::{ANOMALY_FORMAT, ANOMALY_KIND, SagaAnomalyDetector, SagaDetector};
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
use super::traces::{RecordedEvent, trace_of};
use super::training::{train_anomaly, train_fraud, train_payment};

/// The fraud model's file in the model folder.
pub const FRAUD_MODEL_FILE: &str = "fraud-model.json";
/// The payment-success model's file in the model folder.
pub const PAYMENT_MODEL_FILE: &str = "payment-model.json";
/// The saga anomaly detector's file in the model folder.
pub const ANOMALY_MODEL_FILE: &str = "anomaly-model.json";

/// A model the AI service uses, as `GET /models` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// What it predicts: `fraud`, `payment_success`, `saga_anomaly`, `recommendations`,
    /// `demand_forecast`.
    pub name: String,
    /// Its kind (`fraud.gbdt`, `payment.logistic_calibrated`, `anomaly.saga`, ...).
    pub kind: String,
    /// Format version of its file (none for a model fitted in memory).
    #[schema(required = true)]
    pub format_version: Option<u32>,
    /// When it was trained (none for a model fitted anew on every request).
    #[schema(required = true)]
    pub trained_at: Option<DateTime<Utc>>,
    /// Rows (orders, attempts, sagas, purchases) it was trained on.
    pub training_rows: usize,
    /// What it was trained on, in a sentence.
    pub training_data: String,
    /// Metrics on held-out data (`roc_auc`, `average_precision`, `hit_rate_at_10`, ...); empty
    /// when none could be measured, and `evaluation` says why.
    pub metrics: BTreeMap<String, f64>,
    /// How the metrics were obtained, in a sentence.
    pub evaluation: String,
    /// The file it was loaded from or saved to (none for a model fitted in memory).
    #[schema(required = true, value_type = Option<String>)]
    pub file: Option<PathBuf>,
}

impl ModelInfo {
    /// The information of a model saved with `meta` in `file` (`None`: fitted in memory),
    /// trained on `training_data`.
    pub fn new(name: &str, meta: &ModelMeta, training_data: &str, file: Option<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            kind: meta.kind.clone(),
            format_version: file.is_some().then_some(meta.format_version),
            trained_at: Some(meta.trained_at),
            training_rows: meta.training_rows,
            training_data: training_data.to_string(),
            metrics: meta.metrics.clone(),
            evaluation: meta.evaluation.clone(),
            file,
        }
    }
}

/// What each file model was trained on.
const FRAUD_DATA: &str = "orders from saga-ai's seeded orders generator (compromised cards, \
     account takeovers, fresh accounts shipping to drop addresses)";
const PAYMENT_DATA: &str = "payment attempts from saga-ai's seeded generator (methods, amounts, \
     customer histories, gateway outages)";
const ANOMALY_DATA: &str = "order-saga traces from saga-ai's seeded trace generator, in the \
     shop's event names";

/// A payment-success prediction with what it read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentPrediction {
    /// Estimated probability that the charge succeeds, in `[0, 1]`.
    pub probability: f64,
    /// The features the model scored.
    pub features: PaymentFeatures,
}

/// The AI service's engine: scores orders for fraud and payment success. Cheap to share
/// (`Arc<AiEngine>`); scoring takes `&self` and does no I/O.
#[derive(Debug, Clone)]
pub struct AiEngine {
    slots: Slots,
    fraud: FraudModel,
    payment: PaymentModel,
    anomaly: SagaDetector,
    infos: [ModelInfo; 3],
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

/// A detector must score a plain saga of the shop.
fn probe_anomaly(detector: &SagaDetector) -> Result<(), AiError> {
    let at = DateTime::<Utc>::UNIX_EPOCH;
    let recorded = [
        crate::order_saga::events::ORDER_PLACED,
        crate::order_saga::events::FRAUD_CHECK_REQUESTED,
    ]
    .map(|t| RecordedEvent {
        event_type: t.to_string(),
        at,
    });
    match trace_of("probe", &recorded, at) {
        Some(trace) => detector.score_all(&[trace]).map(drop),
        None => Err(AiError::InvalidInput("the probe saga has no trace".into())),
    }
}

fn load_anomaly(path: &Path) -> Result<Option<SavedModel<SagaDetector>>, AiAppError> {
    if !exists(path)? {
        return Ok(None);
    }
    let saved = SavedModel::<SagaDetector>::load(path, ANOMALY_KIND, ANOMALY_FORMAT)
        .map_err(|e| model_error(path, e))?;
    probe_anomaly(&saved.model).map_err(|e| model_error(path, e))?;
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

/// Where [`obtain`] starts from.
enum Start<M> {
    /// The model as read from its file, if there was one.
    Loaded(Option<SavedModel<M>>),
    /// Train anew whatever the file holds (`reference-app ai train`).
    Retrain,
}

/// The loaded model, or one trained from generated data and saved to `path`, with a log line
/// either way.
async fn obtain<M>(
    name: &str,
    path: &Path,
    start: Start<M>,
    train: impl FnOnce() -> Result<SavedModel<M>, AiAppError> + Send + 'static,
    held_out: impl Fn(&ModelMeta) -> String,
    log: &impl Fn(&str),
) -> Result<SavedModel<M>, AiAppError>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    if let Start::Loaded(Some(saved)) = start {
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
    if matches!(start, Start::Loaded(None)) {
        log(&format!(
            "no {name} model at {}: training one from generated data",
            path.display()
        ));
    } else {
        log(&format!("training the {name} model from generated data"));
    }
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

/// The held-out sentence of each file model's log line.
fn fraud_held_out(meta: &ModelMeta) -> String {
    format!(
        "on the last week of generated orders, which it did not train on: ROC-AUC {}, average \
         precision {} (the seed's rules on the same orders: ROC-AUC {}, average precision {})",
        metric(meta, "roc_auc"),
        metric(meta, "average_precision"),
        metric(meta, "rules_roc_auc"),
        metric(meta, "rules_average_precision"),
    )
}

fn payment_held_out(meta: &ModelMeta) -> String {
    format!(
        "on the last two days of generated attempts, which it did not train on: ROC-AUC {}, \
         log-loss {}, calibration error {}",
        metric(meta, "roc_auc"),
        metric(meta, "log_loss"),
        metric(meta, "ece"),
    )
}

fn anomaly_held_out(meta: &ModelMeta) -> String {
    format!(
        "on a later generated period with injected anomalies, which it did not train on: \
         average precision {}, precision {} and recall {} above its normal limit",
        metric(meta, "average_precision"),
        metric(meta, "precision_at_limit"),
        metric(meta, "recall_at_limit"),
    )
}

/// The three model files of `dir`.
struct Files {
    fraud: PathBuf,
    payment: PathBuf,
    anomaly: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Self {
        Self {
            fraud: dir.join(FRAUD_MODEL_FILE),
            payment: dir.join(PAYMENT_MODEL_FILE),
            anomaly: dir.join(ANOMALY_MODEL_FILE),
        }
    }
}

impl AiEngine {
    /// Loads the fraud model from `dir/`[`FRAUD_MODEL_FILE`], the payment-success model from
    /// `dir/`[`PAYMENT_MODEL_FILE`] and the saga anomaly detector from
    /// `dir/`[`ANOMALY_MODEL_FILE`]. A file that is absent is trained from `saga-ai`'s
    /// generated data (seeded: the same parameters every time; a few seconds), written to
    /// `dir`, and `log` says so with its metrics on data it did not train on. A file that is
    /// present but unusable is an [`AiAppError::Model`], found before anything is trained; it
    /// is never overwritten, so an operator's model is not silently replaced. Files are read
    /// and models trained on tokio's blocking pool.
    pub async fn load_or_train(dir: &Path, log: impl Fn(&str)) -> Result<AiEngine, AiAppError> {
        let files = Files::in_dir(dir);
        let (fraud, payment, anomaly) = {
            let (f, p, a) = (
                files.fraud.clone(),
                files.payment.clone(),
                files.anomaly.clone(),
            );
            blocking(move || Ok((load_fraud(&f)?, load_payment(&p)?, load_anomaly(&a)?))).await?
        };
        let starts = (
            Start::Loaded(fraud),
            Start::Loaded(payment),
            Start::Loaded(anomaly),
        );
        Self::obtain_all(files, starts, &log).await
    }

    /// Trains every file model from generated data and writes it to `dir` (replacing what is
    /// there: this is `reference-app ai train`), on tokio's blocking pool; `log` gets a line
    /// per model with its held-out metrics. Returns what was written.
    pub async fn train_files(dir: &Path, log: impl Fn(&str)) -> Result<Vec<ModelInfo>, AiAppError> {
        let starts = (Start::Retrain, Start::Retrain, Start::Retrain);
        Ok(Self::obtain_all(Files::in_dir(dir), starts, &log)
            .await?
            .models())
    }

    /// The engine of the three models, each loaded or trained as its start says.
    async fn obtain_all(
        files: Files,
        (fraud, payment, anomaly): (Start<FraudModel>, Start<PaymentModel>, Start<SagaDetector>),
        log: &impl Fn(&str),
    ) -> Result<AiEngine, AiAppError> {
        let slots = Slots::new()?;
        let fraud = obtain(
            "fraud",
            &files.fraud,
            fraud,
            move || train_fraud(&slots),
            fraud_held_out,
            log,
        )
        .await?;
        let payment = obtain(
            "payment-success",
            &files.payment,
            payment,
            train_payment,
            payment_held_out,
            log,
        )
        .await?;
        let anomaly = obtain(
            "saga anomaly",
            &files.anomaly,
            anomaly,
            train_anomaly,
            anomaly_held_out,
            log,
        )
        .await?;
        Ok(Self::from_models(slots, fraud, payment, anomaly, files))
    }

    fn from_models(
        slots: Slots,
        fraud: SavedModel<FraudModel>,
        payment: SavedModel<PaymentModel>,
        anomaly: SavedModel<SagaDetector>,
        files: Files,
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
                ModelInfo::new("fraud", &fraud.meta, FRAUD_DATA, Some(files.fraud)),
                ModelInfo::new(
                    "payment_success",
                    &payment.meta,
                    PAYMENT_DATA,
                    Some(files.payment),
                ),
                ModelInfo::new(
                    "saga_anomaly",
                    &anomaly.meta,
                    ANOMALY_DATA,
                    Some(files.anomaly),
                ),
            ],
            fraud: fraud.model,
            payment: payment.model,
            anomaly: anomaly.model,
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

    /// The probability that a charge of `order` succeeds given the customer's `history`, with
    /// the features the payment model read. Fails on an unknown payment method
    /// ([`AiAppError::InvalidInput`]).
    pub fn predict_payment(
        &self,
        order: &OrderFacts,
        history: &CustomerHistory,
    ) -> Result<PaymentPrediction, AiAppError> {
        let features = payment_features(order, history)?;
        let probability = self
            .payment
            .success_probability(&features)
            .map_err(AiAppError::Scoring)?
            .clamp(0.0, 1.0);
        Ok(PaymentPrediction {
            probability,
            features,
        })
    }

    /// The saga anomaly detector loaded from its file (trained on generated sagas).
    pub fn anomaly_detector(&self) -> &SagaDetector {
        &self.anomaly
    }

    /// The file models in use (fraud, payment success, saga anomalies), with their held-out
    /// metrics.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.infos.to_vec()
    }

    /// The file model named `name` (`fraud`, `payment_success`, `saga_anomaly`).
    pub fn model(&self, name: &str) -> Option<&ModelInfo> {
        self.infos.iter().find(|m| m.name == name)
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

    /// A detector of generated normal sagas in the shop's words.
    fn anomaly_model() -> SavedModel<SagaDetector> {
        use saga_ai::anomaly::{DetectorConfig, TraceGeneratorConfig, generate_traces};
        let normal = generate_traces(&TraceGeneratorConfig {
            minutes: 10,
            anomaly_rate: 0.0,
            storms: 0,
            ..TraceGeneratorConfig::default()
        })
        .unwrap();
        let traces: Vec<_> = normal
            .traces
            .iter()
            .map(|t| crate::ai::traces::in_shop_words(&t.trace))
            .collect();
        SavedModel {
            meta: meta(ANOMALY_KIND, ANOMALY_FORMAT, vec![]),
            model: SagaDetector::fit(&traces, &DetectorConfig::default()).unwrap(),
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
            payment_model(),
            anomaly_model(),
            Files::in_dir(Path::new("models")),
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
        assert_eq!(names, ["fraud", "payment_success", "saga_anomaly"]);
        assert_eq!(models[0].kind, "fraud.gbdt");
        assert_eq!(models[1].kind, PAYMENT_KIND);
        assert_eq!(models[2].kind, ANOMALY_KIND);
        assert_eq!(
            models[0].file.as_deref(),
            Some(Path::new("models").join(FRAUD_MODEL_FILE).as_path())
        );
        assert!(models.iter().all(|m| m.format_version.is_some()));
    }

    #[test]
    fn payment_predictions_read_the_customer_history() {
        let engine = engine();
        let o = order("credit_card");
        let new = engine
            .predict_payment(&o, &CustomerHistory::default())
            .unwrap();
        assert!((0.0..=1.0).contains(&new.probability));
        assert_eq!(new.features.amount, 42.0);
        let declined = CustomerHistory {
            failed_payments: 6,
            orders_total: 6,
            first_order_at: Some(o.created_at - chrono::TimeDelta::days(3)),
            ..CustomerHistory::default()
        };
        let risky = engine.predict_payment(&o, &declined).unwrap();
        assert_eq!(risky.features.past_failures, 6);
        assert!(risky.probability < new.probability, "{risky:?} vs {new:?}");
        assert!(matches!(
            engine.predict_payment(&order("gold_bars"), &CustomerHistory::default()),
            Err(AiAppError::InvalidInput(_))
        ));
    }

    #[test]
    fn anomaly_detectors_must_score_the_shops_sagas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ANOMALY_MODEL_FILE);
        let saved = anomaly_model();
        save(&saved, &path).unwrap();
        let back = load_anomaly(&path).unwrap().unwrap();
        assert_eq!(back.model, saved.model);
        std::fs::write(&path, b"{\"meta\": 1}").unwrap();
        assert!(matches!(
            load_anomaly(&path).unwrap_err(),
            AiAppError::Model { .. }
        ));
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
