//! The order service's request and response bodies, with the seed's field names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::money::Money;
use super::problem::{FieldError, Problem};

/// The most items one order may hold, and the most of one item.
pub const MAX_ITEMS: usize = 100;
/// The most units of one item.
pub const MAX_QUANTITY: i64 = 10_000;

/// `POST /orders`: what a customer sends.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// The customer.
    pub customer_id: Uuid,
    /// What is ordered; at least one item.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<OrderItemRequest>,
    /// Where to ship.
    pub shipping_address: Address,
    /// How to pay.
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItemRequest {
    /// The product (its id in the inventory service).
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    pub product_id: String,
    /// How many; at least 1. Signed so that 0 and negatives get a clear message.
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: i64,
    /// The unit price the customer saw.
    pub price: Money,
}

/// A postal address, as the seed's API has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street and number.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub street: String,
    /// City.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub city: String,
    /// State or region.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub state: String,
    /// Postal code.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub zip: String,
}

/// How the customer pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    /// `credit_card`, `debit_card`, `paypal`, `bank_transfer` or `wallet`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(credit_card|debit_card|paypal|bank_transfer|wallet)$")]
    pub kind: String,
}

impl PaymentMethod {
    /// The method's name (`credit_card` when not given, as in the seed); one the gateway does
    /// not know adds a `payment_method.type` error to `errors`.
    pub fn name_of(method: Option<PaymentMethod>, errors: &mut Vec<FieldError>) -> String {
        let name = method.map_or_else(|| "credit_card".to_owned(), |p| p.kind);
        if !PAYMENT_METHODS.contains(&name.as_str()) {
            errors.push(FieldError::new(
                "payment_method.type",
                format!("must be one of {}", PAYMENT_METHODS.join(", ")),
            ));
        }
        name
    }
}

/// The payment methods the simulated gateway knows.
pub const PAYMENT_METHODS: [&str; 5] = [
    "credit_card",
    "debit_card",
    "paypal",
    "bank_transfer",
    "wallet",
];

/// An order line after validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderItem {
    /// The product.
    pub product_id: String,
    /// How many (>= 1).
    pub quantity: i64,
    /// Unit price.
    pub price: Money,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidOrder {
    /// The customer.
    pub customer_id: Uuid,
    /// The lines, each with a positive quantity.
    pub items: Vec<OrderItem>,
    /// Where to ship.
    pub shipping_address: Address,
    /// How to pay (`credit_card` when not given, as in the seed).
    pub payment_method: String,
    /// Sum of quantity x price.
    pub total_amount: Money,
}

impl CreateOrderRequest {
    /// Checks every field and reports every problem at once.
    pub fn validate(self) -> Result<ValidOrder, Problem> {
        let mut errors = Vec::new();
        if self.items.is_empty() {
            errors.push(FieldError::new("items", "an order needs at least one item"));
        }
        if self.items.len() > MAX_ITEMS {
            errors.push(FieldError::new(
                "items",
                format!("at most {MAX_ITEMS} items per order"),
            ));
        }
        let mut total = Some(Money::default());
        for (i, item) in self.items.iter().enumerate() {
            if item.product_id.trim().is_empty() || item.product_id.len() > 64 {
                errors.push(FieldError::new(
                    format!("items[{i}].product_id"),
                    "must be a product id of 1 to 64 characters",
                ));
            }
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                errors.push(FieldError::new(
                    format!("items[{i}].quantity"),
                    format!(
                        "must be between 1 and {MAX_QUANTITY}, got {}",
                        item.quantity
                    ),
                ));
            }
            total = total
                .zip(item.price.checked_mul(item.quantity))
                .and_then(|(t, line)| t.checked_add(line));
        }
        let total = total.filter(|t| t.cents() <= Money::MAX_CENTS);
        if total.is_none() {
            errors.push(FieldError::new("items", "the order total is too large"));
        }
        let a = &self.shipping_address;
        for (field, value) in [
            ("street", &a.street),
            ("city", &a.city),
            ("state", &a.state),
            ("zip", &a.zip),
        ] {
            if value.trim().is_empty() || value.len() > 200 {
                errors.push(FieldError::new(
                    format!("shipping_address.{field}"),
                    "must be 1 to 200 characters",
                ));
            }
        }
        let payment_method = PaymentMethod::name_of(self.payment_method, &mut errors);
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        Ok(ValidOrder {
            customer_id: self.customer_id,
            items: self
                .items
                .into_iter()
                .map(|i| OrderItem {
                    product_id: i.product_id,
                    quantity: i.quantity,
                    price: i.price,
                })
                .collect(),
            shipping_address: self.shipping_address,
            payment_method,
            total_amount: total.unwrap_or_default(),
        })
    }
}

/// An order's status, as the seed names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed; the saga has started.
    Pending,
    /// Stock is reserved.
    InventoryReserved,
    /// The charge is under way.
    PaymentProcessing,
    /// Paid; shipping is being scheduled. Terminal for the saga's forward path.
    Confirmed,
    /// Undone after a step failed (stock released, payment refunded).
    Cancelled,
    /// Rejected before anything was taken (fraud, no stock).
    Failed,
}

/// `GET /orders/{id}` and the answer to `POST /orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderResponse {
    /// The order id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Where the order stands.
    pub status: OrderStatus,
    /// Sum of the lines.
    pub total_amount: Money,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// Where to ship.
    pub shipping_address: Address,
    /// The saga's correlation id.
    pub correlation_id: Uuid,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(items: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "customer_id": "123e4567-e89b-12d3-a456-426614174000",
            "items": items,
            "shipping_address": {"street": "123 Main St", "city": "San Francisco", "state": "CA", "zip": "94102"},
            "payment_method": {"type": "credit_card"}
        })
    }

    fn parse(v: serde_json::Value) -> Result<ValidOrder, Problem> {
        serde_json::from_value::<CreateOrderRequest>(v)
            .map_err(|e| Problem::malformed(e.to_string()))?
            .validate()
    }

    #[test]
    fn the_seeds_example_order_is_valid() {
        let order = parse(body(
            serde_json::json!([{"product_id": "p-1", "quantity": 2, "price": 25.00}]),
        ))
        .unwrap();
        assert_eq!(order.total_amount.cents(), 5000);
        assert_eq!(order.payment_method, "credit_card");
    }

    #[test]
    fn every_bad_field_is_named() {
        let p = parse(body(serde_json::json!([
            {"product_id": "", "quantity": 0, "price": 1},
            {"product_id": "p-2", "quantity": -3, "price": 1}
        ])))
        .unwrap_err();
        assert_eq!(p.status, 422);
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].product_id",
                "items[0].quantity",
                "items[1].quantity"
            ]
        );
    }

    #[test]
    fn no_items_unknown_fields_and_bad_money_are_refused() {
        assert_eq!(parse(body(serde_json::json!([]))).unwrap_err().status, 422);
        let mut extra = body(serde_json::json!([{"product_id": "p", "quantity": 1, "price": 1}]));
        extra["discount"] = serde_json::json!(100);
        assert!(parse(extra).is_err());
        assert!(
            parse(body(
                serde_json::json!([{"product_id": "p", "quantity": 1, "price": 1.005}])
            ))
            .is_err()
        );
        assert!(
            parse(body(
                serde_json::json!([{"product_id": "p", "quantity": 1, "price": -1}])
            ))
            .is_err()
        );
    }

    #[test]
    fn an_overflowing_total_is_a_validation_error_not_a_panic() {
        let p = parse(body(
            serde_json::json!([{"product_id": "p", "quantity": 10000, "price": 1000000000}]),
        ))
        .unwrap_err();
        assert_eq!(p.errors[0].message, "the order total is too large");
    }
}
