//! The AI service's engine: fraud screening and payment-success prediction of orders, demand
//! forecasts, recommendations and saga anomalies, with the models of `saga-ai`. No HTTP and no
//! database here: the AI service keeps its tables (past orders, sales, stock, purchases, saga
//! events) and calls this.
//!
//! | file | what it holds |
//! |------|---------------|
//! | `facts.rs` | [`OrderFacts`], [`CustomerHistory`] (built from [`PastOrder`]s), [`address_key`] |
//! | `features.rs` | the feature rows: `saga-ai`'s orders set as the shop fills it, payment features |
//! | `training.rs` | training the file models from `saga-ai`'s seeded generators, held-out metrics |
//! | `engine.rs` | [`AiEngine`]: load or train, [`AiEngine::assess`], [`AiEngine::predict_payment`], [`AiEngine::models`] |
//! | `reasons.rs` | per-feature contributions summed into reasons in plain words |
//! | `assessment.rs` | [`Assessment`], [`RiskLevel`], [`decide`] and [`FraudDecision`] |
//! | [`demand`] | daily sales to a forecast with intervals, stock-out date and reorder quantity |
//! | [`recommendations`] | purchases to the order-aware recommender, with popularity for strangers |
//! | [`traces`] | the order saga's events to `saga-ai`'s saga traces; generated traces in the shop's words |
//! | [`anomalies`] | the saga anomaly detector in use (generated or the shop's own) and its findings |
//! | `error.rs` | [`AiAppError`] |
//!
//! The fraud model is `saga-ai`'s default, gradient-boosted trees (`fraud.gbdt`, no extra
//! feature needed) on `saga-ai`'s orders feature set, of which the shop fills the 13 features
//! it can compute from a customer's past orders (order counts over 1 hour to 30 days, the
//! amount relative to the customer's 30-day mean, account age, new or unusual shipping
//! address, number of lines, payment method) and holds the others at 0 (`features.rs` says
//! which and why: no absolute amounts, since the generator's prices are not the shop's). The
//! payment model is `saga-ai`'s calibrated logistic regression. Both are `saga_ai::SavedModel`
//! JSON files in the model folder; when one is missing, [`AiEngine::load_or_train`] trains it
//! from generated data in a few seconds and logs its metrics on data it did not train on. A
//! model file that exists but cannot be used is an error ([`AiAppError::Model`]), not a silent
//! retrain: delete it to retrain.
//!
//! What scores high: an account that orders more than its habit, to an address other than its
//! usual one, for more than its usual amount (the generator's account takeovers and stolen
//! cards). A first order scores low to medium whatever its amount; an order that cannot be
//! scored (an unknown payment method) fails closed with [`AiEngine::assess`].
//!
//! ```no_run
//! use reference_app::ai::{AiEngine, CustomerHistory, OrderFacts, PastOrder, decide};
//! # async fn demo(order: OrderFacts, past: Vec<PastOrder>) -> Result<(), reference_app::ai::AiAppError> {
//! let engine = AiEngine::load_or_train("data/ai".as_ref(), |m| eprintln!("{m}")).await?;
//! // `past`: the customer's earlier orders, from the AI service's own table
//! let history = CustomerHistory::before(&order, &past);
//! let assessment = engine.assess(&order, &history);
//! let decision = decide(&assessment, 0.8);
//! # Ok(()) }
//! ```

pub mod anomalies;
mod assessment;
pub mod demand;
mod engine;
mod error;
mod facts;
mod features;
mod reasons;
pub mod recommendations;
pub mod traces;
mod training;

pub use assessment::{Assessment, FraudDecision, RiskLevel, decide};
pub use engine::{
    ANOMALY_MODEL_FILE, AiEngine, FRAUD_MODEL_FILE, ModelInfo, PAYMENT_MODEL_FILE,
    PaymentPrediction,
};
pub use error::AiAppError;
pub use facts::{AddressUse, CustomerHistory, OrderFacts, OrderOutcome, PastOrder, address_key};
