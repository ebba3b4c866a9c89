//! Saga traces in the shop's own words: the order saga's events as the AI service records them
//! turned into `saga-ai`'s [`SagaTrace`]s ([`trace_of`]), and `saga-ai`'s generated traces
//! translated into the same words ([`in_shop_words`]), so a detector trained on generated
//! sagas reads the shop's.
//!
//! A trace holds, in the order they were sent:
//!
//! | event | step | status |
//! |-------|------|--------|
//! | `order.placed`, `order.confirmed` | `order` | completed, no duration |
//! | a step's command (`fraud.check.requested`, `inventory.reserve.requested`, `payment.requested`, `shipping.schedule.requested`) | the saga's step | by its reply: completed or failed; timed out when the command is sent again or compensation starts before a reply; pending while none |
//! | a compensation (`inventory.release.requested`, `payment.refund.requested`) | the step it undoes | compensated on its reply |
//! | `order.cancelled`, `order.failed` | `order` | compensated, no duration |
//!
//! A step's duration runs from its command to its reply, as the events' timestamps say.

use chrono::{DateTime, TimeDelta, Utc};
use saga_ai::anomaly::{SagaTrace, TraceEvent, TraceStatus};

use crate::order_saga::{events, steps};

/// The step of the `order.*` events.
pub const ORDER_STEP: &str = "order";

/// Every event type a trace is built from (what the AI service records per saga).
pub const TRACE_EVENTS: [&str; 20] = [
    events::ORDER_PLACED,
    events::ORDER_CONFIRMED,
    events::ORDER_CANCELLED,
    events::ORDER_FAILED,
    events::FRAUD_CHECK_REQUESTED,
    events::FRAUD_CHECK_PASSED,
    events::FRAUD_CHECK_FAILED,
    events::INVENTORY_RESERVE_REQUESTED,
    events::INVENTORY_RESERVED,
    events::INVENTORY_RESERVE_FAILED,
    events::INVENTORY_RELEASE_REQUESTED,
    events::INVENTORY_RELEASED,
    events::PAYMENT_REQUESTED,
    events::PAYMENT_PROCESSED,
    events::PAYMENT_FAILED,
    events::PAYMENT_REFUND_REQUESTED,
    events::PAYMENT_REFUNDED,
    events::SHIPPING_SCHEDULE_REQUESTED,
    events::SHIPPING_SCHEDULED,
    events::SHIPPING_FAILED,
];

/// What an event is to a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `order.placed`, `order.confirmed`: a point in the saga.
    Milestone,
    /// `order.cancelled`, `order.failed`: the end of a saga that did not go through.
    End,
    /// A step's command (`compensation`: it undoes the step).
    Command {
        step: &'static str,
        compensation: bool,
    },
    /// A reply to `command`.
    Reply {
        command: &'static str,
        status: TraceStatus,
    },
}

fn role(event_type: &str) -> Option<Role> {
    use events::*;
    let command = |step| Role::Command {
        step,
        compensation: false,
    };
    let compensation = |step| Role::Command {
        step,
        compensation: true,
    };
    let reply = |command, status| Role::Reply { command, status };
    Some(match event_type {
        ORDER_PLACED | ORDER_CONFIRMED => Role::Milestone,
        ORDER_CANCELLED | ORDER_FAILED => Role::End,
        FRAUD_CHECK_REQUESTED => command(steps::FRAUD_SCREENING),
        INVENTORY_RESERVE_REQUESTED => command(steps::RESERVE_INVENTORY),
        PAYMENT_REQUESTED => command(steps::PROCESS_PAYMENT),
        SHIPPING_SCHEDULE_REQUESTED => command(steps::SCHEDULE_SHIPPING),
        INVENTORY_RELEASE_REQUESTED => compensation(steps::RESERVE_INVENTORY),
        PAYMENT_REFUND_REQUESTED => compensation(steps::PROCESS_PAYMENT),
        FRAUD_CHECK_PASSED => reply(FRAUD_CHECK_REQUESTED, TraceStatus::Completed),
        FRAUD_CHECK_FAILED => reply(FRAUD_CHECK_REQUESTED, TraceStatus::Failed),
        INVENTORY_RESERVED => reply(INVENTORY_RESERVE_REQUESTED, TraceStatus::Completed),
        INVENTORY_RESERVE_FAILED => reply(INVENTORY_RESERVE_REQUESTED, TraceStatus::Failed),
        PAYMENT_PROCESSED => reply(PAYMENT_REQUESTED, TraceStatus::Completed),
        PAYMENT_FAILED => reply(PAYMENT_REQUESTED, TraceStatus::Failed),
        SHIPPING_SCHEDULED => reply(SHIPPING_SCHEDULE_REQUESTED, TraceStatus::Completed),
        SHIPPING_FAILED => reply(SHIPPING_SCHEDULE_REQUESTED, TraceStatus::Failed),
        INVENTORY_RELEASED => reply(INVENTORY_RELEASE_REQUESTED, TraceStatus::Compensated),
        PAYMENT_REFUNDED => reply(PAYMENT_REFUND_REQUESTED, TraceStatus::Compensated),
        _ => return None,
    })
}

/// Where an event stands in the saga, to order events of the same instant: the order service
/// sends a step's command and the order's status event in one transaction, with one timestamp.
fn position(event_type: &str) -> u8 {
    use events::*;
    match event_type {
        ORDER_PLACED => 0,
        FRAUD_CHECK_REQUESTED => 1,
        FRAUD_CHECK_PASSED | FRAUD_CHECK_FAILED => 2,
        INVENTORY_RESERVE_REQUESTED => 3,
        INVENTORY_RESERVED | INVENTORY_RESERVE_FAILED => 4,
        PAYMENT_REQUESTED => 5,
        PAYMENT_PROCESSED | PAYMENT_FAILED => 6,
        ORDER_CONFIRMED => 7,
        SHIPPING_SCHEDULE_REQUESTED => 8,
        SHIPPING_SCHEDULED | SHIPPING_FAILED => 9,
        PAYMENT_REFUND_REQUESTED => 10,
        PAYMENT_REFUNDED => 11,
        INVENTORY_RELEASE_REQUESTED => 12,
        INVENTORY_RELEASED => 13,
        _ => 14,
    }
}

/// One event of a saga as the AI service recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Its type (`payment.requested`).
    pub event_type: String,
    /// When it was created (the envelope's timestamp).
    pub at: DateTime<Utc>,
}

fn ms(d: TimeDelta) -> f64 {
    d.num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1000.0)
        .max(0.0)
}

/// The trace of saga `id` from its recorded events (any order; types a trace does not read are
/// skipped), as it stood at `now`. `None` when no event of the saga is one a trace reads.
pub fn trace_of(id: &str, recorded: &[RecordedEvent], now: DateTime<Utc>) -> Option<SagaTrace> {
    let mut sorted: Vec<(&RecordedEvent, Role)> = recorded
        .iter()
        .filter_map(|e| role(&e.event_type).map(|r| (e, r)))
        .collect();
    sorted.sort_by(|(a, _), (b, _)| {
        a.at.cmp(&b.at)
            .then_with(|| position(&a.event_type).cmp(&position(&b.event_type)))
    });
    let started_at = sorted.first()?.0.at;
    let offset = |at: DateTime<Utc>| ms(at - started_at);
    // Each event with whether it still waits for its reply.
    let mut events: Vec<(TraceEvent, bool)> = Vec::new();
    // Forward commands still waiting when `at` shows they will get no reply: timed out.
    let time_out = |events: &mut Vec<(TraceEvent, bool)>, at: f64, only: Option<&str>| {
        for (e, open) in events.iter_mut() {
            let forward = e.status == TraceStatus::Pending && e.step != ORDER_STEP;
            let compensation = e.event_type == events::INVENTORY_RELEASE_REQUESTED
                || e.event_type == events::PAYMENT_REFUND_REQUESTED;
            if *open && forward && !compensation && only.is_none_or(|t| t == e.event_type) {
                *open = false;
                e.status = TraceStatus::TimedOut;
                e.duration_ms = (at - e.start_ms).max(0.0);
            }
        }
    };
    for (e, role) in sorted {
        let at = offset(e.at);
        let point = |status| TraceEvent {
            step: ORDER_STEP.to_owned(),
            event_type: e.event_type.clone(),
            status,
            start_ms: at,
            duration_ms: 0.0,
        };
        match role {
            Role::Milestone => events.push((point(TraceStatus::Completed), false)),
            Role::End => {
                time_out(&mut events, at, None);
                events.push((point(TraceStatus::Compensated), false));
            }
            Role::Command { step, compensation } => {
                // Sent again before a reply: the first attempt passed its deadline. A
                // compensation starting: whatever still waited will get no reply.
                let only = (!compensation).then_some(e.event_type.as_str());
                time_out(&mut events, at, only);
                events.push((
                    TraceEvent {
                        step: step.to_owned(),
                        event_type: e.event_type.clone(),
                        status: TraceStatus::Pending,
                        start_ms: at,
                        duration_ms: 0.0,
                    },
                    true,
                ));
            }
            Role::Reply { command, status } => {
                let open = events
                    .iter()
                    .rposition(|(ev, open)| *open && ev.event_type == command);
                match open {
                    Some(i) => {
                        let (ev, open) = &mut events[i];
                        *open = false;
                        ev.status = status;
                        ev.duration_ms = (at - ev.start_ms).max(0.0);
                    }
                    // A reply whose command was not seen (or a second reply): as it came.
                    None => events.push((
                        TraceEvent {
                            step: role_step(command).to_owned(),
                            event_type: command.to_owned(),
                            status,
                            start_ms: at,
                            duration_ms: 0.0,
                        },
                        false,
                    )),
                }
            }
        }
    }
    let taken = offset(now);
    Some(SagaTrace {
        id: id.to_owned(),
        started_at,
        events: events
            .into_iter()
            .map(|(mut e, open)| {
                if open {
                    e.duration_ms = (taken - e.start_ms).max(0.0);
                }
                e
            })
            .collect(),
    })
}

fn role_step(command: &str) -> &'static str {
    match role(command) {
        Some(Role::Command { step, .. }) => step,
        _ => ORDER_STEP,
    }
}

/// `saga-ai`'s generated order-saga trace in the shop's words: its commands become the
/// shop's events and steps (`ChargePayment` is `payment.requested` of `process_payment`), the
/// order's own `PlaceOrder`, `ConfirmOrder` and `CancelOrder` become `order.placed`,
/// `order.confirmed` and `order.cancelled` (or `order.failed` when nothing was compensated:
/// the shop's order fails when nothing was taken). Statuses and times are kept; a command the
/// shop does not know is kept as it is.
pub fn in_shop_words(generated: &SagaTrace) -> SagaTrace {
    let compensated = generated
        .events
        .iter()
        .any(|e| matches!(e.event_type.as_str(), "ReleaseInventory" | "RefundPayment"));
    let rename = |command: &str| -> Option<(&'static str, &'static str)> {
        Some(match command {
            "PlaceOrder" => (ORDER_STEP, events::ORDER_PLACED),
            "ConfirmOrder" => (ORDER_STEP, events::ORDER_CONFIRMED),
            "CancelOrder" if compensated => (ORDER_STEP, events::ORDER_CANCELLED),
            "CancelOrder" => (ORDER_STEP, events::ORDER_FAILED),
            "CheckFraud" => (steps::FRAUD_SCREENING, events::FRAUD_CHECK_REQUESTED),
            "ReserveInventory" => (
                steps::RESERVE_INVENTORY,
                events::INVENTORY_RESERVE_REQUESTED,
            ),
            "ReleaseInventory" => (
                steps::RESERVE_INVENTORY,
                events::INVENTORY_RELEASE_REQUESTED,
            ),
            "ChargePayment" => (steps::PROCESS_PAYMENT, events::PAYMENT_REQUESTED),
            "RefundPayment" => (steps::PROCESS_PAYMENT, events::PAYMENT_REFUND_REQUESTED),
            "ScheduleShipping" => (
                steps::SCHEDULE_SHIPPING,
                events::SHIPPING_SCHEDULE_REQUESTED,
            ),
            _ => return None,
        })
    };
    SagaTrace {
        id: generated.id.clone(),
        started_at: generated.started_at,
        events: generated
            .events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Some((step, event_type)) = rename(&e.event_type) {
                    e.step = step.to_owned();
                    e.event_type = event_type.to_owned();
                    if step == ORDER_STEP {
                        // The shop's order events are instants, not steps with a reply.
                        e.duration_ms = 0.0;
                    }
                }
                e
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_735_689_600_000 + ms).unwrap()
    }

    fn rec(list: &[(&str, i64)]) -> Vec<RecordedEvent> {
        list.iter()
            .map(|(t, ms)| RecordedEvent {
                event_type: (*t).to_owned(),
                at: at(*ms),
            })
            .collect()
    }

    fn symbols(t: &SagaTrace) -> Vec<String> {
        t.events.iter().map(TraceEvent::symbol).collect()
    }

    #[test]
    fn a_happy_saga_reads_step_by_step_whatever_the_arrival_order() {
        let mut events = rec(&[
            (ORDER_PLACED, 0),
            (FRAUD_CHECK_REQUESTED, 0),
            (FRAUD_CHECK_PASSED, 4),
            (INVENTORY_RESERVE_REQUESTED, 5),
            (INVENTORY_RESERVED, 7),
            (PAYMENT_REQUESTED, 8),
            (PAYMENT_PROCESSED, 60),
            // the command and the status event of one transition share their timestamp
            (SHIPPING_SCHEDULE_REQUESTED, 61),
            (ORDER_CONFIRMED, 61),
            (SHIPPING_SCHEDULED, 70),
            ("shipping.delivered", 900),
        ]);
        events.reverse();
        let t = trace_of("o-1", &events, at(1000)).unwrap();
        assert_eq!(
            symbols(&t),
            [
                "order.placed:completed",
                "fraud.check.requested:completed",
                "inventory.reserve.requested:completed",
                "payment.requested:completed",
                "order.confirmed:completed",
                "shipping.schedule.requested:completed",
            ]
        );
        assert_eq!(t.started_at, at(0));
        let payment = &t.events[3];
        assert_eq!(payment.step, steps::PROCESS_PAYMENT);
        assert_eq!((payment.start_ms, payment.duration_ms), (8.0, 52.0));
    }

    #[test]
    fn retries_time_out_compensations_close_and_waiting_steps_are_pending() {
        let events = rec(&[
            (ORDER_PLACED, 0),
            (FRAUD_CHECK_REQUESTED, 0),
            (FRAUD_CHECK_PASSED, 3),
            (INVENTORY_RESERVE_REQUESTED, 4),
            (INVENTORY_RESERVED, 6),
            (PAYMENT_REQUESTED, 7),
            // no reply before the deadline: sent again, then given up
            (PAYMENT_REQUESTED, 30_007),
            (INVENTORY_RELEASE_REQUESTED, 60_007),
            (INVENTORY_RELEASED, 60_010),
            (ORDER_CANCELLED, 60_010),
        ]);
        let t = trace_of("o-2", &events, at(70_000)).unwrap();
        assert_eq!(
            symbols(&t),
            [
                "order.placed:completed",
                "fraud.check.requested:completed",
                "inventory.reserve.requested:completed",
                "payment.requested:timed_out",
                "payment.requested:timed_out",
                "inventory.release.requested:compensated",
                "order.cancelled:compensated",
            ]
        );
        assert_eq!(t.events[3].duration_ms, 30_000.0);
        assert_eq!(t.events[4].duration_ms, 30_000.0);

        let running = rec(&[(ORDER_PLACED, 0), (FRAUD_CHECK_REQUESTED, 0)]);
        let t = trace_of("o-3", &running, at(250)).unwrap();
        assert_eq!(t.events[1].status, TraceStatus::Pending);
        assert_eq!(t.events[1].duration_ms, 250.0);
        assert!(trace_of("o-4", &rec(&[("shipping.delivered", 0)]), at(1)).is_none());
    }

    #[test]
    fn generated_sagas_speak_the_shops_words() {
        let ev = |step: &str, cmd: &str, status, start_ms| TraceEvent {
            step: step.into(),
            event_type: cmd.into(),
            status,
            start_ms,
            duration_ms: 10.0,
        };
        use TraceStatus::*;
        let failed_payment = SagaTrace {
            id: "g-1".into(),
            started_at: at(0),
            events: vec![
                ev("order", "PlaceOrder", Completed, 0.0),
                ev("fraud_check", "CheckFraud", Completed, 20.0),
                ev("inventory", "ReserveInventory", Completed, 40.0),
                ev("payment", "ChargePayment", Failed, 60.0),
                ev("inventory", "ReleaseInventory", Compensated, 80.0),
                ev("order", "CancelOrder", Compensated, 100.0),
            ],
        };
        let t = in_shop_words(&failed_payment);
        assert_eq!(
            symbols(&t),
            [
                "order.placed:completed",
                "fraud.check.requested:completed",
                "inventory.reserve.requested:completed",
                "payment.requested:failed",
                "inventory.release.requested:compensated",
                "order.cancelled:compensated",
            ]
        );
        assert_eq!(t.events[3].step, steps::PROCESS_PAYMENT);
        assert_eq!(t.events[0].duration_ms, 0.0);
        assert_eq!(t.events[3].duration_ms, 10.0);
        let fraud = SagaTrace {
            events: vec![
                ev("order", "PlaceOrder", Completed, 0.0),
                ev("fraud_check", "CheckFraud", Failed, 20.0),
                ev("order", "CancelOrder", Compensated, 40.0),
            ],
            ..failed_payment
        };
        assert_eq!(
            symbols(&in_shop_words(&fraud)).last().unwrap(),
            "order.failed:compensated"
        );
    }
}
