//! What the assistant needs from the application: the [`Tools`] trait and the data it returns.
//!
//! The application implements [`Tools`] over its live data (orders, analytics, inventory,
//! forecasts, recommendations, the anomaly detector, dead-letter stores); the assistant never
//! reads anything else. Dead letters are the toolkit's own [`DeadLetter`]s and anomalies the
//! [`AnomalyReport`]s of [`crate::anomaly`], so an application built on them passes them as
//! they are.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use saga_core::dead_letter::DeadLetter;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ids::IdRef;
use super::period::Period;
use super::product::Product;
use crate::anomaly::AnomalyReport;
use crate::forecast::stockout::StockoutRisk;

/// A tool that could not answer. The assistant says so in its reply (and sets
/// [`Reply::error`](super::Reply::error)); it never invents the missing data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The service or store behind the tool could not be reached or failed. Retry later.
    #[error("{0} is unavailable")]
    Unavailable(String),
    /// The tool cannot answer this request (no forecast for a product without history, an
    /// action the application does not allow).
    #[error("{0}")]
    Refused(String),
}

/// The answer to a lookup by an id that may be a prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "lookup", content = "value")]
pub enum Lookup<T> {
    /// Exactly one match.
    Found(T),
    /// Nothing matches.
    NotFound,
    /// Several match (a short prefix): some of their ids, for the user to choose.
    Ambiguous(Vec<Uuid>),
}

/// How an order ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its saga is still running.
    InProgress,
    /// Its saga completed.
    Succeeded,
    /// It was rejected or undone.
    Failed,
}

/// Why an order failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The saga step that failed (`reserve_inventory`, `charge_payment`), if known.
    pub step: Option<String>,
    /// The reason as recorded (`insufficient stock for p-1`, `card declined`).
    pub reason: String,
    /// The compensations that ran, in order (`release_inventory`, `refund_payment`).
    pub compensations: Vec<String>,
}

/// One event in an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened (`order.placed`, `payment.failed`).
    pub event: String,
}

/// An order as the assistant shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderInfo {
    /// Its id.
    pub id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// The application's status name (`confirmed`, `payment_processing`).
    pub status: String,
    /// Whether that status is final and how it ended.
    pub outcome: Outcome,
    /// The order's total in cents.
    pub total_cents: i64,
    /// The currency code of the total (`USD`).
    pub currency: String,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// Why it failed, when [`Outcome::Failed`].
    pub failure: Option<Failure>,
    /// Its saga's events, oldest first (may be empty).
    pub history: Vec<OrderEvent>,
}

/// Orders and revenue over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderStats {
    /// Orders placed in the period.
    pub orders: u64,
    /// Of them, completed.
    pub succeeded: u64,
    /// Of them, failed or cancelled.
    pub failed: u64,
    /// Of them, still running.
    pub in_progress: u64,
    /// Revenue of the completed orders, in cents.
    pub revenue_cents: i64,
    /// Its currency code.
    pub currency: String,
}

/// Stock of one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockInfo {
    /// The product.
    pub product: Product,
    /// Units that can be ordered.
    pub available: i64,
    /// Units held by reservations of running orders.
    pub reserved: i64,
}

/// Expected demand of one product over the next days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemandOutlook {
    /// The product.
    pub product: Product,
    /// How many days ahead.
    pub days: u32,
    /// Expected units sold over those days.
    pub expected: f64,
    /// Lower end of the interval.
    pub lower: f64,
    /// Upper end of the interval.
    pub upper: f64,
    /// The interval's coverage (0.95).
    pub level: f64,
    /// Stock-out risk against the current stock, when the application assesses it.
    pub stockout: Option<StockoutRisk>,
    /// The forecasting method (`theta`, `croston`).
    pub method: String,
}

/// One recommended product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The product.
    pub product: Product,
    /// The model's score (higher first; scale depends on the model).
    pub score: f64,
}

/// Recommendations for one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRecommendations {
    /// The customer.
    pub customer_id: Uuid,
    /// Best first.
    pub items: Vec<Recommendation>,
    /// `false` when the customer has no history and these are the popular products.
    pub personalised: bool,
}

/// The functions the assistant calls, implemented by the application over its live data.
///
/// Every method is a read except `replay_dead_letter` and `discard_dead_letter`, which the
/// assistant calls only after the user confirmed. Ids may be prefixes ([`IdRef`]); resolving
/// them is the application's job, answering [`Lookup::Ambiguous`] when several match.
#[async_trait]
pub trait Tools: Send + Sync {
    /// The products users can name (their names are matched against messages, typos allowed).
    async fn products(&self) -> Result<Vec<Product>, ToolError>;

    /// One order.
    async fn order(&self, id: &IdRef) -> Result<Lookup<OrderInfo>, ToolError>;

    /// Orders placed in `period` and their revenue.
    async fn order_stats(&self, period: &Period) -> Result<OrderStats, ToolError>;

    /// Stock of `product`.
    async fn stock(&self, product: &Product) -> Result<StockInfo, ToolError>;

    /// Demand of `product` over the next `days` days.
    async fn forecast(&self, product: &Product, days: u32) -> Result<DemandOutlook, ToolError>;

    /// The top `k` products for a customer.
    async fn recommendations(
        &self,
        customer: &IdRef,
        k: usize,
    ) -> Result<Lookup<CustomerRecommendations>, ToolError>;

    /// Sagas that look abnormal now, most abnormal first.
    async fn anomalies(&self) -> Result<Vec<AnomalyReport>, ToolError>;

    /// Pending dead letters, at most `limit`, oldest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, ToolError>;

    /// One dead letter, whatever its status.
    async fn dead_letter(&self, id: &IdRef) -> Result<Lookup<DeadLetter>, ToolError>;

    /// Hands dead letter `id` back for delivery. `Ok(false)` when it was no longer pending.
    async fn replay_dead_letter(&self, id: Uuid) -> Result<bool, ToolError>;

    /// Drops dead letter `id`. `Ok(false)` when it was no longer pending.
    async fn discard_dead_letter(&self, id: Uuid) -> Result<bool, ToolError>;
}
