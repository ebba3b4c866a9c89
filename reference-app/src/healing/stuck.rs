//! The stuck-saga policy's records: what the order service's deadline sweeper decided for a
//! saga step past its deadline, and how it went.
//!
//! The saga engine decides (a step past its deadline is sent again once, then the saga
//! compensates: decisions 0003 and 0012); [`records`] compares a saga before and after one of
//! its transitions and says what to record:
//!
//! | the transition | record |
//! |----------------|--------|
//! | a deadline sent a step again | action `retry_step` |
//! | a deadline gave the step up | action `compensate`; the retry's outcome ("no reply to the retry either") |
//! | a reply to a step that had been sent again | the retry's outcome (the step answered, and how) |
//! | the saga ended after giving a step up | the compensation's outcome (compensated or failed, and the order's status) |
//!
//! Actions and outcomes have ids derived from the saga, the step and the attempt, so the
//! order service can name an action it recorded earlier without storing its id, and a
//! transition applied twice (after a crash) records nothing twice.

use chrono::{DateTime, Utc};
use saga_ai::healing::HealingAction;
use saga_core::Envelope;
use saga_core::saga::{SagaDefinition, SagaInstance, SagaStatus, StepState, StepStatus};
use uuid::Uuid;

pub use crate::healing::HealingOutcome;
use crate::order_saga::order_status;

/// What one transition of a saga makes the policy record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StuckRecords {
    /// New actions, with the event id each is recorded under.
    pub actions: Vec<(Uuid, HealingAction)>,
    /// Outcomes of actions recorded by earlier transitions.
    pub outcomes: Vec<HealingOutcome>,
}

impl StuckRecords {
    /// Whether there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.outcomes.is_empty()
    }
}

/// The event id of the record of the retry that sent `step` of saga `saga_id` as `attempt`.
pub fn retry_id(saga_id: Uuid, step: &str, attempt: usize) -> Uuid {
    Uuid::new_v5(
        &saga_id,
        format!("stuck-saga:{step}:retry:{attempt}").as_bytes(),
    )
}

/// The event id of the record of giving `step` of saga `saga_id` up (the saga compensates).
pub fn compensate_id(saga_id: Uuid, step: &str) -> Uuid {
    Uuid::new_v5(&saga_id, format!("stuck-saga:{step}:compensate").as_bytes())
}

/// A step sent but never answered: given up at its deadline (it is then compensated like a
/// completed step, so its status moves on; a completed step keeps its reply as `result`).
fn given_up(step: &StepState) -> bool {
    !step.command_ids.is_empty()
        && step.result.is_none()
        && matches!(
            step.status,
            StepStatus::TimedOut
                | StepStatus::Compensating
                | StepStatus::Compensated
                | StepStatus::CompensationFailed
        )
}

/// How a saga that gave a step up ended, in words.
fn ending(after: &SagaInstance) -> String {
    let status = serde_json::to_value(order_status(after))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match after.status {
        SagaStatus::Compensated => {
            format!("compensated: every step taken was undone, order {status}")
        }
        SagaStatus::Failed => format!(
            "compensation incomplete: a compensation was not confirmed, order {status} (an operator must look)"
        ),
        other => format!("saga {}, order {status}", other.as_str()),
    }
}

/// The records of the transition of `before` into `after` at `now`; `reply` is the reply it
/// applied (none for a passed deadline).
pub fn records(
    definition: &SagaDefinition,
    before: &SagaInstance,
    after: &SagaInstance,
    reply: Option<&Envelope>,
    now: DateTime<Utc>,
) -> StuckRecords {
    let mut out = StuckRecords::default();
    let subject = after.aggregate_id.clone();
    let overdue = before
        .deadline
        .map_or(chrono::Duration::zero(), |d| now - d);
    for (i, (was, is)) in before.steps.iter().zip(&after.steps).enumerate() {
        let Some(step) = definition.steps().get(i).map(|s| s.name.as_str()) else {
            continue;
        };
        if was.status != StepStatus::Started {
            continue;
        }
        let sent = is.command_ids.len();
        if reply.is_none() && sent > was.command_ids.len() {
            // Its outcome comes with the step's reply or its next deadline.
            let action = HealingAction::stuck_saga(subject.clone(), step, overdue, true, now);
            out.actions.push((retry_id(after.id, step, sent), action));
        } else if reply.is_none() && given_up(is) {
            out.actions.push((
                compensate_id(after.id, step),
                HealingAction::stuck_saga(subject.clone(), step, overdue, false, now),
            ));
            if sent > 1 {
                out.outcomes.push(HealingOutcome {
                    action_id: retry_id(after.id, step, sent),
                    outcome: format!("no reply to attempt {sent} either: the saga compensates"),
                    at: now,
                });
            }
        } else if let Some(reply) = reply
            && sent > 1
            && matches!(is.status, StepStatus::Completed | StepStatus::Failed)
        {
            let went = if is.status == StepStatus::Completed {
                "the saga went on"
            } else {
                "it failed, the saga compensates"
            };
            out.outcomes.push(HealingOutcome {
                action_id: retry_id(after.id, step, sent),
                outcome: format!(
                    "the step answered after the retry ({}): {went}",
                    reply.event_type
                ),
                at: now,
            });
        }
    }
    if !before.is_terminal() && after.is_terminal() {
        let steps = definition.steps().iter().zip(&after.steps);
        for (def, _) in steps.filter(|(_, s)| given_up(s)) {
            let id = compensate_id(after.id, &def.name);
            let outcome = ending(after);
            match out.actions.iter_mut().find(|(a, _)| *a == id) {
                Some((_, action)) => action.outcome = Some(outcome),
                None => out.outcomes.push(HealingOutcome {
                    action_id: id,
                    outcome,
                    at: now,
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use saga_ai::healing::ActionKind;
    use saga_core::saga::SagaInput;
    use saga_core::saga::transition::{self, Transition};

    use super::*;
    use crate::order_saga::{definition, events};

    struct Run {
        def: SagaDefinition,
        t: Transition,
        now: DateTime<Utc>,
    }

    impl Run {
        fn new() -> Self {
            let def = definition(Duration::from_secs(1));
            let now = "2026-11-25T12:00:00Z".parse().unwrap();
            let t = transition::start(&def, Uuid::now_v7(), "order-1", serde_json::json!({}), now);
            Self { def, t, now }
        }

        /// Replies `event_type` to the latest command; the records of that transition.
        fn reply(&mut self, event_type: &str) -> StuckRecords {
            self.now += chrono::Duration::milliseconds(10);
            let command = self.t.commands.last().expect("a command to answer");
            let env = Envelope::new(event_type, "order-1", serde_json::json!({}))
                .caused_by(&command.to_envelope(self.now));
            self.step(SagaInput::Reply(&env), Some(&env))
        }

        /// Lets the deadline pass; the records of that transition.
        fn deadline(&mut self) -> StuckRecords {
            self.now += chrono::Duration::seconds(3);
            self.step(SagaInput::DeadlineExpired, None)
        }

        fn step(&mut self, input: SagaInput<'_>, reply: Option<&Envelope>) -> StuckRecords {
            let before = self.t.instance.clone();
            let next = transition::handle(&self.def, &before, input, self.now).unwrap();
            let out = records(&self.def, &before, &next.instance, reply, self.now);
            // The compensation's reply is awaited with the commands of this transition.
            if !next.commands.is_empty() {
                self.t = next;
            } else {
                self.t.instance = next.instance;
            }
            out
        }
    }

    #[test]
    fn a_step_that_never_answers_is_retried_once_then_compensated() {
        let mut run = Run::new();
        assert!(run.reply(events::FRAUD_CHECK_PASSED).is_empty());
        assert!(run.reply(events::INVENTORY_RESERVED).is_empty());
        let saga = run.t.instance.id;

        let retry = run.deadline();
        assert_eq!(retry.actions.len(), 1, "{retry:?}");
        let (id, action) = &retry.actions[0];
        assert_eq!(*id, retry_id(saga, "process_payment", 2));
        assert_eq!(action.kind, ActionKind::RetryStep);
        assert_eq!(action.subject, "order-1");
        assert!(action.observed.contains("process_payment"), "{action:?}");
        assert!(action.observed.contains("2000 ms"), "{action:?}");
        assert!(action.outcome.is_none());

        let gave_up = run.deadline();
        assert_eq!(gave_up.actions.len(), 1, "{gave_up:?}");
        let (id, action) = &gave_up.actions[0];
        assert_eq!(*id, compensate_id(saga, "process_payment"));
        assert_eq!(action.kind, ActionKind::Compensate);
        assert!(action.outcome.is_none(), "the saga still compensates");
        assert_eq!(gave_up.outcomes.len(), 1);
        assert_eq!(
            gave_up.outcomes[0].action_id,
            retry_id(saga, "process_payment", 2)
        );
        assert!(
            gave_up.outcomes[0].outcome.contains("no reply"),
            "{gave_up:?}"
        );

        // The refund, then the release: the saga ends compensated, the order cancelled.
        assert!(run.reply(events::PAYMENT_REFUNDED).is_empty());
        let ended = run.reply(events::INVENTORY_RELEASED);
        assert_eq!(run.t.instance.status, SagaStatus::Compensated);
        assert!(ended.actions.is_empty());
        assert_eq!(ended.outcomes.len(), 1, "{ended:?}");
        assert_eq!(
            ended.outcomes[0].action_id,
            compensate_id(saga, "process_payment")
        );
        assert!(
            ended.outcomes[0].outcome.contains("compensated"),
            "{ended:?}"
        );
        assert!(ended.outcomes[0].outcome.contains("cancelled"), "{ended:?}");
    }

    #[test]
    fn a_step_answering_after_its_retry_completes_the_retry_record() {
        let mut run = Run::new();
        let saga = run.t.instance.id;
        let retry = run.deadline();
        assert_eq!(retry.actions[0].0, retry_id(saga, "fraud_screening", 2));
        let answered = run.reply(events::FRAUD_CHECK_PASSED);
        assert!(answered.actions.is_empty());
        assert_eq!(answered.outcomes.len(), 1, "{answered:?}");
        assert!(
            answered.outcomes[0].outcome.contains("fraud.check.passed"),
            "{answered:?}"
        );
        assert!(
            answered.outcomes[0].outcome.contains("went on"),
            "{answered:?}"
        );
        // Later replies of a step answered at once record nothing.
        assert!(run.reply(events::INVENTORY_RESERVED).is_empty());
    }

    #[test]
    fn giving_up_the_first_step_ends_the_saga_in_the_same_transition() {
        let mut run = Run::new();
        run.deadline();
        let gave_up = run.deadline();
        assert!(run.t.instance.is_terminal());
        assert_eq!(gave_up.actions.len(), 1, "{gave_up:?}");
        let outcome = gave_up.actions[0].1.outcome.as_deref().unwrap_or("");
        assert!(outcome.contains("order failed"), "{outcome}");
        assert_eq!(gave_up.outcomes.len(), 1, "the retry's outcome");
    }
}
