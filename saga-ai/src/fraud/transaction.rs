//! A transaction (a paid order) as the generator writes it and the feature store reads it.

use serde::{Deserialize, Serialize};

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// Which fraud pattern made a transaction fraudulent (`Legit` for genuine ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scenario {
    /// Genuine.
    Legit,
    /// Handbook scenario 1: an amount above 220.
    LargeAmount,
    /// Handbook scenario 2: a terminal compromised for 28 days.
    CompromisedTerminal,
    /// Handbook scenario 3: a compromised card, a third of its transactions over 14 days with
    /// amounts five times larger.
    CompromisedCard,
    /// Orders: an account taken over; orders at night to a new address, unlike billing, with
    /// resellable items, in bursts.
    AccountTakeover,
    /// Orders: a fresh account placing several orders of resellable items to a drop address
    /// shared with other fraudsters.
    NewAccountDropAddress,
}

pub use crate::payment_method::PaymentMethod;

/// Order fields beyond the payment itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OrderInfo {
    /// Age of the customer's account in days when the order was placed (>= 0).
    pub account_age_days: f64,
    /// The shipping address's identifier (addresses are shared between customers only by
    /// coincidence or by fraud rings).
    pub shipping_address: u32,
    /// The customer never shipped to this address before.
    pub shipping_new: bool,
    /// The shipping address differs from the billing address.
    pub shipping_differs_billing: bool,
    /// Number of items in the order (>= 1).
    pub item_count: u32,
    /// Share of the order's value in easily resold items (electronics, gift cards), in [0, 1].
    pub resale_share: f64,
    /// How it was paid.
    pub payment_method: PaymentMethod,
}

/// One transaction: a payment at a terminal (handbook mode) or an order (orders mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Its identifier, unique in a data set, increasing with time.
    pub id: u64,
    /// Seconds since the start of the simulation (day `time / 86400`).
    pub time: i64,
    /// The paying customer (a card in the handbook's words).
    pub customer: u32,
    /// The terminal (or merchant) where it was paid.
    pub terminal: u32,
    /// The amount, >= 0.
    pub amount: f64,
    /// Order fields; `None` in handbook mode.
    pub order: Option<OrderInfo>,
    /// Whether it is fraud (the label; at scoring time only the past's labels are used).
    pub fraud: bool,
    /// Why it is fraud.
    pub scenario: Scenario,
}

impl Transaction {
    /// Day number since the start of the simulation.
    pub fn day(&self) -> i64 {
        self.time.div_euclid(DAY)
    }
}
