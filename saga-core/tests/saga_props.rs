//! Property tests of the saga core: for any interleaving of success and failure replies,
//! duplicated replies, late replies and deadline expiries, every saga ends in a terminal state,
//! each completed (or timed-out) step's compensation is emitted exactly once and in reverse
//! order, and nothing is emitted after a terminal state.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use saga_core::Envelope;
use saga_core::saga::transition::{self, CommandKind, Outcome, SagaCommand, SagaInput};
use saga_core::saga::{SagaDefinition, SagaInstance, SagaStatus, StepDefinition, StepStatus};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct StepShape {
    compensation: Option<bool>, // Some(true): confirmed by a reply; Some(false): fire-and-forget
    retries: u32,
}

fn definition(shapes: &[StepShape]) -> SagaDefinition {
    let steps = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut step = StepDefinition::new(
                format!("step{i}"),
                format!("s{i}.requested"),
                format!("s{i}.succeeded"),
                format!("s{i}.failed"),
            )
            .deadline(DEADLINE)
            .retries_on_deadline(s.retries);
            if let Some(confirmed) = s.compensation {
                let reply = format!("s{i}.undone");
                step = step
                    .compensate_with(format!("s{i}.undo"), confirmed.then_some(reply.as_str()))
                    .compensation_deadline(DEADLINE);
            }
            step
        })
        .collect();
    SagaDefinition::new("prop", steps).expect("valid definition")
}

#[derive(Debug, Clone)]
enum Action {
    /// Reply to the n-th command emitted so far (any, old ones too): success or failure.
    Reply { pick: usize, success: bool },
    /// Deliver again a reply delivered before.
    Duplicate { pick: usize },
    /// Let the deadline pass.
    Expire,
    /// A deadline input before anything is due.
    EarlyExpire,
    /// A reply to no command of the saga.
    Unrelated,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (any::<usize>(), prop::bool::weighted(0.7)).prop_map(|(pick, success)| Action::Reply { pick, success }),
        2 => any::<usize>().prop_map(|pick| Action::Duplicate { pick }),
        2 => Just(Action::Expire),
        1 => Just(Action::EarlyExpire),
        1 => Just(Action::Unrelated),
    ]
}

fn shape() -> impl Strategy<Value = StepShape> {
    (prop::option::of(any::<bool>()), 0u32..3).prop_map(|(compensation, retries)| StepShape {
        compensation,
        retries,
    })
}

/// Drives one saga and checks every transition as it goes.
struct Harness {
    def: SagaDefinition,
    instance: SagaInstance,
    now: DateTime<Utc>,
    commands: Vec<SagaCommand>,
    replies: Vec<Envelope>,
    ended: bool,
}

impl Harness {
    fn new(def: SagaDefinition) -> Self {
        let now = DateTime::from_timestamp(1_735_689_600, 0).unwrap();
        let t = transition::start(
            &def,
            Uuid::now_v7(),
            "agg-1",
            serde_json::json!({"n": 1}),
            now,
        );
        Self {
            def,
            instance: t.instance,
            now,
            commands: t.commands,
            replies: Vec::new(),
            ended: false,
        }
    }

    fn feed(&mut self, input: SagaInput<'_>) {
        let t = transition::handle(&self.def, &self.instance, input, self.now)
            .expect("matching definition");
        if self.ended {
            assert!(
                t.commands.is_empty(),
                "emitted {:?} after the saga ended",
                t.commands
            );
            assert!(matches!(t.outcome, Outcome::Ignored(_)));
        }
        match t.outcome {
            Outcome::Applied => assert_eq!(t.instance.version, self.instance.version + 1),
            Outcome::Ignored(_) => {
                assert_eq!(
                    t.instance, self.instance,
                    "an ignored input changed the instance"
                );
                assert!(t.commands.is_empty());
            }
        }
        self.commands.extend(t.commands);
        self.instance = t.instance;
        self.ended = self.instance.is_terminal();
    }

    fn reply_to(&mut self, cmd: &SagaCommand, success: bool) {
        let i: usize = cmd.step.trim_start_matches("step").parse().unwrap();
        let event_type = match (cmd.kind, success) {
            (CommandKind::Forward, true) => format!("s{i}.succeeded"),
            (CommandKind::Forward, false) => format!("s{i}.failed"),
            (CommandKind::Compensation, _) => format!("s{i}.undone"),
        };
        let reply = Envelope::new(event_type, "agg-1", serde_json::json!({"reason": "prop"}))
            .caused_by(&cmd.to_envelope(self.now));
        self.replies.push(reply.clone());
        self.feed(SagaInput::Reply(&reply));
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::Reply { pick, success } => {
                let cmd = self.commands[pick % self.commands.len()].clone();
                self.reply_to(&cmd, *success);
            }
            Action::Duplicate { pick } => {
                if !self.replies.is_empty() {
                    let reply = self.replies[pick % self.replies.len()].clone();
                    self.feed(SagaInput::Reply(&reply));
                }
            }
            Action::Expire => {
                self.now +=
                    chrono::Duration::from_std(DEADLINE).unwrap() + chrono::Duration::seconds(1);
                self.feed(SagaInput::DeadlineExpired);
            }
            Action::EarlyExpire => {
                let before = self.instance.clone();
                self.feed(SagaInput::DeadlineExpired);
                if before.deadline.is_none_or(|d| d > self.now) {
                    assert_eq!(
                        before, self.instance,
                        "a deadline that was not due changed the saga"
                    );
                }
            }
            Action::Unrelated => {
                let stray = Envelope::new("s0.succeeded", "agg-1", serde_json::json!({}))
                    .caused_by(&Envelope::new("x", "y", serde_json::json!({})));
                self.feed(SagaInput::Reply(&stray));
            }
        }
    }

    /// Only the passing of time from here on: the saga must end by itself.
    fn drain(&mut self) {
        for _ in 0..100 {
            if self.ended {
                return;
            }
            self.apply(&Action::Expire);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_saga_ends_and_compensates_exactly_once_in_reverse(
        shapes in prop::collection::vec(shape(), 1..6),
        actions in prop::collection::vec(action(), 0..40),
    ) {
        let mut h = Harness::new(definition(&shapes));
        for a in &actions {
            h.apply(a);
        }
        h.drain();
        prop_assert!(h.instance.is_terminal(), "saga did not end: {:?}", h.instance.status);

        // Compensations: at most once per step, in strictly decreasing step order.
        let compensations: Vec<usize> = h.commands.iter()
            .filter(|c| c.kind == CommandKind::Compensation)
            .map(|c| c.step.trim_start_matches("step").parse().unwrap())
            .collect();
        let mut counts = HashMap::new();
        for s in &compensations {
            *counts.entry(*s).or_insert(0) += 1;
        }
        prop_assert!(counts.values().all(|&n| n == 1), "a compensation was sent twice: {compensations:?}");
        prop_assert!(compensations.windows(2).all(|w| w[0] > w[1]), "not in reverse order: {compensations:?}");

        match h.instance.status {
            SagaStatus::Completed => {
                prop_assert!(compensations.is_empty());
                prop_assert!(h.instance.steps.iter().all(|s| s.status == StepStatus::Completed));
            }
            SagaStatus::Compensated | SagaStatus::Failed => {
                for (i, (state, shape)) in h.instance.steps.iter().zip(&shapes).enumerate() {
                    // No completed or timed-out step with a compensation is left un-undone.
                    if shape.compensation.is_some() {
                        prop_assert!(
                            !matches!(state.status, StepStatus::Completed | StepStatus::TimedOut | StepStatus::Compensating | StepStatus::Started),
                            "step {i} left {:?}", state.status
                        );
                    }
                    let undone = matches!(state.status, StepStatus::Compensated | StepStatus::CompensationFailed);
                    prop_assert_eq!(undone, counts.contains_key(&i), "step {} status {:?}", i, state.status);
                }
                let any_failed = h.instance.steps.iter().any(|s| s.status == StepStatus::CompensationFailed);
                prop_assert_eq!(h.instance.status == SagaStatus::Failed, any_failed);
                prop_assert!(h.instance.failure.is_some());
            }
            other => prop_assert!(false, "not terminal: {other:?}"),
        }
        prop_assert_eq!(h.instance.deadline, None);
    }

    #[test]
    fn transitions_are_deterministic(
        shapes in prop::collection::vec(shape(), 1..5),
        success in any::<bool>(),
    ) {
        let def = definition(&shapes);
        let now = Utc::now();
        let id = Uuid::now_v7();
        let a = transition::start(&def, id, "agg", serde_json::json!({}), now);
        let b = transition::start(&def, id, "agg", serde_json::json!({}), now);
        prop_assert_eq!(&a, &b);
        let reply_type = if success { "s0.succeeded" } else { "s0.failed" };
        let reply = Envelope::new(reply_type, "agg", serde_json::json!({}))
            .caused_by(&a.commands[0].to_envelope(now));
        let x = transition::handle(&def, &a.instance, SagaInput::Reply(&reply), now).unwrap();
        let y = transition::handle(&def, &b.instance, SagaInput::Reply(&reply), now).unwrap();
        prop_assert_eq!(x, y);
    }
}
