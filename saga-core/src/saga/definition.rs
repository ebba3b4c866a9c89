//! Saga definitions: ordered steps as plain data.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What undoes a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compensation {
    /// The command's event type (`inventory.release.requested`).
    pub command: String,
    /// The reply that confirms it (`inventory.released`); `None` means fire-and-forget: the
    /// saga moves on as soon as the command is emitted (delivery is still at-least-once).
    pub reply: Option<String>,
    /// How long to wait for `reply` before the saga gives up on it and ends `Failed`
    /// (an operator's case). `None` waits for the reply as long as it takes.
    pub deadline: Option<Duration>,
}

/// One step of a saga: a command sent to a participant and the replies that settle it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDefinition {
    /// Unique within the saga (`reserve_inventory`).
    pub name: String,
    /// The command's event type (`inventory.reserve.requested`).
    pub command: String,
    /// The reply that means the step succeeded (`inventory.reserved`).
    pub on_success: String,
    /// The reply that means it failed (`inventory.reserve.failed`).
    pub on_failure: String,
    /// How to undo it once it succeeded; `None` if nothing needs undoing.
    pub compensation: Option<Compensation>,
    /// How long to wait for a reply; `None` waits as long as it takes.
    pub deadline: Option<Duration>,
    /// How many times to send the command again when the deadline passes, before giving up
    /// and compensating.
    pub retries_on_deadline: u32,
}

impl StepDefinition {
    /// A step with no compensation, no deadline and no retries.
    pub fn new(
        name: impl Into<String>,
        command: impl Into<String>,
        on_success: impl Into<String>,
        on_failure: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            command: command.into(),
            on_success: on_success.into(),
            on_failure: on_failure.into(),
            compensation: None,
            deadline: None,
            retries_on_deadline: 0,
        }
    }

    /// Undo with `command`, confirmed by `reply` (or fire-and-forget with `None`).
    #[must_use]
    pub fn compensate_with(mut self, command: impl Into<String>, reply: Option<&str>) -> Self {
        self.compensation = Some(Compensation {
            command: command.into(),
            reply: reply.map(str::to_owned),
            deadline: None,
        });
        self
    }

    /// Gives up on an unconfirmed compensation after `deadline` (the saga ends `Failed`).
    /// Has no effect before [`StepDefinition::compensate_with`].
    #[must_use]
    pub fn compensation_deadline(mut self, deadline: Duration) -> Self {
        if let Some(c) = self.compensation.as_mut() {
            c.deadline = Some(deadline);
        }
        self
    }

    /// Waits at most `deadline` for a reply.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sends the command again up to `n` times when the deadline passes.
    #[must_use]
    pub fn retries_on_deadline(mut self, n: u32) -> Self {
        self.retries_on_deadline = n;
        self
    }
}

/// A saga: a name and its steps, run in order; on failure the completed steps are
/// compensated in reverse order.
///
/// ```
/// use std::time::Duration;
/// use saga_core::saga::{SagaDefinition, StepDefinition};
/// let saga = SagaDefinition::new("order", vec![
///     StepDefinition::new("reserve_inventory", "inventory.reserve.requested",
///                         "inventory.reserved", "inventory.reserve.failed")
///         .compensate_with("inventory.release.requested", Some("inventory.released"))
///         .deadline(Duration::from_secs(30)),
///     StepDefinition::new("process_payment", "payment.requested",
///                         "payment.processed", "payment.failed")
///         .compensate_with("payment.refund.requested", Some("payment.refunded")),
/// ]).unwrap();
/// assert_eq!(saga.steps().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawDefinition")]
pub struct SagaDefinition {
    name: String,
    steps: Vec<StepDefinition>,
}

#[derive(Deserialize)]
struct RawDefinition {
    name: String,
    steps: Vec<StepDefinition>,
}

impl TryFrom<RawDefinition> for SagaDefinition {
    type Error = Error;
    fn try_from(raw: RawDefinition) -> Result<Self> {
        SagaDefinition::new(raw.name, raw.steps)
    }
}

impl SagaDefinition {
    /// Checks and builds a definition: a non-empty name, at least one step, unique step names,
    /// non-empty event types, and a step's success and failure replies distinct.
    pub fn new(name: impl Into<String>, steps: Vec<StepDefinition>) -> Result<Self> {
        let name = name.into();
        let invalid = |reason: String| Error::InvalidDefinition {
            saga: name.clone(),
            reason,
        };
        if name.trim().is_empty() {
            return Err(invalid("the saga has no name".into()));
        }
        if steps.is_empty() {
            return Err(invalid("a saga needs at least one step".into()));
        }
        let mut seen = HashSet::new();
        for step in &steps {
            if step.name.trim().is_empty() {
                return Err(invalid("a step has no name".into()));
            }
            if !seen.insert(step.name.as_str()) {
                return Err(invalid(format!("step name `{}` is used twice", step.name)));
            }
            for (what, value) in [
                ("command", &step.command),
                ("success reply", &step.on_success),
                ("failure reply", &step.on_failure),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(format!("step `{}` has an empty {what}", step.name)));
                }
            }
            if step.on_success == step.on_failure {
                return Err(invalid(format!(
                    "step `{}` uses `{}` for both success and failure",
                    step.name, step.on_success
                )));
            }
            if let Some(c) = &step.compensation {
                if c.command.trim().is_empty()
                    || c.reply.as_deref().is_some_and(|r| r.trim().is_empty())
                {
                    return Err(invalid(format!(
                        "step `{}` has an empty compensation command or reply",
                        step.name
                    )));
                }
            }
        }
        Ok(Self { name, steps })
    }

    /// The saga's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[StepDefinition] {
        &self.steps
    }

    /// The step at `index`.
    pub fn step(&self, index: usize) -> Option<&StepDefinition> {
        self.steps.get(index)
    }
}
