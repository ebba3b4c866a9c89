//! The payloads the services exchange through the broker.
//!
//! Every command of the order saga carries the order ([`OrderPayload`], the saga's data);
//! each participant answers with a reply whose payload is one of the types below.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::Money;
use crate::api::order::{Address, OrderItem};

/// The order, as every command of its saga carries it (`order.placed` too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPayload {
    /// The order.
    pub order_id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// Sum of the lines.
    pub total_amount: Money,
    /// Where to ship.
    pub shipping_address: Address,
    /// How to pay.
    pub payment_method: String,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

impl OrderPayload {
    /// Decodes the payload of a saga command or of `order.placed`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, crate::error::AppError> {
        serde_json::from_value(value.clone())
            .map_err(|e| crate::error::AppError::decode("order payload", e))
    }
}

/// Why a participant said no (`*.failed` replies), or what it did (`*.released`,
/// `*.refunded`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The order.
    pub order_id: Uuid,
    /// In words.
    pub detail: String,
}

/// `order.confirmed`, `order.cancelled`, `order.failed`: the order's new status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderStatusChanged {
    /// The order.
    pub order_id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The new status (seed names).
    pub status: crate::api::order::OrderStatus,
    /// Sum of the lines.
    pub total_amount: Money,
    /// Why, for cancelled and failed orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
