//! The orchestrator's decisions as a pure function.
//!
//! [`start`] and [`handle`] take a definition, an instance, an input and the current time,
//! and return a [`Transition`]: the new instance, the commands to send and the log entries to
//! append. No I/O, no clock, no randomness: the same inputs give the same transition, command
//! ids included (they are derived from the saga id, the step and the attempt), so a transition
//! re-run after a crash emits the same ids and the participants' inboxes absorb the repeats.
//!
//! ```
//! use saga_core::saga::{transition, SagaDefinition, StepDefinition, SagaStatus, SagaInput};
//! use saga_core::Envelope;
//! let def = SagaDefinition::new("demo", vec![
//!     StepDefinition::new("charge", "payment.requested", "payment.processed", "payment.failed"),
//! ]).unwrap();
//! let now = chrono::Utc::now();
//! let started = transition::start(&def, uuid::Uuid::now_v7(), "order-1", serde_json::json!({}), now);
//! let cmd = &started.commands[0];
//! let reply = Envelope::new("payment.processed", "order-1", serde_json::json!({}))
//!     .caused_by(&cmd.to_envelope(now));
//! let done = transition::handle(&def, &started.instance, SagaInput::Reply(&reply), now).unwrap();
//! assert_eq!(done.instance.status, SagaStatus::Completed);
//! ```

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::definition::SagaDefinition;
use super::instance::{SagaInstance, SagaStatus, StepState, StepStatus};
use super::log::{LogStatus, SagaLogEntry};
use crate::envelope::Envelope;
use crate::error::{Error, Result};

/// Something that happened to a saga.
#[derive(Debug, Clone, Copy)]
pub enum SagaInput<'a> {
    /// A participant's reply; matched to a command by its `causation_id`.
    Reply(&'a Envelope),
    /// The time passed the instance's `deadline` (the shell's sweeper found it due).
    DeadlineExpired,
}

/// Whether a command moves the saga forward or undoes a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// A step's command.
    Forward,
    /// A step's compensation.
    Compensation,
}

/// A command the saga sends to a participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaCommand {
    /// Its id, derived from saga id, step, kind and attempt (UUID v5).
    pub id: Uuid,
    /// The saga instance (also the correlation id).
    pub saga_id: Uuid,
    /// The aggregate the saga is about.
    pub aggregate_id: String,
    /// The step's name.
    pub step: String,
    /// Forward or compensation.
    pub kind: CommandKind,
    /// Which attempt of the step this is (1-based); compensations are sent once.
    pub attempt: u32,
    /// The command's event type.
    pub event_type: String,
    /// The saga data at the time of sending.
    pub payload: Arc<serde_json::Value>,
    /// The reply that led to it, if any.
    pub caused_by: Option<Uuid>,
}

impl SagaCommand {
    /// The command as an envelope: id = command id, correlation = saga id,
    /// causation = the reply that led to it.
    pub fn to_envelope(&self, at: DateTime<Utc>) -> Envelope {
        let mut env = Envelope::new(
            self.event_type.clone(),
            self.aggregate_id.clone(),
            serde_json::Value::clone(&self.payload),
        )
        .with_id(self.id)
        .with_correlation_id(self.saga_id)
        .with_timestamp(at);
        env.causation_id = self.caused_by;
        env
    }
}

/// Why an input changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// The saga had already ended.
    SagaEnded,
    /// A second reply to a command whose step already settled the same way.
    Duplicate,
    /// A reply to a step the saga gave up on (deadline) or is undoing.
    Late,
    /// A reply of a type the step does not expect.
    UnexpectedReply,
    /// A reply to no command of this saga (no or unknown causation id).
    Unrelated,
    /// A deadline input before any deadline was due.
    NotDue,
}

impl IgnoreReason {
    /// Lower-case description for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            IgnoreReason::SagaEnded => "saga already ended",
            IgnoreReason::Duplicate => "duplicate reply",
            IgnoreReason::Late => "late reply",
            IgnoreReason::UnexpectedReply => "unexpected reply type",
            IgnoreReason::Unrelated => "reply to no command of this saga",
            IgnoreReason::NotDue => "no deadline due",
        }
    }
}

/// Whether the input changed the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The instance changed (its version went up by one); save it, send the commands.
    Applied,
    /// Nothing changed; the log may record the ignored reply.
    Ignored(IgnoreReason),
}

/// The result of a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The instance after the input.
    pub instance: SagaInstance,
    /// Commands to send, in order.
    pub commands: Vec<SagaCommand>,
    /// Log entries to append, in order.
    pub log: Vec<SagaLogEntry>,
    /// Applied or ignored.
    pub outcome: Outcome,
}

/// The id of a saga's command: UUID v5 of the saga id and `(step, kind, attempt)`.
pub fn command_id(saga_id: Uuid, step: usize, kind: CommandKind, attempt: u32) -> Uuid {
    let kind = match kind {
        CommandKind::Forward => 0u8,
        CommandKind::Compensation => 1u8,
    };
    let mut name = [0u8; 13];
    name[..8].copy_from_slice(&(step as u64).to_be_bytes());
    name[8] = kind;
    name[9..].copy_from_slice(&attempt.to_be_bytes());
    Uuid::new_v5(&saga_id, &name)
}

/// `now + d`, saturating at the largest representable time instead of overflowing.
fn after(now: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Starts a saga: a new instance (version 0) with its first step's command. `data` is what
/// every command of the saga carries as payload.
pub fn start(
    def: &SagaDefinition,
    saga_id: Uuid,
    aggregate_id: impl Into<String>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Transition {
    let instance = SagaInstance {
        id: saga_id,
        saga: def.name().to_owned(),
        aggregate_id: aggregate_id.into(),
        status: SagaStatus::Running,
        steps: vec![StepState::new(); def.steps().len()],
        data: Arc::new(data),
        failure: None,
        deadline: None,
        unsent: Vec::new(),
        version: 0,
        created_at: now,
        updated_at: now,
    };
    let mut run = Run::new(def, instance, now, None);
    run.start_step(0);
    run.finish(Outcome::Applied)
}

/// Applies an input to an instance.
///
/// Errors only when `instance` does not belong to `def` (another saga name or step count);
/// every input, however odd, otherwise yields a transition.
pub fn handle(
    def: &SagaDefinition,
    instance: &SagaInstance,
    input: SagaInput<'_>,
    now: DateTime<Utc>,
) -> Result<Transition> {
    if instance.saga != def.name() || instance.steps.len() != def.steps().len() {
        return Err(Error::InvalidArgument(format!(
            "saga instance {} of `{}` with {} steps does not belong to definition `{}` with {} steps",
            instance.id,
            instance.saga,
            instance.steps.len(),
            def.name(),
            def.steps().len()
        )));
    }
    let cause = match input {
        SagaInput::Reply(env) => Some(env.event_id),
        SagaInput::DeadlineExpired => None,
    };
    let mut run = Run::new(def, instance.clone(), now, cause);
    let outcome = match input {
        SagaInput::Reply(env) => run.reply(env),
        SagaInput::DeadlineExpired => run.deadline(),
    };
    if outcome == Outcome::Applied {
        run.instance.version += 1;
        run.instance.updated_at = now;
    }
    Ok(run.finish(outcome))
}

/// Whether a step's effect may exist and must be undone when the saga compensates: it
/// completed; or it timed out (its effect is uncertain); or it failed after more than one
/// attempt, since an earlier attempt may still take effect after the failure of a later one.
fn needs_undo(step: &StepState) -> bool {
    match step.status {
        StepStatus::Completed | StepStatus::TimedOut => true,
        StepStatus::Failed => step.command_ids.len() > 1,
        _ => false,
    }
}

/// One decision in progress: the instance being changed and what it emits.
struct Run<'d> {
    def: &'d SagaDefinition,
    instance: SagaInstance,
    now: DateTime<Utc>,
    cause: Option<Uuid>,
    commands: Vec<SagaCommand>,
    log: Vec<SagaLogEntry>,
}

impl<'d> Run<'d> {
    fn new(
        def: &'d SagaDefinition,
        instance: SagaInstance,
        now: DateTime<Utc>,
        cause: Option<Uuid>,
    ) -> Self {
        Self {
            def,
            instance,
            now,
            cause,
            commands: Vec::new(),
            log: Vec::new(),
        }
    }

    fn finish(self, outcome: Outcome) -> Transition {
        Transition {
            instance: self.instance,
            commands: self.commands,
            log: self.log,
            outcome,
        }
    }

    fn step_name(&self, i: usize) -> String {
        self.def.steps()[i].name.clone()
    }

    fn record(
        &mut self,
        step: usize,
        event_type: &str,
        event_id: Uuid,
        status: LogStatus,
        detail: Option<String>,
    ) {
        self.log.push(SagaLogEntry {
            saga_id: self.instance.id,
            step: self.step_name(step),
            event_type: event_type.to_owned(),
            event_id,
            status,
            at: self.now,
            detail,
        });
    }

    fn emit(&mut self, step: usize, kind: CommandKind, attempt: u32, event_type: &str) -> Uuid {
        let id = command_id(self.instance.id, step, kind, attempt);
        self.commands.push(SagaCommand {
            id,
            saga_id: self.instance.id,
            aggregate_id: self.instance.aggregate_id.clone(),
            step: self.step_name(step),
            kind,
            attempt,
            event_type: event_type.to_owned(),
            payload: self.instance.data.clone(),
            caused_by: self.cause,
        });
        id
    }

    /// Sends step `i`'s command (again, if it was sent before).
    fn start_step(&mut self, i: usize) {
        let step = &self.def.steps()[i];
        let attempt = self.instance.steps[i].command_ids.len() as u32 + 1;
        let id = self.emit(i, CommandKind::Forward, attempt, &step.command);
        let state = &mut self.instance.steps[i];
        state.status = StepStatus::Started;
        state.command_ids.push(id);
        state.started_at.get_or_insert(self.now);
        self.instance.deadline = step.deadline.map(|d| after(self.now, d));
        let detail = (attempt > 1).then(|| format!("attempt {attempt} after the deadline passed"));
        let command = step.command.clone();
        self.record(i, &command, id, LogStatus::Started, detail);
    }

    fn ignore(&mut self, step: Option<usize>, env: &Envelope, reason: IgnoreReason) -> Outcome {
        self.log.push(SagaLogEntry {
            saga_id: self.instance.id,
            step: step.map_or_else(|| "saga".to_owned(), |i| self.step_name(i)),
            event_type: env.event_type.clone(),
            event_id: env.event_id,
            status: LogStatus::Ignored,
            at: self.now,
            detail: Some(reason.as_str().to_owned()),
        });
        Outcome::Ignored(reason)
    }

    fn reply(&mut self, env: &Envelope) -> Outcome {
        let found = env.causation_id.and_then(|cause| {
            self.instance.steps.iter().enumerate().find_map(|(i, s)| {
                if s.command_ids.contains(&cause) {
                    Some((i, CommandKind::Forward))
                } else if s.compensation_id == Some(cause) {
                    Some((i, CommandKind::Compensation))
                } else {
                    None
                }
            })
        });
        if self.instance.is_terminal() {
            return self.ignore(found.map(|f| f.0), env, IgnoreReason::SagaEnded);
        }
        match found {
            None => self.ignore(None, env, IgnoreReason::Unrelated),
            Some((i, CommandKind::Forward)) => self.forward_reply(i, env),
            Some((i, CommandKind::Compensation)) => self.compensation_reply(i, env),
        }
    }

    fn forward_reply(&mut self, i: usize, env: &Envelope) -> Outcome {
        let step = &self.def.steps()[i];
        let success = env.event_type == step.on_success;
        if !success && env.event_type != step.on_failure {
            return self.ignore(Some(i), env, IgnoreReason::UnexpectedReply);
        }
        match self.instance.steps[i].status {
            StepStatus::Started => {}
            StepStatus::Completed | StepStatus::Failed => {
                return self.ignore(Some(i), env, IgnoreReason::Duplicate);
            }
            _ => return self.ignore(Some(i), env, IgnoreReason::Late),
        }
        let state = &mut self.instance.steps[i];
        state.finished_at = Some(self.now);
        if success {
            state.status = StepStatus::Completed;
            state.result = Some(Arc::new(env.payload.clone()));
            self.record(i, &env.event_type, env.event_id, LogStatus::Completed, None);
            if i + 1 < self.def.steps().len() {
                self.start_step(i + 1);
            } else {
                self.instance.status = SagaStatus::Completed;
                self.instance.deadline = None;
            }
        } else {
            state.status = StepStatus::Failed;
            let reason = env
                .payload
                .get("reason")
                .and_then(|r| r.as_str())
                .map_or_else(
                    || format!("step `{}` failed: {}", step.name, env.event_type),
                    |r| format!("step `{}` failed: {r}", step.name),
                );
            self.record(
                i,
                &env.event_type,
                env.event_id,
                LogStatus::Failed,
                Some(reason.clone()),
            );
            self.begin_compensation(reason);
        }
        Outcome::Applied
    }

    fn compensation_reply(&mut self, i: usize, env: &Envelope) -> Outcome {
        let expected = self.def.steps()[i]
            .compensation
            .as_ref()
            .and_then(|c| c.reply.as_deref());
        if expected != Some(env.event_type.as_str()) {
            return self.ignore(Some(i), env, IgnoreReason::UnexpectedReply);
        }
        match self.instance.steps[i].status {
            StepStatus::Compensating => {}
            StepStatus::Compensated => return self.ignore(Some(i), env, IgnoreReason::Duplicate),
            _ => return self.ignore(Some(i), env, IgnoreReason::Late),
        }
        self.instance.steps[i].status = StepStatus::Compensated;
        self.record(
            i,
            &env.event_type,
            env.event_id,
            LogStatus::Compensated,
            None,
        );
        self.continue_compensation();
        Outcome::Applied
    }

    fn deadline(&mut self) -> Outcome {
        let due = self.instance.deadline.is_some_and(|d| d <= self.now);
        if !due || self.instance.is_terminal() {
            return Outcome::Ignored(IgnoreReason::NotDue);
        }
        match self.instance.status {
            SagaStatus::Running => match self.instance.active_step() {
                Some(i) => self.forward_deadline(i),
                None => Outcome::Ignored(IgnoreReason::NotDue),
            },
            SagaStatus::Compensating => {
                let waiting = self
                    .instance
                    .steps
                    .iter()
                    .position(|s| s.status == StepStatus::Compensating);
                match waiting {
                    Some(i) => self.compensation_deadline(i),
                    None => Outcome::Ignored(IgnoreReason::NotDue),
                }
            }
            _ => Outcome::Ignored(IgnoreReason::NotDue),
        }
    }

    fn forward_deadline(&mut self, i: usize) -> Outcome {
        let step = &self.def.steps()[i];
        let sent = self.instance.steps[i].command_ids.len() as u32;
        if sent <= step.retries_on_deadline {
            self.start_step(i);
            return Outcome::Applied;
        }
        let reason = format!(
            "step `{}` got no reply within its deadline after {sent} attempt(s)",
            step.name
        );
        let command = step.command.clone();
        let state = &mut self.instance.steps[i];
        state.status = StepStatus::TimedOut;
        state.finished_at = Some(self.now);
        let last = state.command_ids.last().copied().unwrap_or_default();
        self.record(i, &command, last, LogStatus::Failed, Some(reason.clone()));
        self.begin_compensation(reason);
        Outcome::Applied
    }

    fn compensation_deadline(&mut self, i: usize) -> Outcome {
        let command = self.def.steps()[i]
            .compensation
            .as_ref()
            .map(|c| c.command.clone())
            .unwrap_or_default();
        let state = &mut self.instance.steps[i];
        state.status = StepStatus::CompensationFailed;
        let id = state.compensation_id.unwrap_or_default();
        self.record(
            i,
            &command,
            id,
            LogStatus::Failed,
            Some("compensation not confirmed before its deadline".to_owned()),
        );
        self.continue_compensation();
        Outcome::Applied
    }

    fn begin_compensation(&mut self, reason: String) {
        self.instance.status = SagaStatus::Compensating;
        self.instance.failure = Some(reason);
        self.instance.deadline = None;
        self.continue_compensation();
    }

    /// Sends the compensation of the latest step still to undo; fire-and-forget ones settle at
    /// once and the next is sent in the same transition. Ends the saga when none is left.
    fn continue_compensation(&mut self) {
        loop {
            let next = (0..self.instance.steps.len()).rev().find(|&j| {
                needs_undo(&self.instance.steps[j]) && self.def.steps()[j].compensation.is_some()
            });
            let Some(j) = next else {
                let failed = self
                    .instance
                    .steps
                    .iter()
                    .any(|s| s.status == StepStatus::CompensationFailed);
                self.instance.status = if failed {
                    SagaStatus::Failed
                } else {
                    SagaStatus::Compensated
                };
                self.instance.deadline = None;
                return;
            };
            let Some(comp) = self.def.steps()[j].compensation.clone() else {
                return;
            };
            let id = self.emit(j, CommandKind::Compensation, 1, &comp.command);
            self.instance.steps[j].compensation_id = Some(id);
            self.record(j, &comp.command, id, LogStatus::Compensating, None);
            if comp.reply.is_some() {
                self.instance.steps[j].status = StepStatus::Compensating;
                self.instance.deadline = comp.deadline.map(|d| after(self.now, d));
                return;
            }
            self.instance.steps[j].status = StepStatus::Compensated;
            self.record(
                j,
                &comp.command,
                id,
                LogStatus::Compensated,
                Some("fire-and-forget".to_owned()),
            );
        }
    }
}
