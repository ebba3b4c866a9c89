//! Sagas you can see before they run: Mermaid diagrams, remaining steps, compensation plans.
//!
//! All pure functions over a definition and (for the last two) an instance.
//!
//! ```
//! use saga_core::saga::{visualize, transition, SagaDefinition, StepDefinition};
//! let def = SagaDefinition::new("order", vec![
//!     StepDefinition::new("reserve", "inventory.reserve.requested", "inventory.reserved", "inventory.reserve.failed")
//!         .compensate_with("inventory.release.requested", Some("inventory.released")),
//!     StepDefinition::new("pay", "payment.requested", "payment.processed", "payment.failed"),
//! ]).unwrap();
//! let diagram = visualize::to_mermaid(&def);
//! assert!(diagram.starts_with("flowchart TD"));
//!
//! let now = chrono::Utc::now();
//! let t = transition::start(&def, uuid::Uuid::now_v7(), "o-1", serde_json::json!({}), now);
//! let names: Vec<_> = visualize::remaining_steps(&def, &t.instance).iter().map(|s| s.name.as_str()).collect();
//! assert_eq!(names, ["reserve", "pay"]);
//! // nothing has completed yet, so failing now would undo nothing
//! assert!(visualize::compensation_plan(&def, &t.instance).unwrap().is_empty());
//! ```

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::definition::{SagaDefinition, StepDefinition};
use super::instance::{SagaInstance, SagaStatus, StepStatus};
use super::transition::{self, CommandKind, SagaCommand, SagaInput};
use crate::envelope::Envelope;
use crate::error::Result;

/// Renders the definition as a Mermaid flowchart: the forward path to `Completed`, each step's
/// failure edge into the compensations of the steps before it (in reverse order) and on to
/// `Compensated`.
pub fn to_mermaid(def: &SagaDefinition) -> String {
    let steps = def.steps();
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(out, "    start([\"{}\"])", escape(def.name()));
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "    s{i}[\"{}<br/><small>{}</small>\"]",
            escape(&step.name),
            escape(&step.command)
        );
        if let Some(c) = &step.compensation {
            let _ = writeln!(
                out,
                "    c{i}[/\"undo {}<br/><small>{}</small>\"/]",
                escape(&step.name),
                escape(&c.command)
            );
        }
    }
    out.push_str("    completed([Completed])\n    compensated([Compensated])\n");
    out.push_str("    start --> s0\n");
    for (i, step) in steps.iter().enumerate() {
        let next = if i + 1 < steps.len() {
            format!("s{}", i + 1)
        } else {
            "completed".to_owned()
        };
        let _ = writeln!(out, "    s{i} -->|\"{}\"| {next}", escape(&step.on_success));
        // A failure reply undoes the steps before this one.
        let _ = writeln!(
            out,
            "    s{i} -.->|\"{}\"| {}",
            escape(&step.on_failure),
            compensation_entry(steps, i)
        );
        // A missed deadline leaves the step's effect uncertain, so it is undone too.
        if step.deadline.is_some() {
            let target = if step.compensation.is_some() {
                format!("c{i}")
            } else {
                compensation_entry(steps, i)
            };
            let _ = writeln!(out, "    s{i} -.->|\"deadline\"| {target}");
        }
        if let Some(c) = &step.compensation {
            let label = c.reply.as_deref().unwrap_or("sent");
            let _ = writeln!(
                out,
                "    c{i} -.->|\"{}\"| {}",
                escape(label),
                compensation_entry(steps, i)
            );
        }
    }
    out
}

/// The node a failure of step `i` leads to: the compensation of the nearest earlier step
/// that has one, or `compensated`.
fn compensation_entry(steps: &[StepDefinition], i: usize) -> String {
    (0..i)
        .rev()
        .find(|&j| steps[j].compensation.is_some())
        .map_or_else(|| "compensated".to_owned(), |j| format!("c{j}"))
}

fn escape(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// The steps still ahead of a running saga, the awaited one first. Empty once the saga is
/// compensating or ended.
pub fn remaining_steps<'d>(
    def: &'d SagaDefinition,
    instance: &SagaInstance,
) -> Vec<&'d StepDefinition> {
    if instance.status != SagaStatus::Running {
        return Vec::new();
    }
    def.steps()
        .iter()
        .zip(&instance.steps)
        .filter(|(_, s)| matches!(s.status, StepStatus::NotStarted | StepStatus::Started))
        .map(|(d, _)| d)
        .collect()
}

/// A dry run: the compensation commands the saga would send, in order, if its awaited step
/// failed now (or, for a compensating saga, the ones still to come), computed by feeding the
/// failure and each compensation's confirmation through the real transition function.
/// Empty for a saga that has ended.
pub fn compensation_plan(
    def: &SagaDefinition,
    instance: &SagaInstance,
) -> Result<Vec<SagaCommand>> {
    let now = instance.updated_at;
    let mut current = instance.clone();
    let mut planned = Vec::new();
    // Every input settles one step or one compensation, so this many rounds always suffice.
    for _ in 0..=2 * def.steps().len() + 1 {
        let Some(reply) = next_dry_reply(def, &current, now) else {
            break;
        };
        let t = transition::handle(def, &current, SagaInput::Reply(&reply), now)?;
        planned.extend(
            t.commands
                .into_iter()
                .filter(|c| c.kind == CommandKind::Compensation),
        );
        current = t.instance;
    }
    Ok(planned)
}

/// The reply that moves a dry run one step towards its end: a failure of the awaited step,
/// or the confirmation of the awaited compensation.
fn next_dry_reply(
    def: &SagaDefinition,
    instance: &SagaInstance,
    now: DateTime<Utc>,
) -> Option<Envelope> {
    let (i, event_type, cause) = match instance.status {
        SagaStatus::Running => {
            let i = instance.active_step()?;
            let cause = *instance.steps[i].command_ids.last()?;
            (i, def.steps()[i].on_failure.clone(), cause)
        }
        SagaStatus::Compensating => {
            let i = instance
                .steps
                .iter()
                .position(|s| s.status == StepStatus::Compensating)?;
            let reply = def.steps()[i].compensation.as_ref()?.reply.clone()?;
            (i, reply, instance.steps[i].compensation_id?)
        }
        _ => return None,
    };
    let mut env = Envelope::new(
        event_type,
        instance.aggregate_id.clone(),
        serde_json::json!({}),
    )
    .with_id(Uuid::new_v5(&cause, format!("dry-run:{i}").as_bytes()))
    .with_timestamp(now);
    env.causation_id = Some(cause);
    Some(env)
}
