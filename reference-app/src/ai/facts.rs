//! What the engine scores: the order ([`OrderFacts`]) and what the AI service knows of the
//! customer's earlier orders ([`CustomerHistory`]), computed from its own table of past orders
//! ([`PastOrder`]) with [`CustomerHistory::before`] or by the caller's own queries.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::Money;
use crate::api::order::{Address, OrderItem, ValidOrder};

/// An order as the engine scores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFacts {
    /// The order.
    pub order_id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The lines (product, quantity, unit price).
    pub items: Vec<OrderItem>,
    /// Sum of the lines.
    pub total: Money,
    /// Where it ships.
    pub shipping_address: Address,
    /// The API's payment method name (`credit_card`, `debit_card`, `paypal`, `bank_transfer`,
    /// `wallet`).
    pub payment_method: String,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

impl OrderFacts {
    /// The facts of a validated order.
    pub fn from_valid_order(order_id: Uuid, order: &ValidOrder, created_at: DateTime<Utc>) -> Self {
        Self {
            order_id,
            customer_id: order.customer_id,
            items: order.items.clone(),
            total: order.total_amount,
            shipping_address: order.shipping_address.clone(),
            payment_method: order.payment_method.clone(),
            created_at,
        }
    }
}

/// How an earlier order ended, as far as payment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderOutcome {
    /// Not settled yet (the saga is still running).
    Pending,
    /// The charge went through (confirmed, shipped, or cancelled and refunded later).
    Paid,
    /// The gateway declined the charge.
    PaymentFailed,
    /// Failed before any charge (fraud screening, no stock).
    Rejected,
}

/// One earlier order of the customer, as the AI service keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastOrder {
    /// The order (an order never counts as its own history).
    pub order_id: Uuid,
    /// Its total.
    pub total: Money,
    /// Its shipping address, as [`address_key`] writes it.
    pub address_key: String,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: OrderOutcome,
}

/// A shipping address the customer used, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressUse {
    /// The address, as [`address_key`] writes it.
    pub key: String,
    /// Earlier orders shipped there (>= 1).
    pub orders: u32,
}

/// What the customer did before the order being scored. Windows end at the order's
/// `created_at`; the order itself is never part of its history. `Default` is a new customer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CustomerHistory {
    /// Orders in the hour before.
    pub orders_last_hour: u32,
    /// Orders in the 24 hours before.
    pub orders_last_24h: u32,
    /// Their total value.
    pub spent_last_24h: Money,
    /// Orders in the 7 days before.
    pub orders_last_7d: u32,
    /// Their total value.
    pub spent_last_7d: Money,
    /// Orders in the 30 days before.
    pub orders_last_30d: u32,
    /// Their total value.
    pub spent_last_30d: Money,
    /// All earlier orders.
    pub orders_total: u32,
    /// Their total value.
    pub total_spent: Money,
    /// When the customer's first order was placed (`None`: this is their first).
    pub first_order_at: Option<DateTime<Utc>>,
    /// The distinct shipping addresses of earlier orders.
    pub addresses: Vec<AddressUse>,
    /// Earlier orders whose charge went through.
    pub successful_payments: u32,
    /// Earlier orders whose charge was declined.
    pub failed_payments: u32,
}

impl CustomerHistory {
    /// The history of `order`'s customer from their earlier orders `past` (in any order):
    /// orders placed after `order.created_at`, and `order` itself, are left out.
    pub fn before(order: &OrderFacts, past: &[PastOrder]) -> Self {
        let at = order.created_at;
        let mut h = Self::default();
        for p in past
            .iter()
            .filter(|p| p.order_id != order.order_id && p.created_at <= at)
        {
            let within = |window: TimeDelta| p.created_at > at - window;
            let add = |n: &mut u32, spent: &mut Money| {
                *n = n.saturating_add(1);
                *spent = spent.checked_add(p.total).unwrap_or(*spent);
            };
            if within(TimeDelta::hours(1)) {
                h.orders_last_hour = h.orders_last_hour.saturating_add(1);
            }
            if within(TimeDelta::days(1)) {
                add(&mut h.orders_last_24h, &mut h.spent_last_24h);
            }
            if within(TimeDelta::days(7)) {
                add(&mut h.orders_last_7d, &mut h.spent_last_7d);
            }
            if within(TimeDelta::days(30)) {
                add(&mut h.orders_last_30d, &mut h.spent_last_30d);
            }
            add(&mut h.orders_total, &mut h.total_spent);
            h.first_order_at = Some(
                h.first_order_at
                    .map_or(p.created_at, |f| f.min(p.created_at)),
            );
            match h.addresses.iter_mut().find(|a| a.key == p.address_key) {
                Some(a) => a.orders = a.orders.saturating_add(1),
                None => h.addresses.push(AddressUse {
                    key: p.address_key.clone(),
                    orders: 1,
                }),
            }
            match p.outcome {
                OrderOutcome::Paid => {
                    h.successful_payments = h.successful_payments.saturating_add(1)
                }
                OrderOutcome::PaymentFailed => {
                    h.failed_payments = h.failed_payments.saturating_add(1);
                }
                OrderOutcome::Pending | OrderOutcome::Rejected => {}
            }
        }
        h.addresses
            .sort_by(|a, b| b.orders.cmp(&a.orders).then_with(|| a.key.cmp(&b.key)));
        h
    }

    /// Number of distinct shipping addresses used before.
    pub fn distinct_addresses(&self) -> usize {
        self.addresses.len()
    }

    /// The address most earlier orders shipped to (ties: the smallest key), if any.
    pub fn usual_address(&self) -> Option<&str> {
        self.addresses
            .iter()
            .max_by(|a, b| a.orders.cmp(&b.orders).then_with(|| b.key.cmp(&a.key)))
            .map(|a| a.key.as_str())
    }

    /// Whether an earlier order shipped to `key`.
    pub fn has_used(&self, key: &str) -> bool {
        self.addresses.iter().any(|a| a.key == key)
    }
}

/// A stable text for comparing addresses: each field trimmed, lower-cased, inner white space
/// collapsed to one space, fields joined by `|` (`"123 main st|san francisco|ca|94102"`).
pub fn address_key(address: &Address) -> String {
    [&address.street, &address.city, &address.state, &address.zip]
        .iter()
        .map(|field| {
            field
                .split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(street: &str) -> Address {
        Address {
            street: street.into(),
            city: "San Francisco".into(),
            state: "CA".into(),
            zip: "94102".into(),
        }
    }

    fn order(at: DateTime<Utc>) -> OrderFacts {
        OrderFacts {
            order_id: Uuid::from_u128(1),
            customer_id: Uuid::from_u128(2),
            items: vec![],
            total: Money::from_cents(5000),
            shipping_address: address("123 Main St"),
            payment_method: "credit_card".into(),
            created_at: at,
        }
    }

    fn past(
        id: u128,
        at: DateTime<Utc>,
        cents: i64,
        street: &str,
        outcome: OrderOutcome,
    ) -> PastOrder {
        PastOrder {
            order_id: Uuid::from_u128(id),
            total: Money::from_cents(cents),
            address_key: address_key(&address(street)),
            created_at: at,
            outcome,
        }
    }

    #[test]
    fn address_keys_ignore_case_and_spacing() {
        assert_eq!(
            address_key(&address("  123   MAIN st ")),
            "123 main st|san francisco|ca|94102"
        );
        assert_ne!(
            address_key(&address("1 Main St")),
            address_key(&address("2 Main St"))
        );
    }

    #[test]
    fn windows_count_what_came_before_and_skip_the_order_itself() {
        let now = DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
            .unwrap()
            .to_utc();
        let o = order(now);
        let h = CustomerHistory::before(
            &o,
            &[
                past(
                    10,
                    now - TimeDelta::minutes(30),
                    1000,
                    "123 Main St",
                    OrderOutcome::Paid,
                ),
                past(
                    11,
                    now - TimeDelta::hours(5),
                    2000,
                    "9 Elm St",
                    OrderOutcome::PaymentFailed,
                ),
                past(
                    12,
                    now - TimeDelta::days(3),
                    4000,
                    "123 Main St",
                    OrderOutcome::Paid,
                ),
                past(
                    13,
                    now - TimeDelta::days(20),
                    8000,
                    "123 Main St",
                    OrderOutcome::Rejected,
                ),
                past(
                    14,
                    now - TimeDelta::days(90),
                    16000,
                    "77 Oak St",
                    OrderOutcome::Pending,
                ),
                // later than the order, and the order itself: both left out
                past(
                    15,
                    now + TimeDelta::minutes(1),
                    99900,
                    "1 Far Rd",
                    OrderOutcome::Paid,
                ),
                past(1, now, 99900, "1 Far Rd", OrderOutcome::Pending),
            ],
        );
        assert_eq!(h.orders_last_hour, 1);
        assert_eq!((h.orders_last_24h, h.spent_last_24h.cents()), (2, 3000));
        assert_eq!((h.orders_last_7d, h.spent_last_7d.cents()), (3, 7000));
        assert_eq!((h.orders_last_30d, h.spent_last_30d.cents()), (4, 15000));
        assert_eq!((h.orders_total, h.total_spent.cents()), (5, 31000));
        assert_eq!(h.first_order_at, Some(now - TimeDelta::days(90)));
        assert_eq!(h.distinct_addresses(), 3);
        assert_eq!(
            h.usual_address(),
            Some("123 main st|san francisco|ca|94102")
        );
        assert!(h.has_used("9 elm st|san francisco|ca|94102"));
        assert!(!h.has_used("1 far rd|san francisco|ca|94102"));
        assert_eq!((h.successful_payments, h.failed_payments), (2, 1));
    }

    #[test]
    fn no_past_orders_is_a_new_customer() {
        let now = Utc::now();
        assert_eq!(
            CustomerHistory::before(&order(now), &[]),
            CustomerHistory::default()
        );
        assert_eq!(CustomerHistory::default().usual_address(), None);
    }
}
