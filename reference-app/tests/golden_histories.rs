//! Golden saga histories: every scenario of the order saga, recorded as the inputs fed to the
//! saga core and the transitions it answered, committed under `tests/golden/`, and replayed
//! here. Any difference fails, so a change in the saga's behaviour is always a visible
//! decision: rerun with `UPDATE_GOLDEN=1` and commit the new files with the change that
//! explains them.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reference_app::order_saga::{self, events::*};
use saga_core::Envelope;
use saga_core::saga::transition::{self, CommandKind, SagaInput, Transition};
use saga_core::saga::{SagaDefinition, SagaInstance};
use serde::Serialize;
use uuid::Uuid;

/// One input of a scenario.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The participant answers the latest command with this reply type.
    Reply(&'static str),
    /// The same reply as before is delivered again.
    Duplicate,
    /// Time passes beyond the deadline.
    Deadline,
    /// The reply to the first attempt of the current step arrives late.
    LateReplyToFirstAttempt(&'static str),
}

#[derive(Serialize)]
struct Recorded {
    input: String,
    outcome: String,
    status: String,
    order_status: String,
    commands: Vec<String>,
    log: Vec<String>,
}

struct Run {
    def: SagaDefinition,
    now: DateTime<Utc>,
    instance: SagaInstance,
    last_command: Option<Envelope>,
    first_attempt: Option<Envelope>,
    last_reply: Option<Envelope>,
    replies: u64,
    history: Vec<Recorded>,
}

impl Run {
    fn start() -> Self {
        let def = order_saga::definition(Duration::from_secs(30));
        let now = DateTime::from_timestamp(1_735_689_600, 0).expect("valid time");
        let saga_id = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);
        let t = transition::start(
            &def,
            saga_id,
            "order-1",
            serde_json::json!({"total_cents": 5000}),
            now,
        );
        let mut run = Self {
            def,
            now,
            instance: t.instance.clone(),
            last_command: None,
            first_attempt: None,
            last_reply: None,
            replies: 0,
            history: Vec::new(),
        };
        run.record("start".into(), &t);
        run
    }

    fn record(&mut self, input: String, t: &Transition) {
        if let Some(c) = t.commands.last() {
            let env = c.to_envelope(self.now);
            if c.attempt == 1 && c.kind == CommandKind::Forward {
                self.first_attempt = Some(env.clone());
            }
            self.last_command = Some(env);
        }
        self.history.push(Recorded {
            input,
            outcome: format!("{:?}", t.outcome),
            status: t.instance.status.as_str().to_owned(),
            order_status: format!("{:?}", order_saga::order_status(&t.instance)),
            commands: t
                .commands
                .iter()
                .map(|c| format!("{} {} #{} ({})", c.event_type, c.step, c.attempt, c.id))
                .collect(),
            log: t
                .log
                .iter()
                .map(|l| {
                    let line = format!("{} {} {}", l.status.as_str(), l.step, l.event_type);
                    match &l.detail {
                        Some(detail) => format!("{line}: {detail}"),
                        None => line,
                    }
                })
                .collect(),
        });
        self.instance = t.instance.clone();
    }

    fn reply_to(&mut self, cause: &Envelope, reply: &str) -> Envelope {
        self.replies += 1;
        Envelope::new(reply, "order-1", serde_json::json!({"reason": "scenario"}))
            .with_id(Uuid::from_u128(
                0x0193_0000_0000_7000_9000_0000_0000_0000 + u128::from(self.replies),
            ))
            .with_timestamp(self.now)
            .caused_by(cause)
    }

    fn apply(&mut self, step: Step) {
        let (label, input) = match step {
            Step::Reply(reply) => {
                let cause = self.last_command.clone().expect("a command to answer");
                let env = self.reply_to(&cause, reply);
                self.last_reply = Some(env.clone());
                (format!("reply {reply}"), Some(env))
            }
            Step::Duplicate => {
                let env = self.last_reply.clone().expect("a reply to repeat");
                (format!("duplicate {}", env.event_type), Some(env))
            }
            Step::LateReplyToFirstAttempt(reply) => {
                let cause = self.first_attempt.clone().expect("a first attempt");
                let env = self.reply_to(&cause, reply);
                (format!("late reply {reply} to attempt 1"), Some(env))
            }
            Step::Deadline => {
                self.now += chrono::Duration::seconds(31);
                ("deadline".into(), None)
            }
        };
        let t = match &input {
            Some(env) => {
                transition::handle(&self.def, &self.instance, SagaInput::Reply(env), self.now)
            }
            None => transition::handle(
                &self.def,
                &self.instance,
                SagaInput::DeadlineExpired,
                self.now,
            ),
        }
        .expect("the instance belongs to the definition");
        self.record(label, &t);
    }
}

fn check(name: &str, steps: &[Step]) {
    let mut run = Run::start();
    for step in steps {
        run.apply(*step);
    }
    let actual = serde_json::to_string_pretty(&run.history).expect("serialises") + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.json"));
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("creates the folder");
        std::fs::write(&path, &actual).expect("writes the golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; record it with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "the saga's behaviour changed for scenario `{name}`.\n--- expected ({})\n{expected}\n--- actual\n{actual}\nIf the change is intended, rerun with UPDATE_GOLDEN=1 and commit the file.",
        path.display()
    );
}

#[test]
fn happy_path() {
    check(
        "happy_path",
        &[
            Step::Reply(FRAUD_CHECK_PASSED),
            Step::Reply(INVENTORY_RESERVED),
            Step::Reply(PAYMENT_PROCESSED),
            Step::Reply(SHIPPING_SCHEDULED),
        ],
    );
}

#[test]
fn fraud_rejected() {
    check("fraud_rejected", &[Step::Reply(FRAUD_CHECK_FAILED)]);
}

#[test]
fn insufficient_inventory() {
    check(
        "insufficient_inventory",
        &[
            Step::Reply(FRAUD_CHECK_PASSED),
            Step::Reply(INVENTORY_RESERVE_FAILED),
        ],
    );
}

#[test]
fn payment_failure_with_compensation() {
    check(
        "payment_failure_with_compensation",
        &[
            Step::Reply(FRAUD_CHECK_PASSED),
            Step::Reply(INVENTORY_RESERVED),
            Step::Reply(PAYMENT_FAILED),
            Step::Reply(INVENTORY_RELEASED),
        ],
    );
}

#[test]
fn duplicate_replies_change_nothing() {
    check(
        "duplicate_replies",
        &[
            Step::Reply(FRAUD_CHECK_PASSED),
            Step::Duplicate,
            Step::Reply(INVENTORY_RESERVED),
            Step::Duplicate,
            Step::Reply(PAYMENT_PROCESSED),
            Step::Reply(SHIPPING_SCHEDULED),
            Step::Duplicate,
        ],
    );
}

#[test]
fn payment_timeout_then_late_success_is_refunded() {
    check(
        "payment_timeout_late_success",
        &[
            Step::Reply(FRAUD_CHECK_PASSED),
            Step::Reply(INVENTORY_RESERVED),
            Step::Deadline,
            Step::Deadline,
            Step::LateReplyToFirstAttempt(PAYMENT_PROCESSED),
            Step::Reply(PAYMENT_REFUNDED),
            Step::Reply(INVENTORY_RELEASED),
        ],
    );
}

#[test]
fn shipping_failure_undoes_payment_and_stock() {
    check(
        "shipping_failure",
        &[
            Step::Reply(FRAUD_CHECK_PASSED),
            Step::Reply(INVENTORY_RESERVED),
            Step::Reply(PAYMENT_PROCESSED),
            Step::Reply(SHIPPING_FAILED),
            Step::Reply(PAYMENT_REFUNDED),
            Step::Reply(INVENTORY_RELEASED),
        ],
    );
}
