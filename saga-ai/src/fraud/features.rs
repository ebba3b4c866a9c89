//! The incremental feature store: features from history in time windows, the same code at
//! training time and at scoring time.
//!
//! Feed past transactions in time order with [`FeatureState::observe`]; turn a transaction
//! (an order about to be scored) into its features with [`FeatureState::features`], which reads
//! the state and does not change it. The windows follow the handbook's feature transformations
//! (chapter 3.4): customer count and mean amount over the last 1, 7 and 30 days including the
//! transaction itself; terminal count and fraud rate over 1, 7 and 30 days ending
//! [`LABEL_DELAY_DAYS`] days ago, because fraud labels arrive late. Orders mode adds order
//! fields, order velocity, and shipping-address activity and risk (with the same delay).

use std::collections::{HashMap, VecDeque};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use super::transaction::{DAY, PaymentMethod, Transaction};
use crate::error::{AiError, Result};

/// Days before a fraud label is trusted (terminal and address risk look only at older
/// transactions), as in the handbook.
pub const LABEL_DELAY_DAYS: i64 = 7;

const WINDOWS: [i64; 3] = [1, 7, 30];

const HANDBOOK_FEATURES: [(&str, &str); 15] = [
    ("tx_amount", "order amount"),
    ("tx_during_weekend", "placed on a weekend"),
    ("tx_during_night", "placed at night (00:00-06:00)"),
    ("customer_nb_tx_1day", "customer's orders in the last day"),
    (
        "customer_avg_amount_1day",
        "customer's mean amount in the last day",
    ),
    (
        "customer_nb_tx_7day",
        "customer's orders in the last 7 days",
    ),
    (
        "customer_avg_amount_7day",
        "customer's mean amount in the last 7 days",
    ),
    (
        "customer_nb_tx_30day",
        "customer's orders in the last 30 days",
    ),
    (
        "customer_avg_amount_30day",
        "customer's mean amount in the last 30 days",
    ),
    (
        "terminal_nb_tx_1day",
        "terminal's transactions in 1 day (7 days ago)",
    ),
    (
        "terminal_risk_1day",
        "terminal's fraud rate over 1 day (7 days ago)",
    ),
    (
        "terminal_nb_tx_7day",
        "terminal's transactions in 7 days (7 days ago)",
    ),
    (
        "terminal_risk_7day",
        "terminal's fraud rate over 7 days (7 days ago)",
    ),
    (
        "terminal_nb_tx_30day",
        "terminal's transactions in 30 days (7 days ago)",
    ),
    (
        "terminal_risk_30day",
        "terminal's fraud rate over 30 days (7 days ago)",
    ),
];

const ORDER_FEATURES: [(&str, &str); 16] = [
    ("hour_of_day", "hour of day"),
    ("account_age_days", "account age in days"),
    (
        "shipping_new",
        "ships to an address never used by this customer",
    ),
    (
        "shipping_differs_billing",
        "shipping address differs from billing",
    ),
    ("item_count", "number of items"),
    ("resale_share", "share of easily resold items"),
    ("payment_card", "paid by card"),
    ("payment_wallet", "paid by wallet"),
    ("payment_bank_transfer", "paid by bank transfer"),
    ("payment_pay_later", "paid later"),
    (
        "customer_orders_1hour",
        "customer's orders in the last hour",
    ),
    (
        "amount_to_customer_avg_30day",
        "amount relative to customer's 30-day mean",
    ),
    (
        "address_customers_7day",
        "distinct customers shipping to this address in 7 days",
    ),
    (
        "address_nb_orders_30day",
        "orders to this address in 30 days (7 days ago)",
    ),
    (
        "address_risk_7day",
        "fraud rate at this address over 7 days (7 days ago)",
    ),
    (
        "address_risk_30day",
        "fraud rate at this address over 30 days (7 days ago)",
    ),
];

/// Which features a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FeatureSet {
    /// The handbook's 15 features (amount, weekend, night, customer and terminal windows).
    Handbook,
    /// The handbook's 15 plus 16 order features.
    Orders,
}

impl FeatureSet {
    /// Number of features.
    pub fn len(self) -> usize {
        match self {
            FeatureSet::Handbook => HANDBOOK_FEATURES.len(),
            FeatureSet::Orders => HANDBOOK_FEATURES.len() + ORDER_FEATURES.len(),
        }
    }

    /// Never empty (present for symmetry with `len`).
    pub fn is_empty(self) -> bool {
        false
    }

    fn entry(self, i: usize) -> Option<(&'static str, &'static str)> {
        match i.checked_sub(HANDBOOK_FEATURES.len()) {
            None => HANDBOOK_FEATURES.get(i).copied(),
            Some(j) if self == FeatureSet::Orders => ORDER_FEATURES.get(j).copied(),
            Some(_) => None,
        }
    }

    /// The name of feature `i` (`tx_amount`, ...); `None` past the end.
    pub fn name(self, i: usize) -> Option<&'static str> {
        self.entry(i).map(|e| e.0)
    }

    /// A sentence-fragment description of feature `i` for reasons shown to people.
    pub fn description(self, i: usize) -> Option<&'static str> {
        self.entry(i).map(|e| e.1)
    }

    /// Position of the feature called `name`.
    pub fn index(self, name: &str) -> Option<usize> {
        (0..self.len()).find(|&i| self.name(i) == Some(name))
    }

    /// All names, in order.
    pub fn names(self) -> Vec<String> {
        (0..self.len())
            .filter_map(|i| self.name(i))
            .map(String::from)
            .collect()
    }
}

/// A feature vector of a [`FeatureSet`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Which features these are.
    pub set: FeatureSet,
    /// Their values, in the set's order.
    pub values: Vec<f64>,
}

impl Features {
    /// Checks the length and that every value is finite.
    pub fn validate(&self, expected: FeatureSet) -> Result<()> {
        if self.set != expected || self.values.len() != expected.len() {
            return Err(AiError::InvalidInput(format!(
                "expected {} {:?} features, got {} {:?} features",
                expected.len(),
                expected,
                self.values.len(),
                self.set
            )));
        }
        if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            return Err(AiError::InvalidInput(format!(
                "feature {} is {}",
                expected.name(i).unwrap_or("?"),
                self.values[i]
            )));
        }
        Ok(())
    }

    /// The value of the feature called `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.set
            .index(name)
            .and_then(|i| self.values.get(i).copied())
    }
}

#[derive(Debug, Clone, Copy)]
struct AddressEvent {
    time: i64,
    customer: u32,
    fraud: bool,
}

/// The state from which features are computed: the recent history of every customer, terminal
/// and shipping address. Old entries are dropped as time advances, so memory stays bounded by
/// the last 37 days of activity.
#[derive(Debug, Clone)]
pub struct FeatureState {
    set: FeatureSet,
    start_weekday: u32,
    last_time: i64,
    customers: HashMap<u32, VecDeque<(i64, f64)>>,
    terminals: HashMap<u32, VecDeque<(i64, bool)>>,
    addresses: HashMap<u32, VecDeque<AddressEvent>>,
}

impl FeatureState {
    /// An empty state for `set`, whose day 0 is `start` (for the weekend feature).
    pub fn new(set: FeatureSet, start: NaiveDate) -> Self {
        Self {
            set,
            start_weekday: start.weekday().num_days_from_monday(),
            last_time: i64::MIN,
            customers: HashMap::new(),
            terminals: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// The feature set it computes.
    pub fn set(&self) -> FeatureSet {
        self.set
    }

    fn check(&self, tx: &Transaction) -> Result<()> {
        if !(tx.amount.is_finite() && tx.amount >= 0.0) {
            return Err(AiError::InvalidInput(format!(
                "transaction {}: amount {} is not a non-negative number",
                tx.id, tx.amount
            )));
        }
        if tx.time < self.last_time {
            return Err(AiError::InvalidInput(format!(
                "transaction {} at {}s is older than the last observed one at {}s",
                tx.id, tx.time, self.last_time
            )));
        }
        if self.set == FeatureSet::Orders {
            let Some(order) = &tx.order else {
                return Err(AiError::InvalidInput(format!(
                    "transaction {} has no order fields",
                    tx.id
                )));
            };
            if !(order.account_age_days.is_finite() && order.account_age_days >= 0.0) {
                return Err(AiError::InvalidInput(format!(
                    "transaction {}: account age {} is not a non-negative number",
                    tx.id, order.account_age_days
                )));
            }
            if !(0.0..=1.0).contains(&order.resale_share) {
                return Err(AiError::InvalidInput(format!(
                    "transaction {}: resale share {} is outside [0, 1]",
                    tx.id, order.resale_share
                )));
            }
        }
        Ok(())
    }

    /// The features of `tx` given the history observed so far (and `tx` itself for the
    /// customer windows). `tx.fraud` is not read. Fails on a transaction older than the last
    /// observed one, a negative or non-finite amount, or missing order fields in orders mode.
    pub fn features(&self, tx: &Transaction) -> Result<Features> {
        self.check(tx)?;
        let t = tx.time;
        let mut v = Vec::with_capacity(self.set.len());
        v.push(tx.amount);
        let day = t.div_euclid(DAY);
        let weekday = (self.start_weekday as i64 + day).rem_euclid(7);
        v.push(f64::from(u8::from(
            weekday >= i64::from(Weekday::Sat.num_days_from_monday()),
        )));
        let second_of_day = t.rem_euclid(DAY);
        v.push(f64::from(u8::from(second_of_day <= 6 * 3600)));

        let history = self.customers.get(&tx.customer);
        let mut avg30 = tx.amount;
        for w in WINDOWS {
            let (mut n, mut sum) = (1.0, tx.amount);
            if let Some(h) = history {
                for &(time, amount) in h.iter().rev() {
                    if time <= t - w * DAY {
                        break;
                    }
                    n += 1.0;
                    sum += amount;
                }
            }
            v.push(n);
            v.push(sum / n);
            avg30 = sum / n;
        }

        let terminal = self.terminals.get(&tx.terminal);
        for w in WINDOWS {
            let (n, frauds) = delayed_counts(terminal.map(|h| h.iter().map(|e| (e.0, e.1))), t, w);
            v.push(n);
            v.push(if n > 0.0 { frauds / n } else { 0.0 });
        }

        if let (FeatureSet::Orders, Some(order)) = (self.set, &tx.order) {
            v.push((second_of_day / 3600) as f64);
            v.push(order.account_age_days);
            v.push(f64::from(u8::from(order.shipping_new)));
            v.push(f64::from(u8::from(order.shipping_differs_billing)));
            v.push(f64::from(order.item_count));
            v.push(order.resale_share);
            for m in PaymentMethod::ALL {
                v.push(f64::from(u8::from(order.payment_method == m)));
            }
            let last_hour =
                history.map_or(0, |h| h.iter().rev().take_while(|e| e.0 > t - 3600).count());
            v.push(1.0 + last_hour as f64);
            v.push(if avg30 > 0.0 { tx.amount / avg30 } else { 1.0 });

            let address = self.addresses.get(&order.shipping_address);
            let mut distinct: Vec<u32> = vec![tx.customer];
            if let Some(h) = address {
                for e in h.iter().rev() {
                    if e.time <= t - 7 * DAY {
                        break;
                    }
                    if !distinct.contains(&e.customer) {
                        distinct.push(e.customer);
                    }
                }
            }
            v.push(distinct.len() as f64);
            let events = || address.map(|h| h.iter().map(|e| (e.time, e.fraud)));
            let (n7, f7) = delayed_counts(events(), t, 7);
            let (n30, f30) = delayed_counts(events(), t, 30);
            v.push(n30);
            v.push(if n7 > 0.0 { f7 / n7 } else { 0.0 });
            v.push(if n30 > 0.0 { f30 / n30 } else { 0.0 });
        }
        Ok(Features {
            set: self.set,
            values: v,
        })
    }

    /// Records `tx` (with its label, which only windows older than the delay read) and drops
    /// history no window needs any more. Transactions must come in time order.
    pub fn observe(&mut self, tx: &Transaction) -> Result<()> {
        self.check(tx)?;
        let t = tx.time;
        self.last_time = t;
        let keep_customer = t - 30 * DAY;
        let keep_delayed = t - (30 + LABEL_DELAY_DAYS) * DAY;
        let c = self.customers.entry(tx.customer).or_default();
        c.push_back((t, tx.amount));
        while c.front().is_some_and(|e| e.0 <= keep_customer) {
            c.pop_front();
        }
        let term = self.terminals.entry(tx.terminal).or_default();
        term.push_back((t, tx.fraud));
        while term.front().is_some_and(|e| e.0 <= keep_delayed) {
            term.pop_front();
        }
        if let (FeatureSet::Orders, Some(order)) = (self.set, &tx.order) {
            let a = self.addresses.entry(order.shipping_address).or_default();
            a.push_back(AddressEvent {
                time: t,
                customer: tx.customer,
                fraud: tx.fraud,
            });
            while a.front().is_some_and(|e| e.time <= keep_delayed) {
                a.pop_front();
            }
        }
        Ok(())
    }

    /// Turns a whole time-ordered history into feature rows: for each transaction, its
    /// features, then it is observed. This is how training data is built, with the same code
    /// that scores a single order.
    pub fn transform_all(&mut self, txs: &[Transaction]) -> Result<Vec<Features>> {
        txs.iter()
            .map(|tx| {
                let f = self.features(tx)?;
                self.observe(tx)?;
                Ok(f)
            })
            .collect()
    }
}

/// Count and fraud count of events in `(t - (delay + w) days, t - delay days]`.
fn delayed_counts(
    events: Option<impl DoubleEndedIterator<Item = (i64, bool)>>,
    t: i64,
    w: i64,
) -> (f64, f64) {
    let Some(events) = events else {
        return (0.0, 0.0);
    };
    let hi = t - LABEL_DELAY_DAYS * DAY;
    let lo = t - (LABEL_DELAY_DAYS + w) * DAY;
    let (mut n, mut f) = (0.0, 0.0);
    for (time, fraud) in events.rev() {
        if time <= lo {
            break;
        }
        if time <= hi {
            n += 1.0;
            if fraud {
                f += 1.0;
            }
        }
    }
    (n, f)
}
