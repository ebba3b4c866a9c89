//! The saga core, scenario by scenario: given a definition and replies, then these commands,
//! statuses and log lines.

use std::time::Duration;

use chrono::{DateTime, Utc};
use saga_core::Envelope;
use saga_core::saga::transition::{self, IgnoreReason, Outcome, SagaInput, Transition};
use saga_core::saga::{
    LogStatus, SagaDefinition, SagaInstance, SagaStatus, StepDefinition, StepStatus, visualize,
};
use uuid::Uuid;

fn order_saga() -> SagaDefinition {
    SagaDefinition::new(
        "order",
        vec![
            StepDefinition::new(
                "reserve_inventory",
                "inventory.reserve.requested",
                "inventory.reserved",
                "inventory.reserve.failed",
            )
            .compensate_with("inventory.release.requested", Some("inventory.released"))
            .deadline(Duration::from_secs(30)),
            StepDefinition::new(
                "process_payment",
                "payment.requested",
                "payment.processed",
                "payment.failed",
            )
            .compensate_with("payment.refund.requested", Some("payment.refunded"))
            .deadline(Duration::from_secs(30))
            .retries_on_deadline(1),
            StepDefinition::new(
                "schedule_shipping",
                "shipping.schedule.requested",
                "shipping.scheduled",
                "shipping.failed",
            )
            .deadline(Duration::from_secs(30)),
        ],
    )
    .unwrap()
}

struct Given {
    def: SagaDefinition,
    now: DateTime<Utc>,
    last: Transition,
}

impl Given {
    fn started() -> Self {
        let def = order_saga();
        let now = DateTime::from_timestamp(1_735_689_600, 0).unwrap();
        let last = transition::start(
            &def,
            Uuid::now_v7(),
            "order-1",
            serde_json::json!({"total": 5000}),
            now,
        );
        Self { def, now, last }
    }

    fn instance(&self) -> &SagaInstance {
        &self.last.instance
    }

    /// A reply of `event_type` to the latest command of the given kind.
    fn reply(&mut self, event_type: &str) -> Envelope {
        let cmd = self
            .last
            .commands
            .last()
            .expect("a command to reply to")
            .clone();
        let reply = Envelope::new(
            event_type,
            "order-1",
            serde_json::json!({"reason": "card declined"}),
        )
        .caused_by(&cmd.to_envelope(self.now));
        self.feed_reply(&reply);
        reply
    }

    fn feed_reply(&mut self, reply: &Envelope) {
        self.last = transition::handle(
            &self.def,
            self.instance(),
            SagaInput::Reply(reply),
            self.now,
        )
        .unwrap();
    }

    fn pass_deadline(&mut self) {
        self.now += chrono::Duration::seconds(31);
        self.last = transition::handle(
            &self.def,
            self.instance(),
            SagaInput::DeadlineExpired,
            self.now,
        )
        .unwrap();
    }

    fn command_types(&self) -> Vec<&str> {
        self.last
            .commands
            .iter()
            .map(|c| c.event_type.as_str())
            .collect()
    }
}

#[test]
fn happy_path_completes_and_logs_each_step() {
    let mut g = Given::started();
    assert_eq!(g.command_types(), ["inventory.reserve.requested"]);
    g.reply("inventory.reserved");
    assert_eq!(g.command_types(), ["payment.requested"]);
    g.reply("payment.processed");
    g.reply("shipping.scheduled");
    assert_eq!(g.instance().status, SagaStatus::Completed);
    assert_eq!(g.instance().version, 3);
    assert_eq!(g.instance().deadline, None);
    // each step keeps its success reply's payload
    assert_eq!(
        g.instance().steps[1].result.as_deref(),
        Some(&serde_json::json!({"reason": "card declined"}))
    );
}

#[test]
fn payment_failure_releases_inventory_then_ends_compensated() {
    let mut g = Given::started();
    g.reply("inventory.reserved");
    g.reply("payment.failed");
    assert_eq!(g.instance().status, SagaStatus::Compensating);
    assert_eq!(g.command_types(), ["inventory.release.requested"]);
    assert_eq!(
        g.instance().failure.as_deref(),
        Some("step `process_payment` failed: card declined")
    );
    let statuses: Vec<_> = g.last.log.iter().map(|l| l.status).collect();
    assert_eq!(statuses, [LogStatus::Failed, LogStatus::Compensating]);
    g.reply("inventory.released");
    assert_eq!(g.instance().status, SagaStatus::Compensated);
    assert!(g.last.commands.is_empty());
}

#[test]
fn shipping_failure_undoes_payment_then_inventory() {
    let mut g = Given::started();
    g.reply("inventory.reserved");
    g.reply("payment.processed");
    g.reply("shipping.failed");
    assert_eq!(g.command_types(), ["payment.refund.requested"]);
    g.reply("payment.refunded");
    assert_eq!(g.command_types(), ["inventory.release.requested"]);
    g.reply("inventory.released");
    assert_eq!(g.instance().status, SagaStatus::Compensated);
}

#[test]
fn duplicate_reply_is_ignored_and_logged() {
    let mut g = Given::started();
    let first = g.reply("inventory.reserved");
    let version = g.instance().version;
    g.feed_reply(&first);
    assert_eq!(g.last.outcome, Outcome::Ignored(IgnoreReason::Duplicate));
    assert_eq!(g.instance().version, version);
    assert_eq!(g.last.log[0].status, LogStatus::Ignored);
}

#[test]
fn deadline_retries_then_compensates_the_uncertain_step() {
    let mut g = Given::started();
    g.reply("inventory.reserved");
    let first_payment = g.last.commands[0].clone();
    g.pass_deadline();
    // one retry on deadline: the same command again, with a new id
    assert_eq!(g.command_types(), ["payment.requested"]);
    assert_ne!(g.last.commands[0].id, first_payment.id);
    assert_eq!(g.last.commands[0].attempt, 2);
    g.pass_deadline();
    // gave up: the payment may have happened, so it is refunded, then inventory released
    assert_eq!(g.last.log[0].status, LogStatus::Failed);
    assert_eq!(g.instance().steps[1].status, StepStatus::Compensating);
    assert_eq!(g.command_types(), ["payment.refund.requested"]);
    // the payment succeeds late: logged and ignored, nothing sent
    let late = Envelope::new("payment.processed", "order-1", serde_json::json!({}))
        .caused_by(&first_payment.to_envelope(g.now));
    let refund = g.last.commands[0].clone();
    g.feed_reply(&late);
    assert_eq!(g.last.outcome, Outcome::Ignored(IgnoreReason::Late));
    assert!(g.last.commands.is_empty());
    let refunded = Envelope::new("payment.refunded", "order-1", serde_json::json!({}))
        .caused_by(&refund.to_envelope(g.now));
    g.feed_reply(&refunded);
    assert_eq!(g.command_types(), ["inventory.release.requested"]);
}

#[test]
fn reply_to_an_earlier_attempt_is_accepted() {
    let mut g = Given::started();
    g.reply("inventory.reserved");
    let first_payment = g.last.commands[0].clone();
    g.pass_deadline();
    let reply = Envelope::new("payment.processed", "order-1", serde_json::json!({}))
        .caused_by(&first_payment.to_envelope(g.now));
    g.feed_reply(&reply);
    assert_eq!(g.last.outcome, Outcome::Applied);
    assert_eq!(g.command_types(), ["shipping.schedule.requested"]);
}

#[test]
fn nothing_after_the_end() {
    let mut g = Given::started();
    g.reply("inventory.reserve.failed");
    assert_eq!(g.instance().status, SagaStatus::Compensated);
    let again = Envelope::new("inventory.reserved", "order-1", serde_json::json!({}))
        .caused_by(&Envelope::new("x", "y", serde_json::json!({})));
    g.feed_reply(&again);
    assert_eq!(g.last.outcome, Outcome::Ignored(IgnoreReason::SagaEnded));
    g.pass_deadline();
    assert_eq!(g.last.outcome, Outcome::Ignored(IgnoreReason::NotDue));
}

#[test]
fn unconfirmed_compensation_past_its_deadline_fails_the_saga() {
    let def = SagaDefinition::new(
        "s",
        vec![
            StepDefinition::new("a", "a.do", "a.done", "a.failed")
                .compensate_with("a.undo", Some("a.undone"))
                .compensation_deadline(Duration::from_secs(5)),
            StepDefinition::new("b", "b.do", "b.done", "b.failed"),
        ],
    )
    .unwrap();
    let now = Utc::now();
    let t = transition::start(&def, Uuid::now_v7(), "x", serde_json::json!({}), now);
    let ok = Envelope::new("a.done", "x", serde_json::json!({}))
        .caused_by(&t.commands[0].to_envelope(now));
    let t = transition::handle(&def, &t.instance, SagaInput::Reply(&ok), now).unwrap();
    let no = Envelope::new("b.failed", "x", serde_json::json!({}))
        .caused_by(&t.commands[0].to_envelope(now));
    let t = transition::handle(&def, &t.instance, SagaInput::Reply(&no), now).unwrap();
    assert_eq!(t.instance.status, SagaStatus::Compensating);
    let later = now + chrono::Duration::seconds(6);
    let t = transition::handle(&def, &t.instance, SagaInput::DeadlineExpired, later).unwrap();
    assert_eq!(t.instance.status, SagaStatus::Failed);
    assert_eq!(t.instance.steps[0].status, StepStatus::CompensationFailed);
}

#[test]
fn fire_and_forget_compensations_run_in_one_transition() {
    let def = SagaDefinition::new(
        "s",
        vec![
            StepDefinition::new("a", "a.do", "a.done", "a.failed").compensate_with("a.undo", None),
            StepDefinition::new("b", "b.do", "b.done", "b.failed").compensate_with("b.undo", None),
            StepDefinition::new("c", "c.do", "c.done", "c.failed"),
        ],
    )
    .unwrap();
    let now = Utc::now();
    let mut t = transition::start(&def, Uuid::now_v7(), "x", serde_json::json!({}), now);
    for reply in ["a.done", "b.done", "c.failed"] {
        let env = Envelope::new(reply, "x", serde_json::json!({}))
            .caused_by(&t.commands[0].to_envelope(now));
        t = transition::handle(&def, &t.instance, SagaInput::Reply(&env), now).unwrap();
    }
    let types: Vec<_> = t.commands.iter().map(|c| c.event_type.as_str()).collect();
    assert_eq!(types, ["b.undo", "a.undo"]);
    assert_eq!(t.instance.status, SagaStatus::Compensated);
}

#[test]
fn an_instance_of_another_definition_is_a_typed_error() {
    let g = Given::started();
    let other =
        SagaDefinition::new("other", vec![StepDefinition::new("a", "a", "b", "c")]).unwrap();
    let err =
        transition::handle(&other, g.instance(), SagaInput::DeadlineExpired, g.now).unwrap_err();
    assert_eq!(err.kind(), saga_core::ErrorKind::InvalidInput);
}

#[test]
fn invalid_definitions_are_refused() {
    assert!(SagaDefinition::new("x", vec![]).is_err());
    assert!(SagaDefinition::new("", vec![StepDefinition::new("a", "a", "b", "c")]).is_err());
    let dup = vec![
        StepDefinition::new("a", "a", "b", "c"),
        StepDefinition::new("a", "d", "e", "f"),
    ];
    assert!(SagaDefinition::new("x", dup).is_err());
    assert!(SagaDefinition::new("x", vec![StepDefinition::new("a", "a", "b", "b")]).is_err());
    // definitions read from JSON are checked too
    let json = r#"{"name":"x","steps":[]}"#;
    assert!(serde_json::from_str::<SagaDefinition>(json).is_err());
}

#[test]
fn mermaid_shows_forward_and_compensation_paths() {
    let m = visualize::to_mermaid(&order_saga());
    assert!(m.contains("s0 -->|\"inventory.reserved\"| s1"));
    assert!(m.contains("s2 -->|\"shipping.scheduled\"| completed"));
    // payment failure undoes the inventory reservation
    assert!(m.contains("s1 -.->|\"payment.failed\"| c0"));
    // a missed payment deadline refunds the (maybe) charged payment first
    assert!(m.contains("s1 -.->|\"deadline\"| c1"));
    assert!(m.contains("c1 -.->|\"payment.refunded\"| c0"));
    assert!(m.contains("c0 -.->|\"inventory.released\"| compensated"));
}

#[test]
fn remaining_steps_and_dry_run_plan() {
    let mut g = Given::started();
    g.reply("inventory.reserved");
    g.reply("payment.processed");
    let remaining: Vec<_> = visualize::remaining_steps(&g.def, g.instance())
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(remaining, ["schedule_shipping"]);
    let plan: Vec<_> = visualize::compensation_plan(&g.def, g.instance())
        .unwrap()
        .into_iter()
        .map(|c| c.event_type)
        .collect();
    assert_eq!(
        plan,
        ["payment.refund.requested", "inventory.release.requested"]
    );
    // the dry run changed nothing
    assert_eq!(g.instance().status, SagaStatus::Running);
}

#[test]
fn failure_after_a_retry_undoes_the_step_since_an_earlier_attempt_may_land() {
    let mut g = Given::started();
    g.reply("inventory.reserved");
    g.pass_deadline(); // payment attempt 2
    g.reply("payment.failed");
    // attempt 1 may still charge the card: refund first, then release the stock
    assert_eq!(g.command_types(), ["payment.refund.requested"]);
    g.reply("payment.refunded");
    assert_eq!(g.command_types(), ["inventory.release.requested"]);
}
