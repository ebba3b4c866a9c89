//! The payment service (8003): charges and refunds through the simulated gateway.
//!
//! One transaction per order at most (the order id is the key): a repeated or retried
//! `payment.requested` answers with the first charge's outcome and never charges twice; a
//! refund happens once, and only for a charge that went through. The gateway is simulated and
//! says so in every transaction (`simulated: true`).
//!
//! Gateway calls go through a circuit breaker (`saga_ai::healing::CircuitBreaker`, the
//! circuit-breaker policy of [`crate::healing`]): when half the calls of 30 s fail (10 at
//! least) it opens for 10 s, and charges meanwhile wait for it or fail fast
//! (`--payment-breaker`). `POST /gateway/outage` starts a simulated outage to see it work,
//! `PUT /gateway/latency` makes the gateway slower or faster (the duration-drift policy's
//! fault); `GET /gateway` shows the latency, the outage and the breaker's state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use saga_ai::healing::{CircuitBreaker, CircuitConfig, CircuitState, HealingAction, Permit};
use saga_core::broker::Subscription;
use saga_core::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::json::ApiJson;
use crate::api::money::Money;
use crate::api::problem::{FieldError, Problem};
use crate::consumer::Handler;
use crate::context::{Running, ServiceContext};
use crate::error::AppError;
use crate::healing::circuit::CircuitLog;
use crate::healing::{BreakerMode, HealingSink, PolicySwitch};
use crate::messages::{OrderPayload, Outcome};
use crate::order_saga::events;
use crate::payment_gateway::{ChargeOutcome, MAX_LATENCY, Outage, SimulatedGateway};
use crate::services::common::{health_routes, parse_ts, parse_uuid, reply, stored_uuid, ts};
use crate::with_db;

/// The payment service's tables.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t}transactions (
        order_id TEXT PRIMARY KEY,
        transaction_id TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        amount_cents BIGINT NOT NULL,
        payment_method TEXT NOT NULL,
        status TEXT NOT NULL,
        gateway_reference TEXT,
        failure_reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {t}refunds (
        order_id TEXT PRIMARY KEY,
        refund_id TEXT NOT NULL,
        amount_cents BIGINT NOT NULL,
        gateway_reference TEXT NOT NULL,
        created_at TEXT NOT NULL)",
];

/// The subscription of the service.
pub const SUBSCRIPTION: &str = "payment";

/// `GET /transactions/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransactionResponse {
    /// The transaction.
    pub id: Uuid,
    /// The order (the idempotency key of the charge).
    pub order_id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Amount charged (or declined).
    pub amount: Money,
    /// How the customer paid.
    pub payment_method: String,
    /// `processed`, `failed` or `refunded`.
    pub status: String,
    /// The gateway's reference of the charge.
    #[schema(required = true)]
    pub gateway_reference: Option<String>,
    /// Why it was declined.
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// The refund, once refunded.
    #[schema(required = true)]
    pub refund_id: Option<Uuid>,
    /// Always true: the gateway is a simulation.
    pub simulated: bool,
    /// When it was charged.
    pub created_at: chrono::DateTime<Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<Utc>,
}

#[derive(Clone)]
struct Payments {
    ctx: ServiceContext,
    gateway: SimulatedGateway,
    /// The gateway's circuit breaker; `None` when the policy is switched off.
    breaker: Option<Arc<Mutex<CircuitBreaker>>>,
    mode: BreakerMode,
    heal: HealingSink,
    /// The breaker's decisions' ids and outcomes.
    circuit_log: Arc<Mutex<CircuitLog>>,
}

/// The payment gateway's name in the breaker's records.
const GATEWAY: &str = "payment-gateway";

/// `POST /gateway/outage`: a simulated outage.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutageRequest {
    /// Share of gateway calls failing, 0 to 1 (default 1).
    #[serde(default = "one")]
    pub error_rate: f64,
    /// How long, in seconds (1 to 3600).
    pub seconds: u64,
}

fn one() -> f64 {
    1.0
}

/// `PUT /gateway/latency`: how long the simulated gateway takes from now on.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyRequest {
    /// Milliseconds per charge or refund, 0 to 60000.
    pub latency_ms: u64,
}

/// `GET /gateway`: the simulated gateway's outage and the circuit breaker.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GatewayStatus {
    /// Always true: the gateway is a simulation.
    pub simulated: bool,
    /// How long a charge or refund takes now, in milliseconds.
    pub latency_ms: u64,
    /// The outage in progress, if any.
    pub outage: Option<Outage>,
    /// `closed`, `open` or `half_open`; `off` when the policy is switched off.
    pub circuit: String,
    /// What charges do while the circuit is open.
    pub breaker_mode: BreakerMode,
}

/// Starts the payment service.
pub async fn start(ctx: ServiceContext) -> Result<Running, AppError> {
    ctx.db.migrate(MIGRATIONS).await?;
    let healing = &ctx.settings.healing;
    let svc = Payments {
        gateway: SimulatedGateway::new(ctx.settings.gateway),
        breaker: healing.on(PolicySwitch::CircuitBreaker).then(|| {
            Arc::new(Mutex::new(CircuitBreaker::new(
                GATEWAY,
                CircuitConfig::default(),
            )))
        }),
        mode: healing.breaker_mode,
        heal: crate::healing::sink(&ctx),
        circuit_log: Arc::default(),
        ctx: ctx.clone(),
    };
    let tasks = vec![
        ctx.consume(
            Subscription::new(
                SUBSCRIPTION,
                [events::PAYMENT_REQUESTED, events::PAYMENT_REFUND_REQUESTED],
            )
            .ordered(),
            Arc::new(svc.clone()),
        ),
    ];
    let router = Router::new()
        .route("/transactions/{order_id}", get(get_transaction))
        .route("/gateway", get(gateway_status))
        .merge(crate::http::admin_only(
            Router::new()
                .route("/gateway/outage", post(start_outage).delete(end_outage))
                .route("/gateway/latency", put(set_latency)),
            ctx.settings.admin_token.as_ref(),
        ))
        .with_state(svc)
        .merge(health_routes(ctx.service, ctx.db.clone()));
    Ok(Running { router, tasks })
}

impl Payments {
    async fn charge(&self, command: &Envelope) -> Result<(), AppError> {
        let order = OrderPayload::from_value(&command.payload)?;
        let db = &self.ctx.db;
        let existing = self.transaction(order.order_id).await?;
        // The gateway is called outside the transaction (it is slow); it is idempotent per
        // order, and the row below is written once, so a repeat never charges twice.
        let outcome = match &existing {
            Some(_) => None,
            None => Some(self.call_gateway(&order).await?),
        };
        let insert = db.qualify(
            "INSERT INTO {t}transactions (order_id, transaction_id, customer_id, amount_cents, \
             payment_method, status, gateway_reference, failure_reason, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (order_id) DO NOTHING",
        );
        let now = ts(Utc::now());
        with_db!(db, store => {
            let (status, reference, reason) = match (&existing, outcome) {
                (Some(t), _) => (t.status.clone(), t.gateway_reference.clone(), t.failure_reason.clone()),
                (None, Some(ChargeOutcome::Approved { gateway_reference, .. })) => {
                    ("processed".to_owned(), Some(gateway_reference), None)
                }
                (None, Some(ChargeOutcome::Declined { reason, .. })) => {
                    ("failed".to_owned(), None, Some(reason))
                }
                (None, None) => return Err(AppError::Config("no charge outcome".into())),
            };
            let mut uow = store.begin().await?;
            // Every write in one batch: on SQLite one call to the database.
            let mut batch = uow.batch();
            batch.mark_inbox(SUBSCRIPTION, command.event_id);
            let charge = existing.is_none().then(|| {
                batch
                    .execute(insert.clone())
                    .bind(order.order_id.to_string())
                    .bind(Uuid::new_v5(&order.order_id, b"charge").to_string())
                    .bind(order.customer_id.to_string())
                    .bind(order.total_amount.cents())
                    .bind(&order.payment_method)
                    .bind(&status)
                    .bind(&reference)
                    .bind(&reason)
                    .bind(&now)
                    .id()
            });
            let (kind, payload) = if status == "failed" {
                (
                    events::PAYMENT_FAILED,
                    serde_json::to_value(Outcome {
                        order_id: order.order_id,
                        detail: reason.unwrap_or_else(|| "declined".to_owned()),
                    })
                    .map_err(|e| AppError::decode("outcome", e))?,
                )
            } else {
                (
                    events::PAYMENT_PROCESSED,
                    serde_json::json!({
                        "order_id": order.order_id,
                        "transaction_id": Uuid::new_v5(&order.order_id, b"charge"),
                        "amount": order.total_amount,
                        "simulated": true,
                    }),
                )
            };
            batch.publish(&[reply(command, kind, payload)]);
            let done = batch.run().await?;
            if done.is_duplicate() {
                return Ok(());
            }
            if charge.and_then(|c| done.rows_affected(c)) == Some(0) {
                // A concurrent attempt wrote it first: answer from its row on retry.
                return Err(AppError::Core(saga_core::Error::VersionConflict {
                    entity: "transaction",
                    id: order.order_id.to_string(),
                    expected: 0,
                    actual: 1,
                }));
            }
            uow.commit().await?;
        });
        Ok(())
    }

    /// Records a decision of the breaker, with the outcomes of earlier ones it settles.
    fn record_breaker(&self, action: HealingAction) {
        let records = self
            .circuit_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .records(action);
        for record in records {
            (self.heal)(record);
        }
    }

    /// One charge through the circuit breaker: a call that fails (the gateway unavailable) is
    /// an error the consumer retries; while the circuit is open the charge waits for it (up
    /// to twice its pause, then it is retried as a failure) or, in fail-fast mode, is declined
    /// as "gateway unavailable" without a call.
    async fn call_gateway(&self, order: &OrderPayload) -> Result<ChargeOutcome, AppError> {
        let call = || {
            self.gateway
                .charge(order.order_id, order.total_amount, &order.payment_method)
        };
        let Some(breaker) = &self.breaker else {
            return call()
                .await
                .map_err(|e| AppError::Unavailable(e.to_string()));
        };
        let lock = || breaker.lock().unwrap_or_else(|p| p.into_inner());
        let patience = lock().config().open_for * 2;
        let give_up = Utc::now() + patience;
        loop {
            let (permit, action) = lock().permit(Utc::now());
            if let Some(action) = action {
                self.record_breaker(action);
            }
            match permit {
                Permit::Allowed => {
                    let result = call().await;
                    let action = lock().record(Utc::now(), result.is_ok());
                    if let Some(action) = action {
                        self.record_breaker(action);
                    }
                    return result.map_err(|e| AppError::Unavailable(e.to_string()));
                }
                Permit::Rejected { retry_at } => match self.mode {
                    BreakerMode::FailFast => {
                        return Ok(ChargeOutcome::Declined {
                            reason: "payment gateway unavailable: its circuit is open \
                                     (simulated outage); not charged"
                                .to_owned(),
                            simulated: true,
                        });
                    }
                    BreakerMode::Wait => {
                        let now = Utc::now();
                        if now >= give_up {
                            return Err(AppError::Unavailable(
                                "the payment gateway's circuit stayed open".into(),
                            ));
                        }
                        let wait = (retry_at.min(give_up) - now)
                            .to_std()
                            .unwrap_or_default()
                            .max(Duration::from_millis(20));
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = self.ctx.shutdown.cancelled() => {
                                return Err(AppError::Unavailable("shutting down".into()));
                            }
                        }
                    }
                },
            }
        }
    }

    fn status(&self) -> GatewayStatus {
        let circuit = match &self.breaker {
            None => "off",
            Some(b) => match b.lock().unwrap_or_else(|p| p.into_inner()).state() {
                CircuitState::Closed => "closed",
                CircuitState::Open { .. } => "open",
                CircuitState::HalfOpen { .. } => "half_open",
            },
        };
        GatewayStatus {
            simulated: true,
            latency_ms: u64::try_from(self.gateway.latency().as_millis()).unwrap_or(u64::MAX),
            outage: self.gateway.outage(),
            circuit: circuit.to_owned(),
            breaker_mode: self.mode,
        }
    }

    async fn refund(&self, command: &Envelope) -> Result<(), AppError> {
        let order = OrderPayload::from_value(&command.payload)?;
        let db = &self.ctx.db;
        let existing = self.transaction(order.order_id).await?;
        let reference = match &existing {
            Some(t) if t.status == "processed" => Some(self.gateway.refund(order.order_id).await),
            _ => None,
        };
        let mark = db.qualify(
            "UPDATE {t}transactions SET status = 'refunded', updated_at = $1 \
             WHERE order_id = $2 AND status = 'processed'",
        );
        let insert = db.qualify(
            "INSERT INTO {t}refunds (order_id, refund_id, amount_cents, gateway_reference, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING",
        );
        let now = ts(Utc::now());
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            if !uow.mark_inbox(SUBSCRIPTION, command.event_id).await? {
                return Ok(());
            }
            let detail = match (&existing, reference) {
                (Some(t), Some(reference)) => {
                    let changed = sqlx::query(mark.clone())
                        .bind(&now)
                        .bind(order.order_id.to_string())
                        .execute(uow.tx())
                        .await?
                        .rows_affected();
                    if changed == 1 {
                        sqlx::query(insert.clone())
                            .bind(order.order_id.to_string())
                            .bind(Uuid::new_v5(&order.order_id, b"refund").to_string())
                            .bind(t.amount.cents())
                            .bind(&reference)
                            .bind(&now)
                            .execute(uow.tx())
                            .await?;
                        format!("refunded {}", t.amount)
                    } else {
                        "already refunded".to_owned()
                    }
                }
                (Some(t), None) if t.status == "refunded" => "already refunded".to_owned(),
                (Some(t), None) => format!("nothing to refund (charge {})", t.status),
                (None, _) => "nothing to refund (no charge)".to_owned(),
            };
            let payload = serde_json::to_value(Outcome { order_id: order.order_id, detail })
                .map_err(|e| AppError::decode("outcome", e))?;
            uow.publish(&[reply(command, events::PAYMENT_REFUNDED, payload)]).await?;
            uow.commit().await?;
        });
        Ok(())
    }

    async fn transaction(&self, order_id: Uuid) -> Result<Option<TransactionResponse>, AppError> {
        let sql = self.ctx.db.qualify(
            "SELECT t.transaction_id, t.order_id, t.customer_id, t.amount_cents, t.payment_method, \
             t.status, t.gateway_reference, t.failure_reason, r.refund_id, t.created_at, t.updated_at \
             FROM {t}transactions t LEFT JOIN {t}refunds r ON r.order_id = t.order_id \
             WHERE t.order_id = $1",
        );
        type Row = (
            String,
            String,
            String,
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
        );
        let row: Option<Row> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone())
                .bind(order_id.to_string())
                .fetch_optional(store.write_pool())
                .await?
        });
        Ok(row.map(
            |(
                id,
                order,
                customer,
                amount,
                method,
                status,
                reference,
                reason,
                refund,
                created,
                updated,
            )| {
                TransactionResponse {
                    id: stored_uuid(&id),
                    order_id: stored_uuid(&order),
                    customer_id: stored_uuid(&customer),
                    amount: Money::from_cents(amount),
                    payment_method: method,
                    status,
                    gateway_reference: reference,
                    failure_reason: reason,
                    refund_id: refund.as_deref().map(stored_uuid),
                    simulated: true,
                    created_at: parse_ts(&created),
                    updated_at: parse_ts(&updated),
                }
            },
        ))
    }
}

#[async_trait]
impl Handler for Payments {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let done = match envelope.event_type.as_str() {
            events::PAYMENT_REQUESTED => self.charge(envelope).await,
            events::PAYMENT_REFUND_REQUESTED => self.refund(envelope).await,
            other => Err(AppError::Config(format!(
                "payment: unexpected event {other}"
            ))),
        };
        done.map_err(Into::into)
    }
}

async fn get_transaction(
    State(svc): State<Payments>,
    Path(order_id): Path<String>,
) -> Result<Json<TransactionResponse>, Problem> {
    let id = parse_uuid("order", &order_id)?;
    svc.transaction(id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found("transaction for order", id))
}

async fn gateway_status(State(svc): State<Payments>) -> Json<GatewayStatus> {
    Json(svc.status())
}

async fn start_outage(
    State(svc): State<Payments>,
    ApiJson(req): ApiJson<OutageRequest>,
) -> Result<Json<GatewayStatus>, Problem> {
    let mut errors = Vec::new();
    if !(0.0..=1.0).contains(&req.error_rate) {
        errors.push(FieldError::new(
            "error_rate",
            format!("must be between 0 and 1, got {}", req.error_rate),
        ));
    }
    if !(1..=3600).contains(&req.seconds) {
        errors.push(FieldError::new(
            "seconds",
            format!("must be between 1 and 3600, got {}", req.seconds),
        ));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    tracing::warn!(
        error_rate = req.error_rate,
        seconds = req.seconds,
        "payment: simulated gateway outage started"
    );
    svc.gateway
        .start_outage(req.error_rate, Duration::from_secs(req.seconds));
    Ok(Json(svc.status()))
}

async fn end_outage(State(svc): State<Payments>) -> Json<GatewayStatus> {
    svc.gateway.end_outage();
    Json(svc.status())
}

async fn set_latency(
    State(svc): State<Payments>,
    ApiJson(req): ApiJson<LatencyRequest>,
) -> Result<Json<GatewayStatus>, Problem> {
    let max = u64::try_from(MAX_LATENCY.as_millis()).unwrap_or(u64::MAX);
    if req.latency_ms > max {
        return Err(Problem::validation(vec![FieldError::new(
            "latency_ms",
            format!("must be between 0 and {max}, got {}", req.latency_ms),
        )]));
    }
    tracing::warn!(
        latency_ms = req.latency_ms,
        "payment: simulated gateway latency changed"
    );
    svc.gateway
        .set_latency(Duration::from_millis(req.latency_ms));
    Ok(Json(svc.status()))
}
