//! Plain-text answers from the tools' data: short sentences that state what the data says and
//! nothing else.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use saga_core::dead_letter::DeadLetter;
use uuid::Uuid;

use super::ids::IdRef;
use super::period::Period;
use super::tools::{
    CustomerRecommendations, DemandOutlook, OrderInfo, OrderStats, Outcome, StockInfo,
};
use crate::anomaly::AnomalyReport;

/// How many items a list answer names before saying how many more there are.
const LIST_SHOWN: usize = 5;

/// `123456` cents -> `1,234.56 USD`.
pub(crate) fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02} {currency}", abs % 100)
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn more(total: usize) -> String {
    if total > LIST_SHOWN {
        format!(" ... and {} more.", total - LIST_SHOWN)
    } else {
        String::new()
    }
}

pub(crate) fn order_status(o: &OrderInfo) -> String {
    let mut s = format!(
        "Order {} is {} (placed {}, total {}).",
        o.id,
        o.status.replace('_', " "),
        when(o.created_at),
        money(o.total_cents, &o.currency)
    );
    match (&o.outcome, &o.failure) {
        (Outcome::Failed, Some(f)) => {
            let _ = write!(s, " It failed: {}.", f.reason);
        }
        (Outcome::InProgress, _) => {
            if let Some(last) = o.history.last() {
                let _ = write!(s, " Last event: {} at {}.", last.event, when(last.at));
            }
        }
        _ => {}
    }
    s
}

pub(crate) fn why_failed(o: &OrderInfo) -> String {
    match (&o.outcome, &o.failure) {
        (Outcome::Failed, Some(f)) => {
            let mut s = match &f.step {
                Some(step) => format!("Order {} failed at step {step}: {}.", o.id, f.reason),
                None => format!("Order {} failed: {}.", o.id, f.reason),
            };
            if f.compensations.is_empty() {
                s.push_str(" Nothing had to be undone.");
            } else {
                let _ = write!(s, " Undone by: {}.", f.compensations.join(", "));
            }
            s
        }
        (Outcome::Failed, None) => format!(
            "Order {} is {}, but no reason was recorded.",
            o.id,
            o.status.replace('_', " ")
        ),
        _ => format!(
            "Order {} has not failed: it is {}.",
            o.id,
            o.status.replace('_', " ")
        ),
    }
}

fn default_note(period: &Period, defaulted: bool) -> &'static str {
    if defaulted && period.label == "today" {
        " (no period given: today, UTC)"
    } else {
        ""
    }
}

pub(crate) fn order_count(period: &Period, defaulted: bool, s: &OrderStats) -> String {
    format!(
        "{} {}{}: {} completed, {} failed, {} in progress.",
        plural(s.orders, "order", "orders"),
        period.label,
        default_note(period, defaulted),
        s.succeeded,
        s.failed,
        s.in_progress
    )
}

pub(crate) fn revenue(period: &Period, defaulted: bool, s: &OrderStats) -> String {
    let mut text = format!(
        "Revenue {}{}: {} from {}.",
        period.label,
        default_note(period, defaulted),
        money(s.revenue_cents, &s.currency),
        plural(s.succeeded, "completed order", "completed orders")
    );
    if s.succeeded > 0 {
        let avg = s.revenue_cents / i64::try_from(s.succeeded).unwrap_or(i64::MAX);
        let _ = write!(text, " Average order: {}.", money(avg, &s.currency));
    }
    text
}

pub(crate) fn stock(s: &StockInfo) -> String {
    let state = if s.available <= 0 {
        " It is out of stock."
    } else {
        ""
    };
    format!(
        "{}: {} available, {} reserved by running orders.{state}",
        s.product.name, s.available, s.reserved
    )
}

pub(crate) fn forecast(f: &DemandOutlook) -> String {
    let mut s = format!(
        "Expected demand for {} over the next {}: {:.0} units ({:.0}% interval {:.0} to {:.0}; {}).",
        f.product.name,
        plural(u64::from(f.days), "day", "days"),
        f.expected,
        f.level * 100.0,
        f.lower.max(0.0),
        f.upper,
        f.method
    );
    if let Some(risk) = &f.stockout {
        let _ = write!(
            s,
            " Chance of running out within the lead time: {:.0}%",
            risk.probability * 100.0
        );
        match risk.stockout_day {
            Some(day) => {
                let _ = write!(s, ", most likely by day {day}");
            }
            None => s.push_str(", stock lasts the horizon"),
        }
        if risk.reorder_quantity > 0.0 {
            let _ = write!(s, "; reorder {:.0} units.", risk.reorder_quantity.ceil());
        } else {
            s.push_str("; no reorder needed.");
        }
    }
    s
}

pub(crate) fn recommendations(r: &CustomerRecommendations) -> String {
    if r.items.is_empty() {
        return format!("I have no recommendations for customer {}.", r.customer_id);
    }
    let names: Vec<&str> = r.items.iter().map(|i| i.product.name.as_str()).collect();
    let basis = if r.personalised {
        "from their purchases"
    } else {
        "no purchase history, so these are the most popular products"
    };
    format!(
        "Top picks for customer {} ({basis}): {}.",
        r.customer_id,
        names.join(", ")
    )
}

pub(crate) fn anomalies(reports: &[AnomalyReport]) -> String {
    if reports.is_empty() {
        return "No saga looks abnormal right now.".to_owned();
    }
    let mut s = format!(
        "{} abnormal:",
        plural(reports.len() as u64, "saga looks", "sagas look")
    );
    for r in reports.iter().take(LIST_SHOWN) {
        match r.top() {
            Some(a) => {
                let _ = write!(
                    s,
                    "\n- saga {} ({}, score {:.1}): {}",
                    r.saga_id, a.kind, r.score, a.explanation
                );
            }
            None => {
                let _ = write!(s, "\n- saga {} (score {:.1})", r.saga_id, r.score);
            }
        }
    }
    s.push_str(&more(reports.len()));
    s
}

/// One line about a dead letter: what it carried, where it failed and why.
pub(crate) fn dead_letter_summary(d: &DeadLetter) -> String {
    format!(
        "{} for {} in {}, {} attempt(s): {}",
        d.envelope.event_type,
        d.envelope.aggregate_id,
        d.subscription,
        d.attempts,
        d.last_error.as_deref().unwrap_or(&d.reason)
    )
}

pub(crate) fn dead_letters(list: &[DeadLetter]) -> String {
    if list.is_empty() {
        return "There are no pending dead letters.".to_owned();
    }
    let mut s = format!(
        "{}:",
        plural(
            list.len() as u64,
            "pending dead letter",
            "pending dead letters"
        )
    );
    for d in list.iter().take(LIST_SHOWN) {
        let _ = write!(
            s,
            "\n- {} ({}): {}",
            d.id,
            when(d.dead_lettered_at),
            dead_letter_summary(d)
        );
    }
    s.push_str(&more(list.len()));
    s
}

pub(crate) fn ambiguous(what: &str, id: &IdRef, candidates: &[Uuid]) -> String {
    let shown: Vec<String> = candidates
        .iter()
        .take(LIST_SHOWN)
        .map(ToString::to_string)
        .collect();
    format!(
        "{id} matches several {what}s: {}. Give more of the id.",
        shown.join(", ")
    )
}

/// Questions to suggest, naming `product` (a product of the catalog) when there is one.
pub(crate) fn examples(product: Option<&str>) -> Vec<String> {
    let product = product.unwrap_or("Desk Lamp");
    vec![
        "What is the status of order 0190a3b2?".to_owned(),
        "Why did order 0190a3b2 fail?".to_owned(),
        "How many orders yesterday?".to_owned(),
        "Revenue in the last 7 days".to_owned(),
        format!("How many {product} are in stock?"),
        format!("Forecast for {product} over the next 2 weeks"),
        "Recommendations for customer 0190c0de".to_owned(),
        "Any anomalies right now?".to_owned(),
        "List dead letters".to_owned(),
        "Replay dead letter 0190de01".to_owned(),
    ]
}

fn bullet_list(items: &[String]) -> String {
    items.iter().map(|e| format!("\n- {e}")).collect()
}

pub(crate) fn help(product: Option<&str>) -> String {
    format!(
        "I answer from the system's live data: order status and why an order failed, order \
         counts and revenue over a period, stock and demand forecasts of a product, \
         recommendations for a customer, current anomalies, and dead letters (which I can \
         replay or discard once you confirm). For example:{}",
        bullet_list(&examples(product))
    )
}

pub(crate) fn unknown(product: Option<&str>) -> String {
    format!(
        "I can't answer that. I only answer from the system's live data, questions such as:{}",
        bullet_list(&examples(product))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_grouped_and_signed() {
        assert_eq!(money(123_456, "USD"), "1,234.56 USD");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(-100_000_000, "USD"), "-1,000,000.00 USD");
        assert_eq!(money(i64::MIN, "USD"), "-92,233,720,368,547,758.08 USD");
    }
}
