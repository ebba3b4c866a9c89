//! Evaluation by time: train on earlier days, leave a gap (fraud labels arrive late), test on
//! a later week, as the Fraud Detection Handbook does (chapter 3.3). Hyperparameters are chosen
//! on a validation split shifted back by `delay + test` days, never on the test split.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use super::features::{FeatureSet, FeatureState, Features};
use super::gbdt::{Gbdt, GbdtParams};
use super::generator::Dataset;
use super::model::{Estimator, FraudModel};
use super::rules::RuleScorer;
use super::scorer::FraudScorer;
use super::transaction::Transaction;
use crate::error::{AiError, Result};
use crate::metrics;

/// Days of a train / delay / test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    /// First training day (days since the data's start).
    pub train_start_day: i64,
    /// Training days.
    pub train_days: i64,
    /// Days between training and test (labels not yet known).
    pub delay_days: i64,
    /// Test days.
    pub test_days: i64,
}

impl Protocol {
    /// The handbook's: train 2018-07-25 to 07-31, delay a week, test 2018-08-08 to 08-14
    /// (day 115 from 2018-04-01).
    pub fn handbook() -> Self {
        Self {
            train_start_day: 115,
            train_days: 7,
            delay_days: 7,
            test_days: 7,
        }
    }

    /// Orders mode over 91 days: train two weeks from day 63, delay a week, test the last week.
    pub fn orders() -> Self {
        Self {
            train_start_day: 63,
            train_days: 14,
            delay_days: 7,
            test_days: 7,
        }
    }

    /// The validation split: the same shape, `delay + test` days earlier, so its test week is
    /// the final training week's first days and never touches the final test week.
    pub fn validation(&self) -> Self {
        Self {
            train_start_day: self.train_start_day - self.delay_days - self.test_days,
            ..*self
        }
    }

    /// First test day.
    pub fn test_start_day(&self) -> i64 {
        self.train_start_day + self.train_days + self.delay_days
    }

    /// The day after the last test day.
    pub fn end_day(&self) -> i64 {
        self.test_start_day() + self.test_days
    }
}

/// Row indices of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training transactions.
    pub train: Vec<usize>,
    /// Test transactions, without those of customers known to be compromised.
    pub test: Vec<usize>,
}

/// Splits time-ordered transactions by `protocol`. As in the handbook, a test day leaves out
/// the customers already known as defrauded: those with a fraud in training, or in the delay
/// period up to the day before the test day's delay-shifted counterpart (their card would be
/// blocked).
pub fn split_by_time(txs: &[Transaction], protocol: &Protocol) -> Split {
    let p = protocol;
    let train_end = p.train_start_day + p.train_days;
    let train: Vec<usize> = (0..txs.len())
        .filter(|&i| (p.train_start_day..train_end).contains(&txs[i].day()))
        .collect();
    let mut known: HashSet<u32> = train
        .iter()
        .filter(|&&i| txs[i].fraud)
        .map(|&i| txs[i].customer)
        .collect();
    let mut test = Vec::new();
    for k in 0..p.test_days {
        let delay_day = train_end + k - 1;
        known.extend(
            txs.iter()
                .filter(|t| t.day() == delay_day && t.fraud)
                .map(|t| t.customer),
        );
        let day = p.test_start_day() + k;
        test.extend(
            (0..txs.len()).filter(|&i| txs[i].day() == day && !known.contains(&txs[i].customer)),
        );
    }
    Split { train, test }
}

/// The models an evaluation compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// The seed's rule score (baseline, no training).
    Rules,
    /// Logistic regression (needs the `linfa` feature to fit).
    Logistic,
    /// Gradient-boosted trees.
    Gbdt,
}

impl ModelKind {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Rules => "rules (seed baseline)",
            ModelKind::Logistic => "logistic regression",
            ModelKind::Gbdt => "gradient boosting",
        }
    }
}

/// Progress of long work (the CLI shows a bar; `()` shows nothing).
pub trait Progress {
    /// A new stage of `total` steps begins.
    fn start(&mut self, stage: &str, total: u64);
    /// `n` more steps are done.
    fn advance(&mut self, n: u64);
}

impl Progress for () {
    fn start(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// One model's results on the test split.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResult {
    /// Which model.
    pub kind: ModelKind,
    /// The hyperparameters chosen on the validation split, in words.
    pub chosen: String,
    /// Area under the ROC curve.
    pub roc_auc: f64,
    /// Average precision (PR-AUC).
    pub average_precision: f64,
    /// Share of fraud among the 100 highest-scored test transactions of the whole test week.
    pub precision_at_100: f64,
    /// The handbook's card precision@100: per test day, customers ranked by their highest
    /// score, the share of defrauded customers among the top 100; mean over the days.
    pub card_precision_at_100_per_day: f64,
    /// Seconds to fit the final model (0 for rules).
    pub fit_seconds: f64,
    /// The fitted model (not for rules).
    pub model: Option<FraudModel>,
}

impl ModelResult {
    /// The metrics as a map (for [`crate::ModelMeta::metrics`]).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("roc_auc".to_string(), self.roc_auc),
            ("average_precision".to_string(), self.average_precision),
            ("precision_at_100".to_string(), self.precision_at_100),
            (
                "card_precision_at_100_per_day".to_string(),
                self.card_precision_at_100_per_day,
            ),
        ])
    }
}

/// What an evaluation found.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// The protocol.
    pub protocol: Protocol,
    /// Training rows and their fraud count.
    pub train_rows: (usize, usize),
    /// Test rows (after removing known compromised customers) and their fraud count.
    pub test_rows: (usize, usize),
    /// Per model.
    pub results: Vec<ModelResult>,
}

struct Rows {
    x: Vec<Vec<f64>>,
    y: Vec<bool>,
    day: Vec<i64>,
    customer: Vec<u32>,
}

fn rows(txs: &[Transaction], feats: &[Option<Features>], idx: &[usize]) -> Result<Rows> {
    let mut r = Rows {
        x: Vec::with_capacity(idx.len()),
        y: Vec::with_capacity(idx.len()),
        day: Vec::with_capacity(idx.len()),
        customer: Vec::with_capacity(idx.len()),
    };
    for &i in idx {
        let f = feats[i]
            .as_ref()
            .ok_or_else(|| AiError::InvalidInput(format!("no features for row {i}")))?;
        r.x.push(f.values.clone());
        r.y.push(txs[i].fraud);
        r.day.push(txs[i].day());
        r.customer.push(txs[i].customer);
    }
    Ok(r)
}

/// The handbook's card precision@k, averaged over days.
pub fn card_precision_at_k_per_day(
    scores: &[f64],
    labels: &[bool],
    days: &[i64],
    customers: &[u32],
    k: usize,
) -> Result<f64> {
    if scores.len() != labels.len() || scores.len() != days.len() || days.len() != customers.len() {
        return Err(AiError::InvalidInput("columns of unequal length".into()));
    }
    if k == 0 {
        return Err(AiError::InvalidInput("k must be at least 1".into()));
    }
    let mut by_day: BTreeMap<i64, BTreeMap<u32, (f64, bool)>> = BTreeMap::new();
    for i in 0..scores.len() {
        let e = by_day
            .entry(days[i])
            .or_default()
            .entry(customers[i])
            .or_insert((f64::NEG_INFINITY, false));
        e.0 = e.0.max(scores[i]);
        e.1 |= labels[i];
    }
    if by_day.is_empty() {
        return Err(AiError::NotEnoughData("no test rows".into()));
    }
    let mut total = 0.0;
    for cards in by_day.values() {
        let mut v: Vec<(f64, bool)> = cards.values().copied().collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        total += v.iter().take(k).filter(|c| c.1).count() as f64 / k as f64;
    }
    Ok(total / by_day.len() as f64)
}

fn score_all(model: &dyn FraudScorer, set: FeatureSet, x: &[Vec<f64>]) -> Result<Vec<f64>> {
    x.iter()
        .map(|v| {
            model.probability(&Features {
                set,
                values: v.clone(),
            })
        })
        .collect()
}

/// The hyperparameter grid for boosting: (depth, learning rate) pairs, each with its number
/// of trees chosen among prefixes of the ensemble.
fn gbdt_grid(seed: u64) -> Vec<GbdtParams> {
    [(3, 0.1), (4, 0.1), (6, 0.05)]
        .into_iter()
        .map(|(max_depth, learning_rate)| GbdtParams {
            n_trees: 300,
            max_depth,
            learning_rate,
            seed,
            ..GbdtParams::default()
        })
        .collect()
}

const TREE_PREFIXES: [usize; 4] = [50, 100, 200, 300];

#[cfg(feature = "linfa")]
const LOGISTIC_ALPHAS: [f64; 3] = [0.1, 10.0, 1000.0];

/// Evaluates `kinds` on `data` under `protocol`: features from the incremental store over the
/// whole history, hyperparameters chosen by average precision on the validation split, the
/// final model trained on the training split and measured on the test split.
pub fn evaluate(
    data: &Dataset,
    set: FeatureSet,
    protocol: &Protocol,
    kinds: &[ModelKind],
    progress: &mut dyn Progress,
) -> Result<EvalReport> {
    let txs = &data.transactions;
    let val = protocol.validation();
    if val.train_start_day < 0 || protocol.end_day() > i64::from(data.config.nb_days) {
        return Err(AiError::InvalidInput(format!(
            "protocol needs days {}..{}, the data has 0..{}",
            val.train_start_day,
            protocol.end_day(),
            data.config.nb_days
        )));
    }
    // Features for every row of both splits, from one pass of the feature store.
    let needed = val.train_start_day..protocol.end_day();
    let mut state = FeatureState::new(set, data.config.start_date);
    let mut feats: Vec<Option<Features>> = vec![None; txs.len()];
    progress.start("features", txs.len() as u64);
    for (i, tx) in txs.iter().enumerate() {
        if tx.day() >= protocol.end_day() {
            break;
        }
        if needed.contains(&tx.day()) {
            feats[i] = Some(state.features(tx)?);
        }
        state.observe(tx)?;
        if i % 10_000 == 0 {
            progress.advance(10_000);
        }
    }
    let val_split = split_by_time(txs, &val);
    let test_split = split_by_time(txs, protocol);
    let val_train = rows(txs, &feats, &val_split.train)?;
    let val_test = rows(txs, &feats, &val_split.test)?;
    let train = rows(txs, &feats, &test_split.train)?;
    let test = rows(txs, &feats, &test_split.test)?;
    drop(feats);

    let mut results = Vec::new();
    for &kind in kinds {
        let (model, chosen, fit_seconds): (Option<FraudModel>, String, f64) = match kind {
            ModelKind::Rules => (None, "fixed rules".into(), 0.0),
            ModelKind::Gbdt => {
                let (params, n_trees, val_ap) = choose_gbdt(&val_train, &val_test, set, progress)?;
                let started = Instant::now();
                let p = GbdtParams { n_trees, ..params };
                progress.start("fit boosting", p.n_trees as u64);
                let m = Gbdt::fit(&train.x, &train.y, &p, |_, _| progress.advance(1))?;
                let chosen = format!(
                    "depth {}, learning rate {}, {} trees (validation AP {:.3})",
                    p.max_depth, p.learning_rate, p.n_trees, val_ap
                );
                (
                    Some(FraudModel::new(set, Estimator::Gbdt(m))?),
                    chosen,
                    started.elapsed().as_secs_f64(),
                )
            }
            ModelKind::Logistic => fit_logistic(&val_train, &val_test, &train, set, progress)?,
        };
        let rules = RuleScorer::default();
        let scorer: &dyn FraudScorer = match &model {
            Some(m) => m,
            None => &rules,
        };
        let scores = score_all(scorer, set, &test.x)?;
        results.push(ModelResult {
            kind,
            chosen,
            roc_auc: metrics::roc_auc(&scores, &test.y)?,
            average_precision: metrics::average_precision(&scores, &test.y)?,
            precision_at_100: metrics::precision_at_k(&scores, &test.y, 100)?,
            card_precision_at_100_per_day: card_precision_at_k_per_day(
                &scores,
                &test.y,
                &test.day,
                &test.customer,
                100,
            )?,
            fit_seconds,
            model,
        });
    }
    let count = |r: &Rows| (r.y.len(), r.y.iter().filter(|&&y| y).count());
    Ok(EvalReport {
        protocol: *protocol,
        train_rows: count(&train),
        test_rows: count(&test),
        results,
    })
}

fn choose_gbdt(
    train: &Rows,
    test: &Rows,
    set: FeatureSet,
    progress: &mut dyn Progress,
) -> Result<(GbdtParams, usize, f64)> {
    let mut best: Option<(GbdtParams, usize, f64)> = None;
    for params in gbdt_grid(0) {
        progress.start(
            &format!("validate depth {}", params.max_depth),
            params.n_trees as u64,
        );
        let full = Gbdt::fit(&train.x, &train.y, &params, |_, _| progress.advance(1))?;
        for n in TREE_PREFIXES {
            let mut m = full.clone();
            m.truncate(n);
            let model = FraudModel::new(set, Estimator::Gbdt(m))?;
            let ap = metrics::average_precision(&score_all(&model, set, &test.x)?, &test.y)?;
            if best.as_ref().is_none_or(|b| ap > b.2) {
                best = Some((params.clone(), n, ap));
            }
        }
    }
    best.ok_or_else(|| AiError::NotEnoughData("empty hyperparameter grid".into()))
}

#[cfg(feature = "linfa")]
fn fit_logistic(
    val_train: &Rows,
    val_test: &Rows,
    train: &Rows,
    set: FeatureSet,
    progress: &mut dyn Progress,
) -> Result<(Option<FraudModel>, String, f64)> {
    use super::logistic::{Logistic, LogisticParams};
    progress.start("validate logistic", LOGISTIC_ALPHAS.len() as u64);
    let mut best: Option<(f64, f64)> = None;
    for alpha in LOGISTIC_ALPHAS {
        let p = LogisticParams {
            alpha,
            ..LogisticParams::default()
        };
        let m = FraudModel::new(
            set,
            Estimator::Logistic(Logistic::fit(&val_train.x, &val_train.y, &p)?),
        )?;
        let ap = metrics::average_precision(&score_all(&m, set, &val_test.x)?, &val_test.y)?;
        if best.is_none_or(|b| ap > b.1) {
            best = Some((alpha, ap));
        }
        progress.advance(1);
    }
    let (alpha, val_ap) = best.unwrap_or((1.0, f64::NAN));
    let started = Instant::now();
    let p = LogisticParams {
        alpha,
        ..LogisticParams::default()
    };
    let m = Logistic::fit(&train.x, &train.y, &p)?;
    Ok((
        Some(FraudModel::new(set, Estimator::Logistic(m))?),
        format!("alpha {alpha} (validation AP {val_ap:.3})"),
        started.elapsed().as_secs_f64(),
    ))
}

#[cfg(not(feature = "linfa"))]
fn fit_logistic(
    _: &Rows,
    _: &Rows,
    _: &Rows,
    _: FeatureSet,
    _: &mut dyn Progress,
) -> Result<(Option<FraudModel>, String, f64)> {
    Err(AiError::InvalidInput(
        "logistic regression needs the `linfa` feature".into(),
    ))
}
