//! Reasons in plain words: the model's per-feature contributions (log-odds, from the boosted
//! trees' path attribution) summed into the factors a person thinks in (the amount, the
//! order rate, the account's age, the address, ...), the factors that raised the score most
//! first, each told with the order's own numbers.

use super::facts::{CustomerHistory, OrderFacts};
use super::features::{ShopValues, Slots, units};

/// The most reasons an assessment carries.
pub(crate) const MAX_REASONS: usize = 3;

/// Contributions below this (log-odds) are not worth a reason.
const MIN_CONTRIBUTION: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Factor {
    Amount,
    Velocity,
    AccountAge,
    Shipping,
    Items,
    Payment,
}

const FACTORS: [Factor; 6] = [
    Factor::Amount,
    Factor::Velocity,
    Factor::AccountAge,
    Factor::Shipping,
    Factor::Items,
    Factor::Payment,
];

impl Factor {
    fn features(self, s: &Slots) -> Vec<usize> {
        match self {
            Factor::Amount => vec![s.amount_ratio],
            Factor::Velocity => vec![s.orders_1d, s.orders_7d, s.orders_30d, s.orders_1h],
            Factor::AccountAge => vec![s.account_age],
            Factor::Shipping => vec![s.shipping_new, s.shipping_differs],
            Factor::Items => vec![s.item_count],
            Factor::Payment => s.payment.to_vec(),
        }
    }

    fn describe(self, order: &OrderFacts, history: &CustomerHistory, v: &ShopValues) -> String {
        match self {
            Factor::Amount if history.orders_last_30d > 0 => {
                let mean = units(history.spent_last_30d) / f64::from(history.orders_last_30d);
                format!(
                    "order total {} against an average of {mean:.2} over this customer's {} in \
                     the last 30 days",
                    order.total,
                    count(history.orders_last_30d, "order")
                )
            }
            Factor::Amount if history.orders_total > 0 => format!(
                "order total {}, with no orders from this customer in the last 30 days to compare",
                order.total
            ),
            Factor::Amount => format!(
                "order total {}, with no earlier orders to compare",
                order.total
            ),
            Factor::Velocity if history.orders_last_hour > 0 => format!(
                "{} from this customer in the last 24 hours ({} in the last hour)",
                count(history.orders_last_24h, "earlier order"),
                history.orders_last_hour
            ),
            Factor::Velocity if history.orders_last_24h > 0 => format!(
                "{} from this customer in the last 24 hours",
                count(history.orders_last_24h, "earlier order")
            ),
            Factor::Velocity if history.orders_last_30d > 0 => format!(
                "{} from this customer in the last 30 days",
                count(history.orders_last_30d, "earlier order")
            ),
            Factor::Velocity => "no other order from this customer in the last 30 days".to_string(),
            Factor::AccountAge => match history.first_order_at {
                None => "new customer: this is their first order".to_string(),
                Some(_) if v.account_age_days < 1.0 / 24.0 => {
                    "new customer: first order less than an hour ago".to_string()
                }
                Some(_) if v.account_age_days < 1.0 => format!(
                    "new customer: first order {:.0} hours ago",
                    v.account_age_days * 24.0
                ),
                Some(_) => format!(
                    "customer's first order was {:.0} days ago",
                    v.account_age_days
                ),
            },
            Factor::Shipping if v.shipping_new => format!(
                "ships to an address this customer has not used before ({} before this one)",
                count(
                    u32::try_from(history.distinct_addresses()).unwrap_or(u32::MAX),
                    "different address"
                )
            ),
            Factor::Shipping if v.shipping_differs => {
                "ships to an address other than this customer's usual one".to_string()
            }
            Factor::Shipping if history.orders_total == 0 => {
                "ships to a new customer's first address".to_string()
            }
            Factor::Shipping => "ships to this customer's usual address".to_string(),
            Factor::Items => format!(
                "{} in the order",
                count(u32::try_from(order.items.len()).unwrap_or(u32::MAX), "line")
            ),
            Factor::Payment => format!("paid by {}", order.payment_method.replace('_', " ")),
        }
    }
}

/// "1 order", "3 orders" (`noun` takes an `s` in the plural, `address` an `es`).
fn count(n: u32, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ if noun.ends_with('s') => format!("{n} {noun}es"),
        _ => format!("{n} {noun}s"),
    }
}

/// The factors that raised the score, largest contribution first, at most [`MAX_REASONS`].
pub(crate) fn reasons(
    slots: &Slots,
    contributions: &[f64],
    order: &OrderFacts,
    history: &CustomerHistory,
    values: &ShopValues,
) -> Vec<String> {
    let mut scored: Vec<(f64, Factor)> = FACTORS
        .into_iter()
        .map(|f| {
            let total = f
                .features(slots)
                .into_iter()
                .filter_map(|i| contributions.get(i))
                .sum::<f64>();
            (total, f)
        })
        .filter(|(total, _)| *total > MIN_CONTRIBUTION)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(MAX_REASONS)
        .map(|(_, f)| f.describe(order, history, values))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::ai::features::{SET, shop_values};
    use crate::api::Money;
    use crate::api::order::{Address, OrderItem};

    fn order() -> OrderFacts {
        OrderFacts {
            order_id: Uuid::from_u128(1),
            customer_id: Uuid::from_u128(2),
            items: vec![OrderItem {
                product_id: "p-1".into(),
                quantity: 3,
                price: Money::from_cents(2_500),
            }],
            total: Money::from_cents(7_500),
            shipping_address: Address {
                street: "1 Elm St".into(),
                city: "Springfield".into(),
                state: "IL".into(),
                zip: "62701".into(),
            },
            payment_method: "bank_transfer".into(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn factors_are_summed_ranked_and_capped() {
        let slots = Slots::new().unwrap();
        let o = order();
        let history = CustomerHistory {
            orders_last_hour: 2,
            orders_last_24h: 9,
            orders_last_30d: 9,
            orders_total: 9,
            first_order_at: Some(o.created_at - TimeDelta::hours(6)),
            ..CustomerHistory::default()
        };
        let values = shop_values(&o, &history).unwrap();
        let mut c = vec![0.0; SET.len()];
        c[slots.orders_1d] = 0.8;
        c[slots.orders_1h] = 0.7; // velocity: 1.5 in all
        c[slots.account_age] = 1.0;
        c[slots.item_count] = 0.3;
        c[slots.amount_ratio] = 0.1;
        c[slots.payment[2]] = -2.0; // lowers the score: never a reason
        let r = reasons(&slots, &c, &o, &history, &values);
        assert_eq!(
            r,
            [
                "9 earlier orders from this customer in the last 24 hours (2 in the last hour)",
                "new customer: first order 6 hours ago",
                "1 line in the order",
            ]
        );
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "earlier order"), "1 earlier order");
        assert_eq!(count(0, "line"), "0 lines");
        assert_eq!(count(6, "different address"), "6 different addresses");
    }

    #[test]
    fn nothing_raising_the_score_gives_no_reason() {
        let slots = Slots::new().unwrap();
        let o = order();
        let values = shop_values(&o, &CustomerHistory::default()).unwrap();
        let c = vec![-0.5; SET.len()];
        assert!(reasons(&slots, &c, &o, &CustomerHistory::default(), &values).is_empty());
    }
}
