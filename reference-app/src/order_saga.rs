//! The order saga of the seed, as a saga-core definition, and how its progress reads as the
//! seed's order statuses.
//!
//! ```text
//! order.placed -> fraud screening -> reserve inventory -> process payment -> (confirmed)
//!              -> schedule shipping -> completed
//! failure after a step: refund payment, release inventory (reverse order), order cancelled
//! failure before any effect (fraud, no stock): order failed
//! ```

use std::time::Duration;

use saga_core::saga::{SagaDefinition, SagaInstance, SagaStatus, StepDefinition, StepStatus};

use crate::api::order::OrderStatus;

/// Event and command names, as the seed names its events where it has one.
pub mod events {
    /// An order was accepted.
    pub const ORDER_PLACED: &str = "order.placed";
    /// Paid; shipping is being scheduled.
    pub const ORDER_CONFIRMED: &str = "order.confirmed";
    /// Undone after a later step failed.
    pub const ORDER_CANCELLED: &str = "order.cancelled";
    /// Rejected before anything was taken.
    pub const ORDER_FAILED: &str = "order.failed";
    /// Ask the AI service to screen the order.
    pub const FRAUD_CHECK_REQUESTED: &str = "fraud.check.requested";
    /// The screening passed.
    pub const FRAUD_CHECK_PASSED: &str = "fraud.check.passed";
    /// The score was above the threshold.
    pub const FRAUD_CHECK_FAILED: &str = "fraud.check.failed";
    /// Reserve the order's items.
    pub const INVENTORY_RESERVE_REQUESTED: &str = "inventory.reserve.requested";
    /// Reserved.
    pub const INVENTORY_RESERVED: &str = "inventory.reserved";
    /// Not enough stock (or an unknown product).
    pub const INVENTORY_RESERVE_FAILED: &str = "inventory.reserve.failed";
    /// Release a reservation (compensation).
    pub const INVENTORY_RELEASE_REQUESTED: &str = "inventory.release.requested";
    /// Released.
    pub const INVENTORY_RELEASED: &str = "inventory.released";
    /// Charge the customer.
    pub const PAYMENT_REQUESTED: &str = "payment.requested";
    /// Charged.
    pub const PAYMENT_PROCESSED: &str = "payment.processed";
    /// Declined.
    pub const PAYMENT_FAILED: &str = "payment.failed";
    /// Refund a charge (compensation).
    pub const PAYMENT_REFUND_REQUESTED: &str = "payment.refund.requested";
    /// Refunded.
    pub const PAYMENT_REFUNDED: &str = "payment.refunded";
    /// Schedule the delivery.
    pub const SHIPPING_SCHEDULE_REQUESTED: &str = "shipping.schedule.requested";
    /// Scheduled (a tracking number exists).
    pub const SHIPPING_SCHEDULED: &str = "shipping.scheduled";
    /// Could not be scheduled.
    pub const SHIPPING_FAILED: &str = "shipping.failed";
    /// Handed to the carrier.
    pub const SHIPPING_DISPATCHED: &str = "shipping.dispatched";
    /// Arrived.
    pub const SHIPPING_DELIVERED: &str = "shipping.delivered";
}

/// Step names.
pub mod steps {
    /// The AI service's fraud screening.
    pub const FRAUD_SCREENING: &str = "fraud_screening";
    /// The inventory service's reservation.
    pub const RESERVE_INVENTORY: &str = "reserve_inventory";
    /// The payment service's charge.
    pub const PROCESS_PAYMENT: &str = "process_payment";
    /// The shipping service's scheduling.
    pub const SCHEDULE_SHIPPING: &str = "schedule_shipping";
}

/// The order saga, every step with `deadline` (a step past it is retried once, then undone).
pub fn definition(deadline: Duration) -> SagaDefinition {
    definition_with_retries(deadline, 1)
}

/// The order saga, every step with `deadline`; a step past it is sent again `retries` times,
/// then undone (the stuck-saga policy retries once; with the policy off, no retry).
pub fn definition_with_retries(deadline: Duration, retries: u32) -> SagaDefinition {
    use events::*;
    let step = |name, command, ok, failed| {
        StepDefinition::new(name, command, ok, failed)
            .deadline(deadline)
            .retries_on_deadline(retries)
    };
    let steps = vec![
        step(
            steps::FRAUD_SCREENING,
            FRAUD_CHECK_REQUESTED,
            FRAUD_CHECK_PASSED,
            FRAUD_CHECK_FAILED,
        ),
        step(
            steps::RESERVE_INVENTORY,
            INVENTORY_RESERVE_REQUESTED,
            INVENTORY_RESERVED,
            INVENTORY_RESERVE_FAILED,
        )
        .compensate_with(INVENTORY_RELEASE_REQUESTED, Some(INVENTORY_RELEASED)),
        step(
            steps::PROCESS_PAYMENT,
            PAYMENT_REQUESTED,
            PAYMENT_PROCESSED,
            PAYMENT_FAILED,
        )
        .compensate_with(PAYMENT_REFUND_REQUESTED, Some(PAYMENT_REFUNDED)),
        step(
            steps::SCHEDULE_SHIPPING,
            SHIPPING_SCHEDULE_REQUESTED,
            SHIPPING_SCHEDULED,
            SHIPPING_FAILED,
        ),
    ];
    match SagaDefinition::new("order", steps) {
        Ok(def) => def,
        // The steps above are fixed and valid; the unit test below builds them.
        Err(e) => unreachable!("the order saga definition is invalid: {e}"),
    }
}

/// The seed's order status for a saga's state.
pub fn order_status(saga: &SagaInstance) -> OrderStatus {
    let step = |i: usize| saga.steps.get(i).map(|s| s.status);
    match saga.status {
        SagaStatus::Running => match (step(1), step(2)) {
            (Some(StepStatus::Completed), Some(StepStatus::Started)) => {
                OrderStatus::PaymentProcessing
            }
            (Some(StepStatus::Completed), Some(StepStatus::Completed)) => OrderStatus::Confirmed,
            (Some(StepStatus::Completed), _) => OrderStatus::InventoryReserved,
            _ => OrderStatus::Pending,
        },
        SagaStatus::Completed => OrderStatus::Confirmed,
        SagaStatus::Compensating | SagaStatus::Compensated | SagaStatus::Failed => {
            // Cancelled if anything had been taken and given back; failed if nothing was.
            let took_something = saga.steps.iter().any(|s| {
                matches!(
                    s.status,
                    StepStatus::Compensating
                        | StepStatus::Compensated
                        | StepStatus::CompensationFailed
                )
            });
            if took_something {
                OrderStatus::Cancelled
            } else {
                OrderStatus::Failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_core::Envelope;
    use saga_core::saga::{SagaInput, transition};

    fn run(replies: &[&str]) -> SagaInstance {
        let def = definition(Duration::from_secs(30));
        let now = chrono::Utc::now();
        let mut t = transition::start(
            &def,
            uuid::Uuid::now_v7(),
            "o-1",
            serde_json::json!({}),
            now,
        );
        for reply in replies {
            let env = Envelope::new(*reply, "o-1", serde_json::json!({}))
                .caused_by(&t.commands[0].to_envelope(now));
            t = transition::handle(&def, &t.instance, SagaInput::Reply(&env), now).unwrap();
        }
        t.instance
    }

    #[test]
    fn statuses_follow_the_seed() {
        use events::*;
        assert_eq!(order_status(&run(&[])), OrderStatus::Pending);
        assert_eq!(
            order_status(&run(&[FRAUD_CHECK_PASSED])),
            OrderStatus::Pending
        );
        assert_eq!(
            order_status(&run(&[FRAUD_CHECK_PASSED, INVENTORY_RESERVED])),
            OrderStatus::PaymentProcessing
        );
        assert_eq!(
            order_status(&run(&[
                FRAUD_CHECK_PASSED,
                INVENTORY_RESERVED,
                PAYMENT_PROCESSED
            ])),
            OrderStatus::Confirmed
        );
        assert_eq!(
            order_status(&run(&[
                FRAUD_CHECK_PASSED,
                INVENTORY_RESERVED,
                PAYMENT_PROCESSED,
                SHIPPING_SCHEDULED
            ])),
            OrderStatus::Confirmed
        );
    }

    #[test]
    fn failures_read_as_failed_or_cancelled() {
        use events::*;
        assert_eq!(
            order_status(&run(&[FRAUD_CHECK_FAILED])),
            OrderStatus::Failed
        );
        assert_eq!(
            order_status(&run(&[FRAUD_CHECK_PASSED, INVENTORY_RESERVE_FAILED])),
            OrderStatus::Failed
        );
        let declined = run(&[FRAUD_CHECK_PASSED, INVENTORY_RESERVED, PAYMENT_FAILED]);
        assert_eq!(order_status(&declined), OrderStatus::Cancelled);
        let released = run(&[
            FRAUD_CHECK_PASSED,
            INVENTORY_RESERVED,
            PAYMENT_FAILED,
            INVENTORY_RELEASED,
        ]);
        assert_eq!(released.status, SagaStatus::Compensated);
        assert_eq!(order_status(&released), OrderStatus::Cancelled);
    }
}
