//! The order service's counts over a period (`GET /orders/stats`) and the id-prefix search of
//! `GET /orders?id_prefix=`: queries over every order, not over a page of the latest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::money::Money;
use crate::api::order::OrderStatus;
use crate::api::problem::{FieldError, Problem};

/// `GET /orders/stats?from=&to=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
}

impl StatsQuery {
    /// The period, refused when it ends before it starts.
    pub(crate) fn period(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), Problem> {
        if self.to < self.from {
            return Err(Problem::validation(vec![FieldError::new(
                "to",
                format!("must not be before `from` ({})", self.from.to_rfc3339()),
            )]));
        }
        Ok((self.from, self.to))
    }
}

/// `GET /orders/stats`: the orders placed in `[from, to)`, every one of them counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderStatsResponse {
    /// Start of the period (included).
    pub from: DateTime<Utc>,
    /// End of the period (excluded).
    pub to: DateTime<Utc>,
    /// Orders placed in the period.
    pub orders: u64,
    /// Of them, per status now (`confirmed`, `cancelled`, ...; statuses with none left out).
    pub by_status: BTreeMap<String, u64>,
    /// Of them, confirmed (paid; shipped or on the way).
    pub succeeded: u64,
    /// Of them, cancelled or failed.
    pub failed: u64,
    /// Of them, still running.
    pub in_progress: u64,
    /// Sum of the confirmed orders' totals.
    pub revenue: Money,
}

impl OrderStatsResponse {
    /// The figures from `(status, count, sum of totals in cents)` rows.
    pub fn from_rows(from: DateTime<Utc>, to: DateTime<Utc>, rows: &[(String, i64, i64)]) -> Self {
        let mut out = Self {
            from,
            to,
            orders: 0,
            by_status: BTreeMap::new(),
            succeeded: 0,
            failed: 0,
            in_progress: 0,
            revenue: Money::from_cents(0),
        };
        for (status, count, cents) in rows {
            let count = u64::try_from(*count).unwrap_or(0);
            out.orders += count;
            *out.by_status.entry(status.clone()).or_default() += count;
            let parsed: Option<OrderStatus> =
                serde_json::from_value(serde_json::Value::String(status.clone())).ok();
            match parsed {
                Some(OrderStatus::Confirmed) => {
                    out.succeeded += count;
                    out.revenue = Money::from_cents(out.revenue.cents() + cents);
                }
                Some(OrderStatus::Cancelled | OrderStatus::Failed) => out.failed += count,
                _ => out.in_progress += count,
            }
        }
        out
    }
}

/// The `LIKE` pattern of an id prefix, in the stored (hyphenated) form: `0190a3b27c1d` and
/// `0190a3b2-7c1d` both give `0190a3b2-7c1d%`. `None` when it is not the start of a UUID
/// (other characters, too long, hyphens out of place).
pub fn prefix_pattern(prefix: &str) -> Option<String> {
    let lower = prefix.trim().to_ascii_lowercase();
    if lower.is_empty() || !lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    let hyphenated = if lower.contains('-') {
        lower
    } else {
        let mut out = String::with_capacity(lower.len() + 4);
        for (i, c) in lower.chars().enumerate() {
            if [8, 12, 16, 20].contains(&i) {
                out.push('-');
            }
            out.push(c);
        }
        out
    };
    // Hyphens only where a UUID has them, and no longer than one.
    let shaped = hyphenated.len() <= 36
        && hyphenated
            .char_indices()
            .all(|(i, c)| (c == '-') == [8, 13, 18, 23].contains(&i));
    shaped.then(|| format!("{hyphenated}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_become_patterns_of_the_hyphenated_form() {
        assert_eq!(prefix_pattern("0190A3B2").as_deref(), Some("0190a3b2%"));
        assert_eq!(
            prefix_pattern("0190a3b27c1d").as_deref(),
            Some("0190a3b2-7c1d%")
        );
        assert_eq!(
            prefix_pattern("0190a3b2-7c1d").as_deref(),
            Some("0190a3b2-7c1d%")
        );
        for bad in ["", "0190a3b2%", "019_", "0190-a3b2", "x", &"a".repeat(33)] {
            assert_eq!(prefix_pattern(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_fold_into_counts_and_the_revenue_of_confirmed_orders() {
        let at = Utc::now();
        let rows = [
            ("confirmed".to_owned(), 1200, 2_500_000),
            ("cancelled".to_owned(), 7, 999),
            ("failed".to_owned(), 3, 5),
            ("payment_processing".to_owned(), 2, 40),
        ];
        let s = OrderStatsResponse::from_rows(at, at, &rows);
        assert_eq!(
            (s.orders, s.succeeded, s.failed, s.in_progress),
            (1212, 1200, 10, 2)
        );
        assert_eq!(s.revenue.cents(), 2_500_000);
        assert_eq!(s.by_status["cancelled"], 7);
    }
}
