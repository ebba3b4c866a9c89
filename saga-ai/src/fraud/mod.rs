//! Fraud scoring of orders: a labelled transaction generator, an incremental feature store,
//! models (gradient-boosted trees, logistic regression), a transparent rule baseline, an
//! evaluation by time, and a loader for the public credit-card-fraud CSV layout.
//!
//! Map of the module:
//!
//! | file | concept |
//! |------|---------|
//! | `generator.rs` | the simulator (customers, terminals, fraud scenarios, order fields) |
//! | `transaction.rs` | a transaction and its order fields |
//! | `features.rs` | [`FeatureState`]: features from history in time windows, one code path for training and scoring |
//! | `scorer.rs` | the [`FraudScorer`] trait, [`FraudScore`], [`Reason`], [`RiskLevel`] |
//! | `rules.rs` | [`RuleScorer`], the seed's rule score, as the baseline |
//! | `gbdt.rs` | a histogram gradient-boosting classifier with per-feature path contributions |
//! | `logistic.rs` | standardised logistic regression, fitted with `linfa-logistic` (feature `linfa`) |
//! | `model.rs` | [`FraudModel`]: a fitted model with its feature set, persisted as [`crate::SavedModel`] |
//! | `eval.rs` | the time-split protocol (train, delay, test) and its metrics |
//! | `creditcard.rs` | the credit-card-fraud CSV loader (Time, V1..V28, Amount, Class) |
//!
//! Training and scoring share [`FeatureState`]: history is fed with
//! [`FeatureState::observe`], a new order is turned into features with
//! [`FeatureState::features`], and any [`FraudScorer`] scores those.
//!
//! ```
//! use saga_ai::fraud::{FeatureState, FeatureSet, FraudScorer, RuleScorer, SimConfig, generate};
//!
//! let data = generate(&SimConfig::small(7)).unwrap();
//! let mut state = FeatureState::new(FeatureSet::Orders, data.config.start_date);
//! let rules = RuleScorer::default();
//! for tx in &data.transactions[..200] {
//!     let features = state.features(tx).unwrap();
//!     let score = rules.score(&features).unwrap();
//!     assert!((0.0..=1.0).contains(&score.probability));
//!     state.observe(tx).unwrap();
//! }
//! ```

pub mod creditcard;
pub mod eval;
pub mod features;
pub mod gbdt;
pub mod generator;
pub mod logistic;
pub mod model;
pub mod rules;
pub mod scorer;
pub mod transaction;

pub use creditcard::{CardRecord, load_creditcard_csv, parse_creditcard_csv};
pub use eval::{
    EvalReport, ModelKind, ModelResult, Progress, Protocol, Split, evaluate, split_by_time,
};
pub use features::{FeatureSet, FeatureState, Features};
pub use gbdt::{Gbdt, GbdtParams};
pub use generator::{Dataset, SimConfig, generate};
pub use logistic::{Logistic, LogisticParams};
pub use model::{Estimator, FraudModel, MODEL_FORMAT_VERSION};
pub use rules::RuleScorer;
pub use scorer::{FraudScore, FraudScorer, Reason, RiskLevel, RiskThresholds};
pub use transaction::{OrderInfo, PaymentMethod, Scenario, Transaction};
