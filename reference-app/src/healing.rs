//! The self-healing policies of `saga_ai::healing` wired into the services, and the record of
//! what they did.
//!
//! | policy | where it acts | switch (`--self-healing-off`) |
//! |--------|---------------|-------------------------------|
//! | stuck sagas | the order service's deadline sweeper: a timed-out step is sent again once, then the saga compensates ([`stuck`]) | `stuck-sagas` (no retry: a timed-out step is compensated at its first deadline, and nothing is recorded) |
//! | poison messages | every consumer: a failure no retry cures (undecodable, unknown version, invalid payload, rejected) is dead-lettered at once with its diagnosis | `poison-messages` (failures then go through every retry) |
//! | circuit breaker | the payment service's gateway calls: opens at 50 % errors over 30 s (10 calls at least), half-opens after 10 s; meanwhile charges wait (`--payment-breaker wait`) or fail fast (`fail-fast`) | `circuit-breaker` |
//! | duration drift | the AI service, from the saga traces it records: flags a step whose durations drift ([`crate::services::drift`]) | `duration-drift` |
//!
//! Each decision is a [`HealingAction`], published as a `healing.action_taken` event through
//! the acting service's outbox (so it survives a crash like any event) and kept by the AI
//! service, which lists them at `GET /self-healing/actions`. An outcome learnt after the
//! decision follows as a `healing.outcome_recorded` event naming the action's event id: a
//! retried step answered or a compensated saga ended ([`stuck`]); a poison message's dead
//! letter stored (or not); a circuit opening settled by the closing that ends its episode,
//! a half-opening by its probes ([`circuit`]). A duration-drift flag carries its outcome in
//! the record itself.

use std::sync::Arc;

use clap::ValueEnum;
use saga_ai::healing::HealingAction;
use saga_core::Envelope;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::ServiceContext;
use crate::error::AppError;
use crate::with_db;

pub mod circuit;
pub mod stuck;

/// The event type of a healing record.
pub const HEALING_ACTION_TAKEN: &str = "healing.action_taken";
/// The event type of an outcome learnt after the action ([`HealingOutcome`]).
pub const HEALING_OUTCOME_RECORDED: &str = "healing.outcome_recorded";

/// A policy, as the command line names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PolicySwitch {
    /// Retry a timed-out saga step once, then compensate.
    StuckSagas,
    /// Dead-letter incurable failures at once, with a diagnosis.
    PoisonMessages,
    /// The payment gateway's circuit breaker.
    CircuitBreaker,
    /// Flag saga steps whose durations drift.
    DurationDrift,
}

/// What the payment service does with a charge while the gateway's circuit is open.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerMode {
    /// Hold the charge until the circuit lets a call through.
    #[default]
    Wait,
    /// Fail the payment at once ("gateway unavailable"); the saga compensates.
    FailFast,
}

/// Which policies run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealingSettings {
    /// Policies switched off.
    pub off: Vec<PolicySwitch>,
    /// The payment service's behaviour while the circuit is open.
    pub breaker_mode: BreakerMode,
    /// How sensitive the duration-drift policy is ([`default_drift`]).
    pub drift: saga_ai::healing::DriftConfig,
}

impl Default for HealingSettings {
    /// Every policy on, charges waiting while the circuit is open, [`default_drift`].
    fn default() -> Self {
        Self {
            off: Vec::new(),
            breaker_mode: BreakerMode::default(),
            drift: default_drift(),
        }
    }
}

/// The duration-drift policy's sensitivity: `saga-ai`'s defaults (a baseline of 200 durations
/// per step, judged from 30, against the median of the latest 20; flagged at 1.5 times the
/// baseline median and 3 robust standard deviations above it), and at least 100 ms slower
/// (a step of 20 ms taking 60 ms is noise on a busy machine, not a drift anyone acts on).
pub fn default_drift() -> saga_ai::healing::DriftConfig {
    saga_ai::healing::DriftConfig {
        min_increase_ms: 100.0,
        ..saga_ai::healing::DriftConfig::default()
    }
}

impl HealingSettings {
    /// Whether `policy` runs.
    pub fn on(&self, policy: PolicySwitch) -> bool {
        !self.off.contains(&policy)
    }
}

/// The outcome of an action recorded earlier, learnt later (`healing.outcome_recorded`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealingOutcome {
    /// The event id of the `healing.action_taken` record it completes.
    pub action_id: Uuid,
    /// How it went.
    pub outcome: String,
    /// When it was learnt.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What a policy records: a decision under its event id, or the outcome of one recorded
/// before.
#[derive(Debug, Clone, PartialEq)]
pub enum HealingRecord {
    /// A decision; `id` is the event id an outcome names later.
    Action {
        /// The event id of its `healing.action_taken` event.
        id: Uuid,
        /// The decision.
        action: HealingAction,
    },
    /// How an earlier decision went.
    Outcome(HealingOutcome),
}

impl From<HealingAction> for HealingRecord {
    /// A decision under a fresh id (no outcome will name it).
    fn from(action: HealingAction) -> Self {
        Self::Action {
            id: Uuid::now_v7(),
            action,
        }
    }
}

/// Where a service's policies send their records.
pub type HealingSink = Arc<dyn Fn(HealingRecord) + Send + Sync>;

/// Publishes each record (`healing.action_taken` or `healing.outcome_recorded`) through the
/// service's outbox, from a spawned task (the caller is on a hot path). A record that cannot
/// be written is logged.
pub fn sink(ctx: &ServiceContext) -> HealingSink {
    let ctx = ctx.clone();
    Arc::new(move |record: HealingRecord| {
        let service = ctx.service.name();
        let envelope = match &record {
            HealingRecord::Action { id, action } => {
                tracing::info!(policy = action.policy.as_str(), subject = %action.subject,
                    observed = %action.observed, action = %action.action, "self-healing");
                action_event(service, action).map(|e| e.with_id(*id))
            }
            HealingRecord::Outcome(outcome) => {
                tracing::info!(action_id = %outcome.action_id, outcome = %outcome.outcome,
                    "self-healing: outcome");
                outcome_event(service, outcome)
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = async { publish(&ctx, envelope?).await }.await {
                tracing::warn!(error = %e, "self-healing: could not write a record");
            }
        });
    })
}

/// The `healing.action_taken` event of `action`, as `service` records it.
pub fn action_event(service: &str, action: &HealingAction) -> Result<Envelope, AppError> {
    let payload =
        serde_json::to_value(action).map_err(|e| AppError::decode("healing action", e))?;
    Ok(
        Envelope::new(HEALING_ACTION_TAKEN, action.subject.clone(), payload)
            .with_timestamp(action.at)
            .with_source(service)
            .with_header("service", service),
    )
}

/// The events of the stuck-saga policy's records, as `service` records them: each action
/// under its derived id, then the outcomes.
pub fn stuck_events(
    service: &str,
    records: &stuck::StuckRecords,
) -> Result<Vec<Envelope>, AppError> {
    let mut out = Vec::with_capacity(records.actions.len() + records.outcomes.len());
    for (id, action) in &records.actions {
        out.push(action_event(service, action)?.with_id(*id));
    }
    for outcome in &records.outcomes {
        out.push(outcome_event(service, outcome)?);
    }
    Ok(out)
}

/// The `healing.outcome_recorded` event of `outcome` (one per action: its id derives from
/// the action's).
pub fn outcome_event(service: &str, outcome: &HealingOutcome) -> Result<Envelope, AppError> {
    let payload =
        serde_json::to_value(outcome).map_err(|e| AppError::decode("healing outcome", e))?;
    Ok(Envelope::new(
        HEALING_OUTCOME_RECORDED,
        outcome.action_id.to_string(),
        payload,
    )
    .with_id(Uuid::new_v5(&outcome.action_id, b"outcome"))
    .with_timestamp(outcome.at)
    .with_source(service)
    .with_header("service", service))
}

/// Writes one decision through the service's outbox.
pub async fn record(ctx: &ServiceContext, action: &HealingAction) -> Result<(), AppError> {
    publish(ctx, action_event(ctx.service.name(), action)?).await
}

/// Publishes one record's event through the service's outbox.
async fn publish(ctx: &ServiceContext, envelope: Envelope) -> Result<(), AppError> {
    let db = &ctx.db;
    with_db!(db, store => {
        let mut uow = store.begin().await?;
        uow.publish(&[envelope]).await?;
        uow.commit().await?;
    });
    Ok(())
}
