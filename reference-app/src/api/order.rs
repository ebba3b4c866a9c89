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

/// `POST /orders`'s body, decoded and validated as the route does it: the order, or the
/// problem document the client gets (400 for bytes that are not JSON, 422 naming every bad
/// field). Never panics, whatever the bytes (the fuzz target `order_request` checks it).
pub fn parse_order_request(body: &[u8]) -> Result<ValidOrder, Problem> {
    let super::json::ApiJson(request) =
        super::json::ApiJson::<CreateOrderRequest>::from_bytes(body)?;
    request.validate()
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
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    fn body(items: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "customer_id": "123e4567-e89b-12d3-a456-426614174000",
            "items": items,
            "shipping_address": {"street": "123 Main St", "city": "San Francisco", "state": "CA", "zip": "94102"},
            "payment_method": {"type": "credit_card"}
        })
    }

    fn parse(v: serde_json::Value) -> Result<ValidOrder, Problem> {
        parse_order_request(&serde_json::to_vec(&v).unwrap())
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

    #[test]
    fn a_body_that_is_not_json_is_400_and_a_wrong_shape_422() {
        let p = parse_order_request(b"{\"customer_id\": ").unwrap_err();
        assert_eq!((p.status, p.kind.as_str()), (400, "/problems/malformed"));
        let p = parse_order_request(br#"{"customer_id": "x", "items": []}"#).unwrap_err();
        assert_eq!((p.status, p.kind.as_str()), (422, "/problems/validation"));
        assert!(p.detail.contains("customer_id"), "{}", p.detail);
    }

    /// What every answer of the parser must be: a valid order within the limits the saga
    /// relies on, or the problem document of a client error (400 or 422, never a 5xx).
    fn check_outcome(result: Result<ValidOrder, Problem>) -> Result<(), TestCaseError> {
        match result {
            Ok(order) => {
                prop_assert!((1..=MAX_ITEMS).contains(&order.items.len()));
                let mut total = 0i64;
                for item in &order.items {
                    prop_assert!((1..=MAX_QUANTITY).contains(&item.quantity));
                    prop_assert!(!item.product_id.trim().is_empty());
                    prop_assert!(item.product_id.len() <= 64);
                    prop_assert!(item.price.cents() >= 0);
                    total += item.price.cents() * item.quantity;
                }
                prop_assert_eq!(order.total_amount.cents(), total);
                prop_assert!(total <= Money::MAX_CENTS);
                prop_assert!(PAYMENT_METHODS.contains(&order.payment_method.as_str()));
            }
            Err(p) => {
                prop_assert!(
                    matches!(
                        (p.status, p.kind.as_str()),
                        (400, "/problems/malformed") | (422, "/problems/validation")
                    ),
                    "unexpected problem {:?}",
                    p
                );
                prop_assert!(!p.detail.is_empty());
            }
        }
        Ok(())
    }

    /// Any JSON value, a few levels deep.
    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![Just(0.005f64), Just(25.0), Just(1e10), Just(-1.0)].prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
            Just(Value::String("123e4567-e89b-12d3-a456-426614174000".into())),
            Just(Value::String("credit_card".into())),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The paths of a valid body that a mutation may hit.
    const PATHS: [&[&str]; 14] = [
        &[],
        &["customer_id"],
        &["items"],
        &["items", "0"],
        &["items", "0", "product_id"],
        &["items", "0", "quantity"],
        &["items", "0", "price"],
        &["shipping_address"],
        &["shipping_address", "street"],
        &["shipping_address", "city"],
        &["shipping_address", "zip"],
        &["payment_method"],
        &["payment_method", "type"],
        &["extra"],
    ];

    /// A valid body with one mutation: a value replaced, a key removed, or lines repeated.
    fn arb_mutated_body() -> impl Strategy<Value = serde_json::Value> {
        (
            1usize..4,
            0usize..PATHS.len(),
            0u8..3,
            arb_json(),
            0usize..120,
        )
            .prop_map(|(lines, path, op, value, repeat)| {
                let line = serde_json::json!({"product_id": "p-1", "quantity": 2, "price": 25.5});
                let mut doc = body(serde_json::Value::Array(vec![line; lines]));
                let path = PATHS[path];
                match op {
                    0 => {
                        if let Some(slot) = pointer_mut(&mut doc, path) {
                            *slot = value;
                        }
                    }
                    1 => {
                        if let Some((last, parent)) = path.split_last()
                            && let Some(serde_json::Value::Object(m)) =
                                pointer_mut(&mut doc, parent)
                        {
                            m.remove(*last);
                        }
                    }
                    _ => {
                        let line = doc["items"][0].clone();
                        doc["items"] = serde_json::Value::Array(vec![line; repeat]);
                    }
                }
                doc
            })
    }

    /// The value at `path` (object keys, or array indexes), created in an object if absent.
    fn pointer_mut<'a>(
        doc: &'a mut serde_json::Value,
        path: &[&str],
    ) -> Option<&'a mut serde_json::Value> {
        let mut at = doc;
        for key in path {
            at = match at {
                serde_json::Value::Object(m) => m.entry(*key).or_insert(serde_json::Value::Null),
                serde_json::Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at)
    }

    proptest! {
        /// The CI form of the `order_request` fuzz target: any bytes.
        #[test]
        fn any_bytes_give_an_order_or_a_client_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            check_outcome(parse_order_request(&bytes))?;
        }

        /// Any JSON document.
        #[test]
        fn any_json_gives_an_order_or_a_client_error(doc in arb_json()) {
            check_outcome(parse_order_request(&serde_json::to_vec(&doc).unwrap()))?;
        }

        /// Near-valid bodies: the seed's example with one field replaced or removed, or with
        /// 0 to 119 lines.
        #[test]
        fn mutated_bodies_give_an_order_or_a_client_error(doc in arb_mutated_body()) {
            let bytes = serde_json::to_vec(&doc).unwrap();
            check_outcome(parse_order_request(&bytes))?;
        }

        /// The bytes of a near-valid body cut anywhere or with one byte changed.
        #[test]
        fn damaged_bytes_give_an_order_or_a_client_error(doc in arb_mutated_body(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
            let mut bytes = serde_json::to_vec(&doc).unwrap();
            let i = at.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else {
                bytes[i] = byte;
            }
            check_outcome(parse_order_request(&bytes))?;
        }
    }
}
