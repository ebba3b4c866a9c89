//! How a customer pays: shared by the fraud and payment-success models.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};

/// How the customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// A credit or debit card.
    Card,
    /// A digital wallet.
    Wallet,
    /// A bank transfer or direct debit.
    BankTransfer,
    /// Buy now, pay later.
    PayLater,
}

impl PaymentMethod {
    /// Every method, in [`index`](Self::index) order.
    pub const ALL: [PaymentMethod; 4] = [
        PaymentMethod::Card,
        PaymentMethod::Wallet,
        PaymentMethod::BankTransfer,
        PaymentMethod::PayLater,
    ];

    /// Position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        match self {
            PaymentMethod::Card => 0,
            PaymentMethod::Wallet => 1,
            PaymentMethod::BankTransfer => 2,
            PaymentMethod::PayLater => 3,
        }
    }

    /// Lower-case name (`card`, `wallet`, `bank_transfer`, `pay_later`).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::Wallet => "wallet",
            PaymentMethod::BankTransfer => "bank_transfer",
            PaymentMethod::PayLater => "pay_later",
        }
    }
}

impl fmt::Display for PaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentMethod {
    type Err = AiError;

    fn from_str(s: &str) -> Result<Self> {
        PaymentMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| AiError::InvalidInput(format!("unknown payment method {s:?}")))
    }
}
