//! The invariants, each a pure function of the [`Snapshot`].
//!
//! An order is judged by its saga, the authority on how it ended: `completed` (confirmed
//! and shipped), `compensated` or `failed` (the order cancelled or failed). Orders whose saga
//! has not ended are reported by [`orders_terminal`] alone; the other order invariants skip
//! them, since their effects may still be on the way.

use std::collections::{BTreeMap, HashMap};

use super::report::InvariantResult;
use super::snapshot::{Snapshot, TransactionRow};
use crate::api::money::Money;

/// How an order's saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// No saga, or not ended yet.
    Open,
    /// Completed: the order is confirmed.
    Completed,
    /// Compensated or failed: the order is cancelled or failed.
    Undone,
}

fn ending(saga_status: Option<&str>) -> Ending {
    match saga_status {
        Some("completed") => Ending::Completed,
        Some("compensated" | "failed") => Ending::Undone,
        _ => Ending::Open,
    }
}

/// The orders whose saga has ended, with how: (order id, ending, order status).
fn ended(s: &Snapshot) -> Vec<(&str, Ending, &str)> {
    s.orders
        .iter()
        .filter_map(|o| {
            let e = ending(s.sagas.get(&o.correlation_id).map(String::as_str));
            (e != Ending::Open).then_some((o.id.as_str(), e, o.status.as_str()))
        })
        .collect()
}

fn count_by<'a>(ids: impl Iterator<Item = &'a str>) -> HashMap<&'a str, u64> {
    let mut counts = HashMap::new();
    for id in ids {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Every invariant, in order.
pub(crate) fn all(s: &Snapshot, now_nanos: i64) -> Vec<InvariantResult> {
    vec![
        orders_terminal(s),
        stock_conserved(s),
        single_charge(s),
        refunds_match_outcome(s),
        shipments_match_outcome(s),
        one_notification_per_event(s),
        outbox_drained(s, now_nanos),
        dead_letters_have_reasons(s),
        reservations_match_orders(s),
    ]
}

/// 1. Every accepted order has a saga that has ended, and the order's status says how.
pub(crate) fn orders_terminal(s: &Snapshot) -> InvariantResult {
    let mut r = InvariantResult::new(
        "orders_terminal",
        "every order has a saga (id = its correlation id) that is completed, compensated or \
         failed, and the order's status agrees (completed: confirmed; otherwise cancelled or \
         failed)",
    );
    for o in &s.orders {
        r.checked += 1;
        let saga = s.sagas.get(&o.correlation_id);
        match (saga.map(String::as_str), ending(saga.map(String::as_str))) {
            (None, _) => r.violated(|| format!("order {}: no saga {}", o.id, o.correlation_id)),
            (Some(status), Ending::Open) => {
                r.violated(|| format!("order {}: saga {status}, not ended", o.id));
            }
            (Some(status), Ending::Completed) if o.status != "confirmed" => r.violated(|| {
                format!(
                    "order {}: saga {status} but the order is {}",
                    o.id, o.status
                )
            }),
            (Some(status), Ending::Undone) if o.status != "cancelled" && o.status != "failed" => r
                .violated(|| {
                    format!(
                        "order {}: saga {status} but the order is {}",
                        o.id, o.status
                    )
                }),
            _ => {}
        }
    }
    r
}

/// 2. Stock is conserved per product.
pub(crate) fn stock_conserved(s: &Snapshot) -> InvariantResult {
    let mut r = InvariantResult::new(
        "stock_conserved",
        "for every product, available + reserved + sold = initial stock, none of them negative",
    );
    for p in &s.products {
        r.checked += 1;
        let sum = p.available + p.reserved + p.sold;
        if sum != p.initial_stock || p.available < 0 || p.reserved < 0 || p.sold < 0 {
            r.violated(|| {
                format!(
                    "product {} ({}): available {} + reserved {} + sold {} = {sum}, initial stock {}",
                    p.name, p.id, p.available, p.reserved, p.sold, p.initial_stock
                )
            });
        }
    }
    r
}

fn charged(t: &TransactionRow) -> bool {
    t.status == "processed" || t.status == "refunded"
}

/// 3. No order is charged twice, and no refund is made without a charge that went through.
pub(crate) fn single_charge(s: &Snapshot) -> InvariantResult {
    let mut r = InvariantResult::new(
        "single_charge",
        "at most one transaction per order; every refund is of a charge that went through \
         (processed or refunded), for the amount charged",
    );
    let mut charges: HashMap<&str, &TransactionRow> = HashMap::new();
    for (order, n) in count_by(s.transactions.iter().map(|t| t.order_id.as_str())) {
        if n > 1 {
            r.violated(|| format!("order {order}: {n} transactions"));
        }
    }
    for t in &s.transactions {
        r.checked += 1;
        charges.entry(t.order_id.as_str()).or_insert(t);
    }
    for refund in &s.refunds {
        r.checked += 1;
        match charges.get(refund.order_id.as_str()) {
            None => r.violated(|| format!("order {}: a refund without a charge", refund.order_id)),
            Some(t) if !charged(t) => r.violated(|| {
                format!(
                    "order {}: a refund of a charge that is {}",
                    refund.order_id, t.status
                )
            }),
            Some(t) if t.amount_cents != refund.amount_cents => r.violated(|| {
                format!(
                    "order {}: {} refunded, {} charged",
                    refund.order_id,
                    Money::from_cents(refund.amount_cents),
                    Money::from_cents(t.amount_cents)
                )
            }),
            Some(_) => {}
        }
    }
    r
}

/// 4. A charged order that was undone is refunded exactly once; a confirmed one is charged
///    and never refunded.
pub(crate) fn refunds_match_outcome(s: &Snapshot) -> InvariantResult {
    let mut r = InvariantResult::new(
        "refunds_match_outcome",
        "every ended order that was charged and then cancelled or failed is refunded exactly \
         once (transaction refunded, one refund); every confirmed order has a processed charge \
         and no refund",
    );
    let mut charges: HashMap<&str, &TransactionRow> = HashMap::new();
    for t in &s.transactions {
        charges.entry(t.order_id.as_str()).or_insert(t);
    }
    let refunds = count_by(s.refunds.iter().map(|f| f.order_id.as_str()));
    for (order, how, _) in ended(s) {
        let charge = charges.get(order);
        let n = refunds.get(order).copied().unwrap_or(0);
        match how {
            Ending::Completed => {
                r.checked += 1;
                match charge {
                    Some(t) if t.status == "processed" && n == 0 => {}
                    Some(t) if t.status == "processed" || t.status == "refunded" => {
                        r.violated(|| {
                            format!(
                                "confirmed order {order}: charge {}, {n} refund(s)",
                                t.status
                            )
                        })
                    }
                    Some(t) => {
                        r.violated(|| format!("confirmed order {order}: charge {}", t.status));
                    }
                    None => r.violated(|| format!("confirmed order {order}: no charge")),
                }
            }
            Ending::Undone => {
                let Some(t) = charge.filter(|t| charged(t)) else {
                    // Never charged: a refund of it is `single_charge`'s to report.
                    continue;
                };
                r.checked += 1;
                if t.status != "refunded" || n != 1 {
                    r.violated(|| {
                        format!("undone order {order}: charge {}, {n} refund(s)", t.status)
                    });
                }
            }
            Ending::Open => {}
        }
    }
    r
}

/// 5. A completed order has exactly one shipment; an undone one has none (a shipping
///    failure records no shipment: it is what undid the order).
pub(crate) fn shipments_match_outcome(s: &Snapshot) -> InvariantResult {
    let mut r = InvariantResult::new(
        "shipments_match_outcome",
        "every order whose saga completed has exactly one shipment; no cancelled or failed \
         order, and no unknown order, has one",
    );
    let shipments = count_by(s.shipments.iter().map(String::as_str));
    for (order, how, status) in ended(s) {
        r.checked += 1;
        let n = shipments.get(order).copied().unwrap_or(0);
        match how {
            Ending::Completed if n != 1 => {
                r.violated(|| format!("confirmed order {order}: {n} shipment(s)"));
            }
            Ending::Undone if n != 0 => {
                r.violated(|| format!("{status} order {order}: {n} shipment(s)"));
            }
            _ => {}
        }
    }
    let known: HashMap<&str, ()> = s.orders.iter().map(|o| (o.id.as_str(), ())).collect();
    for order in shipments.keys().filter(|o| !known.contains_key(*o)) {
        r.violated(|| format!("a shipment for unknown order {order}"));
    }
    r
}

/// 6. Every customer-facing event produced exactly one notification.
///
/// Events still in the analytics log are matched one by one. The log's retention removes old
/// events but the event counts keep them, so per event type the notifications whose event is
/// no longer logged must be exactly as many as the events pruned.
pub(crate) fn one_notification_per_event(s: &Snapshot) -> InvariantResult {
    let mut r = InvariantResult::new(
        "one_notification_per_event",
        "every customer-facing event in the analytics event log has exactly one notification, \
         of its type; per type, the notifications of events no longer logged (retention) are \
         as many as the events pruned",
    );
    let notified: HashMap<&str, &str> = s
        .notifications
        .iter()
        .map(|n| (n.event_id.as_str(), n.event_type.as_str()))
        .collect();
    let mut logged_by_type: BTreeMap<&str, i64> = BTreeMap::new();
    let mut logged_ids: HashMap<&str, ()> = HashMap::new();
    for e in &s.logged_notified {
        r.checked += 1;
        *logged_by_type.entry(e.event_type.as_str()).or_insert(0) += 1;
        logged_ids.insert(e.event_id.as_str(), ());
        match notified.get(e.event_id.as_str()) {
            None => r.violated(|| {
                format!(
                    "event {} ({}) has no notification",
                    e.event_id, e.event_type
                )
            }),
            Some(t) if *t != e.event_type => r.violated(|| {
                format!(
                    "event {} is {}, its notification says {t}",
                    e.event_id, e.event_type
                )
            }),
            Some(_) => {}
        }
    }
    let mut unlogged_by_type: BTreeMap<&str, i64> = BTreeMap::new();
    for n in s
        .notifications
        .iter()
        .filter(|n| !logged_ids.contains_key(n.event_id.as_str()))
    {
        *unlogged_by_type.entry(n.event_type.as_str()).or_insert(0) += 1;
    }
    let mut types: Vec<&str> = s.notified_counts.keys().map(String::as_str).collect();
    types.extend(unlogged_by_type.keys());
    types.sort_unstable();
    types.dedup();
    for t in types {
        let counted = s.notified_counts.get(t).copied().unwrap_or(0);
        let logged = logged_by_type.get(t).copied().unwrap_or(0);
        let pruned = (counted - logged).max(0);
        r.checked += u64::try_from(pruned).unwrap_or(0);
        let unlogged = unlogged_by_type.get(t).copied().unwrap_or(0);
        let off = (unlogged - pruned).unsigned_abs();
        if off > 0 {
            r.violated(|| {
                format!(
                    "{t}: {unlogged} notification(s) of events not in the log, {pruned} such \
                     event(s) pruned"
                )
            });
            r.violations += off - 1;
        }
    }
    r
}

/// 7. No outbox holds an event unpublished for longer than the lag.
pub(crate) fn outbox_drained(s: &Snapshot, now_nanos: i64) -> InvariantResult {
    let mut r = InvariantResult::new(
        "outbox_drained",
        "no service's outbox holds an event left unpublished for longer than the allowed lag",
    );
    for o in &s.outboxes {
        r.checked += u64::try_from(o.rows).unwrap_or(0);
        let stale = u64::try_from(o.stale).unwrap_or(0);
        let shown = o.stale_examples.len().min(stale as usize);
        for (seq, event_id, created) in &o.stale_examples[..shown] {
            r.violated(|| {
                format!(
                    "{} outbox: seq {seq} (event {event_id}) unpublished for {:.1} s",
                    o.service,
                    now_nanos.saturating_sub(*created) as f64 / 1e9
                )
            });
        }
        // Those beyond the examples read, counted all the same.
        r.violations += stale - shown as u64;
    }
    r
}

/// 8. Every dead letter says why it was given up on.
pub(crate) fn dead_letters_have_reasons(s: &Snapshot) -> InvariantResult {
    let mut r = InvariantResult::new(
        "dead_letters_have_reasons",
        "every dead letter has a non-empty reason",
    );
    for d in &s.dead_letters {
        r.checked += 1;
        if d.reason.trim().is_empty() {
            r.violated(|| {
                format!(
                    "dead letter {} ({}, {}) has no reason",
                    d.id, d.subscription, d.event_type
                )
            });
        }
    }
    r
}

/// 9. Reservations agree with how the orders ended.
pub(crate) fn reservations_match_orders(s: &Snapshot) -> InvariantResult {
    let mut r = InvariantResult::new(
        "reservations_match_orders",
        "every order whose saga completed has a committed reservation; a cancelled or failed \
         order's reservation, if any, is released or failed (never left reserved)",
    );
    let mut reservations: HashMap<&str, &str> = HashMap::new();
    for (order, status) in &s.reservations {
        reservations.insert(order.as_str(), status.as_str());
    }
    for (order, how, status) in ended(s) {
        r.checked += 1;
        let reservation = reservations.get(order).copied();
        match (how, reservation) {
            (Ending::Completed, Some("committed")) => {}
            (Ending::Completed, other) => r.violated(|| {
                format!(
                    "confirmed order {order}: reservation {}",
                    other.unwrap_or("missing")
                )
            }),
            (Ending::Undone, None | Some("released" | "failed")) => {}
            (Ending::Undone, Some(other)) => {
                r.violated(|| format!("{status} order {order}: reservation {other}"));
            }
            (Ending::Open, _) => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::{
        DeadLetterRow, EventRef, OrderRow, OutboxFigures, ProductRow, RefundRow,
    };
    use super::*;
    use crate::topology::Service;

    fn order(id: &str, status: &str) -> OrderRow {
        OrderRow {
            id: id.into(),
            status: status.into(),
            correlation_id: format!("saga-{id}"),
        }
    }

    fn tx(order: &str, status: &str) -> TransactionRow {
        TransactionRow {
            order_id: order.into(),
            status: status.into(),
            amount_cents: 1000,
        }
    }

    fn ev(id: &str, t: &str) -> EventRef {
        EventRef {
            event_id: id.into(),
            event_type: t.into(),
        }
    }

    /// A consistent snapshot: o1 confirmed and shipped, o2 cancelled after a charge (refunded,
    /// released), o3 failed for want of stock.
    fn healthy() -> Snapshot {
        Snapshot {
            orders: vec![
                order("o1", "confirmed"),
                order("o2", "cancelled"),
                order("o3", "failed"),
            ],
            sagas: [
                ("saga-o1", "completed"),
                ("saga-o2", "compensated"),
                ("saga-o3", "compensated"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
            products: vec![ProductRow {
                id: "p".into(),
                name: "P".into(),
                available: 7,
                reserved: 0,
                sold: 3,
                initial_stock: 10,
            }],
            reservations: vec![
                ("o1".into(), "committed".into()),
                ("o2".into(), "released".into()),
                ("o3".into(), "failed".into()),
            ],
            transactions: vec![tx("o1", "processed"), tx("o2", "refunded")],
            refunds: vec![RefundRow {
                order_id: "o2".into(),
                amount_cents: 1000,
            }],
            shipments: vec!["o1".into()],
            notifications: vec![
                ev("e1", "order.placed"),
                ev("e2", "order.placed"),
                ev("e0", "order.placed"),
            ],
            logged_notified: vec![ev("e1", "order.placed"), ev("e2", "order.placed")],
            // e0 was pruned from the log; the counts still have it.
            notified_counts: [("order.placed".to_owned(), 3)].into_iter().collect(),
            outboxes: vec![OutboxFigures {
                service: Service::Order,
                rows: 4,
                stale: 0,
                stale_examples: Vec::new(),
            }],
            dead_letters: vec![DeadLetterRow {
                id: "d".into(),
                subscription: "ai".into(),
                event_type: "fraud.check.requested".into(),
                reason: "permanent".into(),
            }],
        }
    }

    fn violated(s: &Snapshot) -> Vec<String> {
        all(s, 0)
            .into_iter()
            .filter(|r| r.violations > 0)
            .map(|r| r.name)
            .collect()
    }

    #[test]
    fn a_consistent_snapshot_breaks_nothing_and_checks_every_invariant() {
        let s = healthy();
        let results = all(&s, 0);
        assert_eq!(results.len(), 9);
        for r in &results {
            assert_eq!(r.violations, 0, "{r:?}");
            assert!(r.checked > 0, "{r:?}");
        }
        assert_eq!(results[5].checked, 3, "two logged events and one pruned");
    }

    #[test]
    fn each_break_is_caught_by_its_invariant_alone() {
        type Break = Box<dyn Fn(&mut Snapshot)>;
        let cases: Vec<(&str, Break)> = vec![
            (
                "orders_terminal",
                Box::new(|s| {
                    s.sagas.insert("saga-o1".into(), "running".into());
                }),
            ),
            (
                "stock_conserved",
                Box::new(|s| s.products[0].available += 1),
            ),
            (
                "single_charge",
                Box::new(|s| {
                    s.refunds.push(RefundRow {
                        order_id: "o3".into(),
                        amount_cents: 5,
                    })
                }),
            ),
            (
                "refunds_match_outcome",
                Box::new(|s| {
                    s.refunds.push(RefundRow {
                        order_id: "o1".into(),
                        amount_cents: 1000,
                    })
                }),
            ),
            (
                "shipments_match_outcome",
                Box::new(|s| s.shipments.push("o2".into())),
            ),
            (
                "one_notification_per_event",
                Box::new(|s| {
                    s.notifications.remove(1);
                }),
            ),
            (
                "one_notification_per_event",
                Box::new(|s| s.notifications.push(ev("e9", "order.placed"))),
            ),
            (
                "outbox_drained",
                Box::new(|s| {
                    s.outboxes[0].stale = 1;
                    s.outboxes[0].stale_examples = vec![(1, "e".into(), -10_000_000_000)];
                }),
            ),
            (
                "dead_letters_have_reasons",
                Box::new(|s| s.dead_letters[0].reason = " ".into()),
            ),
            (
                "reservations_match_orders",
                Box::new(|s| s.reservations[1].1 = "reserved".into()),
            ),
        ];
        for (name, break_it) in cases {
            let mut s = healthy();
            break_it(&mut s);
            assert_eq!(violated(&s), vec![name.to_owned()], "breaking {name}");
        }
    }

    #[test]
    fn open_orders_are_only_reported_as_not_ended() {
        let mut s = healthy();
        s.sagas.insert("saga-o2".into(), "compensating".into());
        s.reservations[1].1 = "reserved".into();
        s.transactions[1].status = "processed".into();
        s.refunds.clear();
        assert_eq!(violated(&s), vec!["orders_terminal".to_owned()]);
    }

    #[test]
    fn a_stale_outbox_row_reads_with_its_age() {
        let mut s = healthy();
        s.outboxes[0].stale = 2;
        s.outboxes[0].stale_examples = vec![(7, "e7".into(), 1_000_000_000)];
        let r = outbox_drained(&s, 11_000_000_000);
        assert_eq!(r.violations, 2);
        assert_eq!(
            r.examples[0],
            "order outbox: seq 7 (event e7) unpublished for 10.0 s"
        );
    }
}
