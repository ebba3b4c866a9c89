//! The AI service's record of the self-healing policies' decisions (`GET
//! /self-healing/actions`): every `healing.action_taken` event of every service, kept once
//! each (its event id is the key), newest first, with the outcome a later
//! `healing.outcome_recorded` event told (whichever of the two arrives first).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use saga_ai::healing::{ActionKind, HealingAction};
use saga_core::broker::Subscription;
use saga_core::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::api::problem::Problem;
use crate::consumer::Handler;
use crate::context::ServiceContext;
use crate::error::AppError;
use crate::healing::stuck::HealingOutcome;
use crate::healing::{
    HEALING_ACTION_TAKEN, HEALING_OUTCOME_RECORDED, HealingSettings, PolicySwitch,
};
use crate::services::ai_insights::{MAX_LIMIT, bounded, query_problem};
use crate::services::common::ts;
use crate::with_db;

/// The subscription that keeps the record.
pub const SUBSCRIPTION: &str = "ai-healing";

/// The record's table.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t}healing_actions (
        event_id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        policy TEXT NOT NULL,
        body TEXT NOT NULL,
        taken_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS healing_actions_by_time ON {t}healing_actions (taken_at)",
    "CREATE TABLE IF NOT EXISTS {t}healing_outcomes (
        action_id TEXT PRIMARY KEY,
        outcome TEXT NOT NULL,
        recorded_at TEXT NOT NULL)",
];

/// Keeps the record.
#[derive(Clone)]
pub struct HealingLog {
    ctx: ServiceContext,
}

impl HealingLog {
    /// The record of `ctx`'s database.
    pub fn new(ctx: &ServiceContext) -> Self {
        Self { ctx: ctx.clone() }
    }

    /// Its subscription.
    pub fn subscription() -> Subscription {
        Subscription::new(
            SUBSCRIPTION,
            [HEALING_ACTION_TAKEN, HEALING_OUTCOME_RECORDED],
        )
    }
}

#[async_trait]
impl Handler for HealingLog {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.record(envelope).await.map_err(Into::into)
    }
}

impl HealingLog {
    async fn record(&self, envelope: &Envelope) -> Result<(), AppError> {
        if envelope.event_type == HEALING_OUTCOME_RECORDED {
            return self.record_outcome(envelope).await;
        }
        let action: HealingAction = serde_json::from_value(envelope.payload.clone())
            .map_err(|e| AppError::decode("healing action", e))?;
        let body =
            serde_json::to_string(&action).map_err(|e| AppError::decode("healing action", e))?;
        let service = envelope.headers.get("service").cloned().unwrap_or_default();
        let db = &self.ctx.db;
        let insert = db.qualify(
            "INSERT INTO {t}healing_actions (event_id, service, policy, body, taken_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        );
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            if !uow.mark_inbox(SUBSCRIPTION, envelope.event_id).await? {
                return Ok(());
            }
            sqlx::query(insert)
                .bind(envelope.event_id.to_string())
                .bind(&service)
                .bind(action.policy.as_str())
                .bind(&body)
                .bind(ts(action.at))
                .execute(uow.tx())
                .await?;
            uow.commit().await?;
        });
        Ok(())
    }
}

impl HealingLog {
    async fn record_outcome(&self, envelope: &Envelope) -> Result<(), AppError> {
        let outcome: HealingOutcome = serde_json::from_value(envelope.payload.clone())
            .map_err(|e| AppError::decode("healing outcome", e))?;
        let db = &self.ctx.db;
        let insert = db.qualify(
            "INSERT INTO {t}healing_outcomes (action_id, outcome, recorded_at) \
             VALUES ($1, $2, $3) ON CONFLICT (action_id) DO NOTHING",
        );
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            if !uow.mark_inbox(SUBSCRIPTION, envelope.event_id).await? {
                return Ok(());
            }
            sqlx::query(insert)
                .bind(outcome.action_id.to_string())
                .bind(&outcome.outcome)
                .bind(ts(outcome.at))
                .execute(uow.tx())
                .await?;
            uow.commit().await?;
        });
        Ok(())
    }
}

/// `GET /self-healing/actions?limit=&policy=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionsQuery {
    limit: Option<i64>,
    policy: Option<PolicySwitch>,
}

/// A policy and whether it runs.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyState {
    /// `stuck-sagas`, `poison-messages`, `circuit-breaker`, `duration-drift`.
    pub name: PolicySwitch,
    /// Whether it runs in this system (as the AI service was started).
    pub enabled: bool,
}

/// One recorded decision.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordedAction {
    /// The service that acted.
    pub service: String,
    /// `stuck_saga`, `poison_message`, `circuit_breaker`, `duration_drift`.
    pub policy: String,
    /// What it is about (a saga, a message, a dependency, a step).
    pub subject: String,
    /// What the policy saw.
    pub observed: String,
    /// What it did.
    pub action: String,
    /// The kind of action (`open_circuit`, `dead_letter`, ...).
    pub kind: String,
    /// How it went, when known.
    #[schema(required = true)]
    pub outcome: Option<String>,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// `GET /self-healing/actions`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionsResponse {
    /// Every policy and whether it runs.
    pub policies: Vec<PolicyState>,
    /// Newest first, at most `limit`.
    pub actions: Vec<RecordedAction>,
}

fn policy_name(p: PolicySwitch) -> &'static str {
    match p {
        PolicySwitch::StuckSagas => "stuck_saga",
        PolicySwitch::PoisonMessages => "poison_message",
        PolicySwitch::CircuitBreaker => "circuit_breaker",
        PolicySwitch::DurationDrift => "duration_drift",
    }
}

/// `GET /self-healing/actions`: the policies' latest decisions.
pub(crate) async fn actions(
    State(log): State<HealingLog>,
    query: Result<Query<ActionsQuery>, QueryRejection>,
) -> Result<Json<ActionsResponse>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let limit = i64::from(bounded("limit", q.limit, 50, MAX_LIMIT)?);
    let db = &log.ctx.db;
    let select = "SELECT a.service, a.body, o.outcome FROM {t}healing_actions a \
         LEFT JOIN {t}healing_outcomes o ON o.action_id = a.event_id";
    let (sql, policy) = match q.policy {
        Some(p) => (
            db.qualify(&format!(
                "{select} WHERE a.policy = $2 ORDER BY a.taken_at DESC, a.event_id DESC LIMIT $1"
            )),
            Some(policy_name(p)),
        ),
        None => (
            db.qualify(&format!(
                "{select} ORDER BY a.taken_at DESC, a.event_id DESC LIMIT $1"
            )),
            None,
        ),
    };
    type Row = (String, String, Option<String>);
    let rows: Vec<Row> = with_db!(db, store => {
        let mut query = sqlx::query(sql).bind(limit);
        if let Some(p) = policy {
            query = query.bind(p);
        }
        query
            .fetch_all(store.read_pool())
            .await
            .map_err(AppError::from)?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(AppError::from)?
    });
    let mut actions = Vec::with_capacity(rows.len());
    for (service, body, later) in rows {
        match serde_json::from_str::<HealingAction>(&body) {
            Ok(a) => actions.push(RecordedAction {
                service,
                policy: a.policy.as_str().to_owned(),
                subject: a.subject,
                observed: a.observed,
                action: a.action,
                kind: serde_json::to_value(a.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                outcome: later.or(a.outcome),
                at: a.at,
            }),
            Err(e) => tracing::warn!(error = %e, "ai: a stored healing action does not read"),
        }
    }
    let settings: &HealingSettings = &log.ctx.settings.healing;
    let policies = [
        PolicySwitch::StuckSagas,
        PolicySwitch::PoisonMessages,
        PolicySwitch::CircuitBreaker,
        PolicySwitch::DurationDrift,
    ]
    .into_iter()
    .map(|name| PolicyState {
        name,
        enabled: settings.on(name),
    })
    .collect();
    Ok(Json(ActionsResponse { policies, actions }))
}

/// The kind and time of the latest recorded action of `policy` about each subject.
pub async fn latest_by_subject(
    db: &crate::db::Db,
    policy: PolicySwitch,
) -> Result<HashMap<String, (ActionKind, chrono::DateTime<chrono::Utc>)>, AppError> {
    let sql = db.qualify(
        "SELECT body FROM {t}healing_actions WHERE policy = $1 ORDER BY taken_at, event_id",
    );
    let bodies: Vec<(String,)> = with_db!(db, store => {
        sqlx::query_as(sql.clone())
            .bind(policy_name(policy))
            .fetch_all(store.read_pool())
            .await?
    });
    let mut latest = HashMap::new();
    for (body,) in bodies {
        match serde_json::from_str::<HealingAction>(&body) {
            Ok(a) => {
                latest.insert(a.subject, (a.kind, a.at));
            }
            Err(e) => tracing::warn!(error = %e, "ai: a stored healing action does not read"),
        }
    }
    Ok(latest)
}

/// The consumer of the record, for the AI service's task list.
pub fn consume(ctx: &ServiceContext) -> tokio::task::JoinHandle<()> {
    ctx.consume(HealingLog::subscription(), Arc::new(HealingLog::new(ctx)))
}
