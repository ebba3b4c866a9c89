//! The shop's feature rows: the saga-ai orders feature set, filled from [`OrderFacts`] and
//! [`CustomerHistory`] with the meaning `saga_ai::fraud::FeatureState` gives them on generated
//! data, and the payment-success features.
//!
//! The shop fills 13 of the set's 31 features: the customer's order counts over 1 hour, 1, 7
//! and 30 days; the order's amount relative to the customer's 30-day mean; the account's age;
//! shipping to a new address, or to one other than the usual; the number of lines; the payment
//! method. The others are held at 0, at training time (on generated data) and at scoring time
//! alike, so the model never learns from them:
//!
//! - absolute amounts (the order's amount, the customer's mean amounts): the generator's
//!   customers spend 5 to 100 on average and never much above 300, so a model reading them
//!   would call every large order of a shop fraud, whatever its prices; the ratio to the
//!   customer's own mean does not depend on prices or currency;
//! - terminal counts and fraud rates: a shop is one merchant, it has no terminals;
//! - the share of easily resold items: products carry no category;
//! - the shipping address's activity across customers: a customer's history does not hold it;
//! - hour, night and weekend: they need the customer's local time, which the shop does not
//!   know (in UTC, every order placed during the European night would look like fraud).
//!
//! Two mappings: a customer's first order ships to an address they have not used before by
//! definition, while the generator's customers have a home (billing) address before they
//! order; so for a customer with no earlier orders "new address" and "not the usual address"
//! are 0 (their first address is their home). And the account's age is the time since the
//! customer's first order, the shop having no sign-up date.

use saga_ai::fraud::FeatureSet;
use saga_ai::payment::PaymentFeatures;
use saga_ai::payment_method::PaymentMethod;

use super::error::AiAppError;
use super::facts::{CustomerHistory, OrderFacts, address_key};
use crate::api::Money;

/// The feature set the fraud model reads.
pub(crate) const SET: FeatureSet = FeatureSet::Orders;

/// Positions, in [`SET`], of the features the shop computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slots {
    pub(crate) orders_1d: usize,
    pub(crate) orders_7d: usize,
    pub(crate) orders_30d: usize,
    pub(crate) account_age: usize,
    pub(crate) shipping_new: usize,
    pub(crate) shipping_differs: usize,
    pub(crate) item_count: usize,
    pub(crate) payment: [usize; 4],
    pub(crate) orders_1h: usize,
    pub(crate) amount_ratio: usize,
}

/// The values the shop computes for one order, by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ShopValues {
    pub(crate) orders_1d: f64,
    pub(crate) orders_7d: f64,
    pub(crate) orders_30d: f64,
    pub(crate) account_age_days: f64,
    pub(crate) shipping_new: bool,
    pub(crate) shipping_differs: bool,
    pub(crate) item_count: f64,
    pub(crate) method: PaymentMethod,
    pub(crate) orders_1h: f64,
    pub(crate) amount_ratio: f64,
}

impl Slots {
    /// Looks the features up by name; fails if `saga-ai` no longer has one of them.
    pub(crate) fn new() -> Result<Self, AiAppError> {
        let at = |name: &str| {
            SET.index(name).ok_or_else(|| AiAppError::Training {
                model: "fraud",
                source: saga_ai::AiError::IncompatibleModel(format!(
                    "saga-ai's orders feature set has no `{name}`"
                )),
            })
        };
        Ok(Self {
            orders_1d: at("customer_nb_tx_1day")?,
            orders_7d: at("customer_nb_tx_7day")?,
            orders_30d: at("customer_nb_tx_30day")?,
            account_age: at("account_age_days")?,
            shipping_new: at("shipping_new")?,
            shipping_differs: at("shipping_differs_billing")?,
            item_count: at("item_count")?,
            payment: [
                at("payment_card")?,
                at("payment_wallet")?,
                at("payment_bank_transfer")?,
                at("payment_pay_later")?,
            ],
            orders_1h: at("customer_orders_1hour")?,
            amount_ratio: at("amount_to_customer_avg_30day")?,
        })
    }

    /// Every position the shop fills.
    pub(crate) fn used(&self) -> Vec<usize> {
        let mut v = vec![
            self.orders_1d,
            self.orders_7d,
            self.orders_30d,
            self.account_age,
            self.shipping_new,
            self.shipping_differs,
            self.item_count,
            self.orders_1h,
            self.amount_ratio,
        ];
        v.extend(self.payment);
        v
    }

    /// Sets every feature the shop does not compute to 0 (training rows go through this).
    pub(crate) fn mask(&self, values: &mut [f64]) {
        let used = self.used();
        for (i, v) in values.iter_mut().enumerate() {
            if !used.contains(&i) {
                *v = 0.0;
            }
        }
    }

    /// The full feature row of `values` (unused features 0), every value finite.
    pub(crate) fn row(&self, s: &ShopValues) -> Vec<f64> {
        let mut v = vec![0.0; SET.len()];
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let mut put = |i: usize, x: f64| v[i] = if x.is_finite() { x } else { 0.0 };
        put(self.orders_1d, s.orders_1d);
        put(self.orders_7d, s.orders_7d);
        put(self.orders_30d, s.orders_30d);
        put(self.account_age, s.account_age_days);
        put(self.shipping_new, flag(s.shipping_new));
        put(self.shipping_differs, flag(s.shipping_differs));
        put(self.item_count, s.item_count);
        for (k, m) in PaymentMethod::ALL.into_iter().enumerate() {
            put(self.payment[k], flag(s.method == m));
        }
        put(self.orders_1h, s.orders_1h);
        put(self.amount_ratio, s.amount_ratio);
        v
    }
}

/// Money in currency units, never negative.
pub(crate) fn units(m: Money) -> f64 {
    m.cents().max(0) as f64 / 100.0
}

/// The model's payment method for an API name: cards are cards, PayPal is a wallet.
pub(crate) fn model_payment_method(api: &str) -> Result<PaymentMethod, AiAppError> {
    match api {
        "credit_card" | "debit_card" => Ok(PaymentMethod::Card),
        "paypal" | "wallet" => Ok(PaymentMethod::Wallet),
        "bank_transfer" => Ok(PaymentMethod::BankTransfer),
        other => Err(AiAppError::InvalidInput(format!(
            "unknown payment method {other:?}"
        ))),
    }
}

/// Days from the customer's first order to this one (0 for a first order).
pub(crate) fn account_age_days(order: &OrderFacts, history: &CustomerHistory) -> f64 {
    history.first_order_at.map_or(0.0, |first| {
        ((order.created_at - first).num_seconds() as f64 / 86_400.0).max(0.0)
    })
}

/// The shop's features of `order`, as `FeatureState` defines them: customer windows include
/// the order itself (count + 1; the 30-day mean amount includes its amount).
pub(crate) fn shop_values(
    order: &OrderFacts,
    history: &CustomerHistory,
) -> Result<ShopValues, AiAppError> {
    let method = model_payment_method(&order.payment_method)?;
    let amount = units(order.total);
    let count = |n: u32| f64::from(n) + 1.0;
    let orders_30d = count(history.orders_last_30d);
    let avg_30d = (units(history.spent_last_30d) + amount) / orders_30d;
    let key = address_key(&order.shipping_address);
    let (shipping_new, shipping_differs) = match history.usual_address() {
        None => (false, false),
        Some(usual) => (!history.has_used(&key), usual != key),
    };
    Ok(ShopValues {
        orders_1d: count(history.orders_last_24h),
        orders_7d: count(history.orders_last_7d),
        orders_30d,
        account_age_days: account_age_days(order, history),
        shipping_new,
        shipping_differs,
        item_count: order.items.len() as f64,
        method,
        orders_1h: f64::from(history.orders_last_hour) + 1.0,
        amount_ratio: if avg_30d > 0.0 { amount / avg_30d } else { 1.0 },
    })
}

/// The payment-success model's features. The engine does not see the gateway's recent
/// health, so the window reads as quiet (0 attempts): the model then assumes its prior error
/// rate.
pub(crate) fn payment_features(
    order: &OrderFacts,
    history: &CustomerHistory,
) -> Result<PaymentFeatures, AiAppError> {
    Ok(PaymentFeatures {
        method: model_payment_method(&order.payment_method)?,
        amount: units(order.total),
        account_age_days: account_age_days(order, history),
        past_successes: history.successful_payments,
        past_failures: history.failed_payments,
        gateway_attempts: 0,
        gateway_failures: 0,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::ai::facts::AddressUse;
    use crate::api::order::Address;

    fn order(cents: i64, street: &str, method: &str) -> OrderFacts {
        OrderFacts {
            order_id: Uuid::from_u128(1),
            customer_id: Uuid::from_u128(2),
            items: vec![],
            total: Money::from_cents(cents),
            shipping_address: Address {
                street: street.into(),
                city: "Springfield".into(),
                state: "IL".into(),
                zip: "62701".into(),
            },
            payment_method: method.into(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn every_used_position_is_distinct_and_unused_ones_are_masked() {
        let slots = Slots::new().unwrap();
        let mut used = slots.used();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len(), 13);
        let mut row = vec![7.0; SET.len()];
        slots.mask(&mut row);
        assert_eq!(row.iter().filter(|v| **v == 7.0).count(), 13);
        assert_eq!(row.iter().filter(|v| **v == 0.0).count(), SET.len() - 13);
        for name in [
            "tx_amount",
            "customer_avg_amount_30day",
            "terminal_risk_7day",
            "resale_share",
            "hour_of_day",
        ] {
            assert_eq!(row[SET.index(name).unwrap()], 0.0, "{name}");
        }
    }

    #[test]
    fn windows_include_the_order_itself() {
        let o = order(10_000, "1 Elm St", "paypal");
        let history = CustomerHistory {
            orders_last_24h: 1,
            spent_last_24h: Money::from_cents(5_000),
            orders_last_30d: 3,
            spent_last_30d: Money::from_cents(20_000),
            first_order_at: Some(o.created_at - TimeDelta::days(10)),
            addresses: vec![AddressUse {
                key: "2 oak st|springfield|il|62701".into(),
                orders: 3,
            }],
            ..CustomerHistory::default()
        };
        let v = shop_values(&o, &history).unwrap();
        assert_eq!((v.orders_1d, v.orders_7d, v.orders_30d), (2.0, 1.0, 4.0));
        // mean over 30 days with this order: (200 + 100) / 4 = 75
        assert!((v.amount_ratio - 100.0 / 75.0).abs() < 1e-12);
        assert!((v.account_age_days - 10.0).abs() < 1e-9);
        assert!(v.shipping_new && v.shipping_differs);
        assert_eq!(v.method, PaymentMethod::Wallet);
        assert_eq!(v.orders_1h, 1.0);
    }

    #[test]
    fn a_first_order_ships_home() {
        let v = shop_values(
            &order(100, "1 Elm St", "credit_card"),
            &CustomerHistory::default(),
        )
        .unwrap();
        assert!(!v.shipping_new && !v.shipping_differs);
        assert_eq!(v.account_age_days, 0.0);
        assert_eq!(v.amount_ratio, 1.0);
    }

    #[test]
    fn an_unknown_payment_method_is_a_typed_error() {
        let err = shop_values(
            &order(100, "1 Elm St", "gold_bars"),
            &CustomerHistory::default(),
        )
        .unwrap_err();
        assert!(matches!(err, AiAppError::InvalidInput(_)), "{err}");
    }
}
