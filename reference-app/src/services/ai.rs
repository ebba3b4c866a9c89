//! The AI service (8007): fraud screening on the saga's critical path and the seed's
//! "real-time analysis" of every order (fraud score with its reasons, payment-success
//! probability), demand forecasts, recommendations and saga anomalies, from the models of
//! `saga-ai` (see [`crate::ai`]).
//!
//! | route | answers from |
//! |-------|--------------|
//! | `POST /fraud/check`, `GET /analysis/{order_id}` | the fraud and payment-success models |
//! | `POST /predict/payment-success` | the payment-success model and the customer's past orders |
//! | `GET /forecast/{product_id}` | `saga-ai`'s forecaster on the units sold per day, the projected stock |
//! | `GET /recommendations/{customer_id}` | `saga-ai`'s recommender fitted on the purchases seen |
//! | `GET /anomalies` | `saga-ai`'s saga anomaly detector on the order sagas recorded, and the duration-drift policy's figures ([`super::drift`]) |
//! | `GET /models` | every model's metadata and held-out metrics |
//! | `POST /chat` | `saga-ai`'s assistant over the projections and the order service ([`super::assistant`]) |
//!
//! It keeps its own table of past orders per customer (the history the models score against)
//! and the analysis of every order it screened; [`super::ai_insights`] keeps the
//! projections the other routes read, from a subscription of its own.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use saga_core::broker::Subscription;
use saga_core::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ai::{
    AiAppError, AiEngine, Assessment, CustomerHistory, FraudDecision, OrderFacts, OrderOutcome,
    PastOrder, address_key, decide,
};
use crate::api::json::ApiJson;
use crate::api::money::Money;
use crate::api::order::{Address, CreateOrderRequest, PaymentMethod};
use crate::api::problem::{FieldError, Problem};
use crate::consumer::Handler;
use crate::context::{Running, ServiceContext};
use crate::error::AppError;
use crate::healing::PolicySwitch;
use crate::messages::{OrderPayload, Outcome};
use crate::order_saga::events;
use crate::services::ai_insights::{self, Insights};
use crate::services::assistant::{self, ShopTools};
use crate::services::common::{health_routes, parse_ts, parse_uuid, reply, stored_uuid, ts};
use crate::services::drift::{self, DriftWatch};
use crate::with_db;

/// The AI service's tables.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t}customer_orders (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        total_cents BIGINT NOT NULL,
        address_key TEXT NOT NULL,
        outcome TEXT NOT NULL,
        created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS customer_orders_by_customer ON {t}customer_orders (customer_id, created_at)",
    "CREATE TABLE IF NOT EXISTS {t}analyses (
        order_id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        decision TEXT NOT NULL,
        created_at TEXT NOT NULL)",
    // The projections of `ai_insights`: the catalog with each product's initial stock ...
    "CREATE TABLE IF NOT EXISTS {t}catalog (
        product_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        initial_stock BIGINT,
        first_seen_at TEXT NOT NULL)",
    // ... the lines of every order placed, and how the order ended (units sold, purchases) ...
    "CREATE TABLE IF NOT EXISTS {t}order_lines (
        order_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        line_no BIGINT NOT NULL,
        quantity BIGINT NOT NULL,
        customer_id TEXT NOT NULL,
        placed_at TEXT NOT NULL,
        placed_day TEXT NOT NULL,
        PRIMARY KEY (order_id, product_id))",
    "CREATE INDEX IF NOT EXISTS order_lines_by_product ON {t}order_lines (product_id, placed_day)",
    "CREATE INDEX IF NOT EXISTS order_lines_by_time ON {t}order_lines (placed_at)",
    "CREATE TABLE IF NOT EXISTS {t}order_states (
        order_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        rank BIGINT NOT NULL,
        recorded_at TEXT NOT NULL)",
    // ... what the reservations hold (a reservation holds its lines until released) ...
    "CREATE TABLE IF NOT EXISTS {t}stock_lines (
        order_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (order_id, product_id))",
    "CREATE INDEX IF NOT EXISTS stock_lines_by_product ON {t}stock_lines (product_id)",
    "CREATE TABLE IF NOT EXISTS {t}stock_releases (
        order_id TEXT PRIMARY KEY,
        recorded_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {t}stock_base (
        product_id TEXT PRIMARY KEY,
        taken BIGINT NOT NULL)",
    // ... and the order saga's events (saga traces).
    "CREATE TABLE IF NOT EXISTS {t}saga_events (
        event_id TEXT PRIMARY KEY,
        saga_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        occurred_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS saga_events_by_saga ON {t}saga_events (saga_id)",
    "CREATE INDEX IF NOT EXISTS saga_events_by_time ON {t}saga_events (occurred_at)",
    "CREATE TABLE IF NOT EXISTS {t}saga_runs (
        saga_id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS saga_runs_by_start ON {t}saga_runs (started_at)",
];

/// The subscription of the service.
pub const SUBSCRIPTION: &str = "ai";

/// How many of a customer's latest orders make their history.
const HISTORY_LIMIT: i64 = 500;

/// `GET /analysis/{order_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalysisResponse {
    /// The order.
    pub order_id: Uuid,
    /// The models' assessment.
    #[serde(flatten)]
    pub assessment: Assessment,
    /// `pass` or `reject`.
    pub decision: String,
    /// When it was screened.
    pub analyzed_at: chrono::DateTime<Utc>,
}

#[derive(Clone)]
struct Ai {
    ctx: ServiceContext,
    engine: Arc<AiEngine>,
}

/// Starts the AI service: loads (or, the first time, trains) the models and the chat
/// assistant (which reads orders and dead letters from the order service at `order_url`),
/// then screens orders and records its projections.
pub async fn start(ctx: ServiceContext, order_url: &str) -> Result<Running, AppError> {
    ctx.db.migrate(MIGRATIONS).await?;
    ctx.db
        .migrate(crate::services::healing_log::MIGRATIONS)
        .await?;
    let dir = ctx.settings.model_dir.clone();
    let engine = AiEngine::load_or_train(&dir, |m| tracing::info!("ai: {m}"))
        .await
        .map_err(|e| AppError::Config(format!("AI models in {}: {e}", dir.display())))?;
    let engine = Arc::new(engine);
    let svc = Ai {
        ctx: ctx.clone(),
        engine: engine.clone(),
    };
    let drift = DriftWatch::new(
        ctx.settings.healing.drift,
        ctx.settings.healing.on(PolicySwitch::DurationDrift),
    );
    let insights = Insights::new(&ctx, engine, drift.clone());
    let chat = assistant::assistant(
        ShopTools::new(insights.clone(), order_url)?,
        ctx.settings.llm.clone(),
    )
    .await?;
    let tasks = vec![
        ctx.consume(
            Subscription::new(
                SUBSCRIPTION,
                [
                    events::FRAUD_CHECK_REQUESTED,
                    events::PAYMENT_PROCESSED,
                    events::PAYMENT_FAILED,
                ],
            )
            .ordered(),
            Arc::new(svc.clone()),
        ),
        // Few in flight: each holds the database's one writer, which screening waits for.
        ctx.consume(
            Subscription {
                prefetch: ai_insights::PREFETCH,
                ..Subscription::new(ai_insights::SUBSCRIPTION, ai_insights::subscribed_events())
            },
            Arc::new(insights.clone()),
        ),
        crate::services::healing_log::consume(&ctx),
        tokio::spawn(drift::run(
            ctx.clone(),
            ai_insights::Projection::new(ctx.db.clone()),
            drift,
        )),
        tokio::spawn(ai_insights::prune_every(
            ctx.db.clone(),
            ctx.shutdown.clone(),
        )),
        // The catalog (with each product's stock) may have been published before this
        // service subscribed.
        tokio::spawn(crate::services::order::request_catalog(ctx.clone())),
    ];
    let insight_routes = Router::new()
        .route("/forecast/{product_id}", get(ai_insights::forecast))
        .route(
            "/recommendations/{customer_id}",
            get(ai_insights::recommendations),
        )
        .route("/anomalies", get(ai_insights::anomalies))
        .route("/models", get(ai_insights::models))
        .with_state(insights);
    let router = Router::new()
        .route("/fraud/check", post(fraud_check))
        .route("/analysis/{order_id}", get(analysis))
        .route("/predict/payment-success", post(predict_payment))
        .with_state(svc)
        .merge(insight_routes)
        .merge(
            Router::new()
                .route("/chat", post(assistant::chat))
                .with_state(chat),
        )
        .merge(
            Router::new()
                .route(
                    "/self-healing/actions",
                    get(crate::services::healing_log::actions),
                )
                .with_state(crate::services::healing_log::HealingLog::new(&ctx)),
        )
        .merge(health_routes(ctx.service, ctx.db.clone()));
    Ok(Running { router, tasks })
}

fn outcome_name(o: OrderOutcome) -> &'static str {
    match o {
        OrderOutcome::Pending => "pending",
        OrderOutcome::Paid => "paid",
        OrderOutcome::PaymentFailed => "payment_failed",
        OrderOutcome::Rejected => "rejected",
    }
}

fn outcome_of(s: &str) -> OrderOutcome {
    match s {
        "paid" => OrderOutcome::Paid,
        "payment_failed" => OrderOutcome::PaymentFailed,
        "rejected" => OrderOutcome::Rejected,
        _ => OrderOutcome::Pending,
    }
}

fn facts_of(order: &OrderPayload) -> OrderFacts {
    OrderFacts {
        order_id: order.order_id,
        customer_id: order.customer_id,
        items: order.items.clone(),
        total: order.total_amount,
        shipping_address: order.shipping_address.clone(),
        payment_method: order.payment_method.clone(),
        created_at: order.created_at,
    }
}

impl Ai {
    async fn history(&self, facts: &OrderFacts) -> Result<CustomerHistory, AppError> {
        let sql = self.ctx.db.qualify(
            "SELECT order_id, total_cents, address_key, outcome, created_at FROM {t}customer_orders \
             WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2",
        );
        let rows: Vec<(String, i64, String, String, String)> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone())
                .bind(facts.customer_id.to_string())
                .bind(HISTORY_LIMIT)
                .fetch_all(store.read_pool())
                .await?
        });
        let past: Vec<PastOrder> = rows
            .into_iter()
            .map(|(id, total, key, outcome, at)| PastOrder {
                order_id: stored_uuid(&id),
                total: Money::from_cents(total),
                address_key: key,
                created_at: parse_ts(&at),
                outcome: outcome_of(&outcome),
            })
            .collect();
        Ok(CustomerHistory::before(facts, &past))
    }

    async fn screen(&self, command: &Envelope) -> Result<(), AppError> {
        let order = OrderPayload::from_value(&command.payload)?;
        let facts = facts_of(&order);
        let history = self.history(&facts).await?;
        let assessment = self.engine.assess(&facts, &history);
        let decision = decide(&assessment, self.ctx.settings.fraud_threshold);
        let db = &self.ctx.db;
        let remember = db.qualify(
            "INSERT INTO {t}customer_orders (order_id, customer_id, total_cents, address_key, \
             outcome, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
        );
        let store_analysis = db.qualify(
            "INSERT INTO {t}analyses (order_id, body, decision, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (order_id) DO NOTHING",
        );
        let trace = ai_insights::saga_event_statement(db);
        let body =
            serde_json::to_string(&assessment).map_err(|e| AppError::decode("assessment", e))?;
        let (decision_name, outcome, event) = match &decision {
            FraudDecision::Pass => (
                "pass",
                OrderOutcome::Pending,
                reply(
                    command,
                    events::FRAUD_CHECK_PASSED,
                    serde_json::json!({
                        "order_id": order.order_id,
                        "fraud_score": assessment.fraud_score,
                        "risk_level": assessment.risk_level,
                        "reasons": assessment.reasons,
                        "payment_success_probability": assessment.payment_success_probability,
                    }),
                ),
            ),
            FraudDecision::Reject { reason } => (
                "reject",
                OrderOutcome::Rejected,
                reply(
                    command,
                    events::FRAUD_CHECK_FAILED,
                    serde_json::to_value(Outcome {
                        order_id: order.order_id,
                        detail: reason.clone(),
                    })
                    .map_err(|e| AppError::decode("outcome", e))?,
                ),
            ),
        };
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            // Every write in one batch: on SQLite one call to the database.
            let mut batch = uow.batch();
            batch.mark_inbox(SUBSCRIPTION, command.event_id);
            batch
                .execute(remember.clone())
                .bind(order.order_id.to_string())
                .bind(order.customer_id.to_string())
                .bind(order.total_amount.cents())
                .bind(address_key(&order.shipping_address))
                .bind(outcome_name(outcome))
                .bind(ts(order.created_at));
            batch
                .execute(store_analysis.clone())
                .bind(order.order_id.to_string())
                .bind(&body)
                .bind(decision_name)
                .bind(ts(Utc::now()));
            for e in [command, &event] {
                batch
                    .execute(trace.clone())
                    .bind(e.event_id.to_string())
                    .bind(&e.aggregate_id)
                    .bind(&e.event_type)
                    .bind(ts(e.timestamp));
            }
            batch.publish(std::slice::from_ref(&event));
            if batch.run().await?.is_duplicate() {
                return Ok(());
            }
            uow.commit().await?;
        });
        Ok(())
    }

    /// Keeps the payment outcome of a past order (the models' history), and the event in the
    /// order's saga trace.
    async fn payment_outcome(
        &self,
        event: &Envelope,
        outcome: OrderOutcome,
    ) -> Result<(), AppError> {
        let db = &self.ctx.db;
        let sql = db.qualify("UPDATE {t}customer_orders SET outcome = $1 WHERE order_id = $2");
        let trace = ai_insights::saga_event_statement(db);
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            let mut batch = uow.batch();
            batch.mark_inbox(SUBSCRIPTION, event.event_id);
            batch
                .execute(sql.clone())
                .bind(outcome_name(outcome))
                .bind(&event.aggregate_id);
            batch
                .execute(trace.clone())
                .bind(event.event_id.to_string())
                .bind(&event.aggregate_id)
                .bind(&event.event_type)
                .bind(ts(event.timestamp));
            if batch.run().await?.is_duplicate() {
                return Ok(());
            }
            uow.commit().await?;
        });
        Ok(())
    }

    async fn stored_analysis(&self, order_id: Uuid) -> Result<Option<AnalysisResponse>, AppError> {
        let sql = self
            .ctx
            .db
            .qualify("SELECT body, decision, created_at FROM {t}analyses WHERE order_id = $1");
        let row: Option<(String, String, String)> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone())
                .bind(order_id.to_string())
                .fetch_optional(store.read_pool())
                .await?
        });
        row.map(|(body, decision, at)| {
            Ok(AnalysisResponse {
                order_id,
                assessment: serde_json::from_str(&body)
                    .map_err(|e| AppError::decode("assessment", e))?,
                decision,
                analyzed_at: parse_ts(&at),
            })
        })
        .transpose()
    }
}

#[async_trait]
impl Handler for Ai {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let done = match envelope.event_type.as_str() {
            events::FRAUD_CHECK_REQUESTED => self.screen(envelope).await,
            events::PAYMENT_PROCESSED => self.payment_outcome(envelope, OrderOutcome::Paid).await,
            events::PAYMENT_FAILED => {
                self.payment_outcome(envelope, OrderOutcome::PaymentFailed)
                    .await
            }
            other => Err(AppError::Config(format!("ai: unexpected event {other}"))),
        };
        done.map_err(Into::into)
    }
}

/// `POST /fraud/check`: scores an order body (as `POST /orders` takes it) without placing it.
async fn fraud_check(
    State(svc): State<Ai>,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<Json<Assessment>, Problem> {
    let order = request.validate()?;
    let facts = OrderFacts::from_valid_order(Uuid::now_v7(), &order, Utc::now());
    let history = svc.history(&facts).await?;
    Ok(Json(svc.engine.assess(&facts, &history)))
}

/// `POST /predict/payment-success`: what the payment-success model needs of an order.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentSuccessRequest {
    /// The customer (their past orders, as the AI service saw them, are read).
    pub customer_id: Uuid,
    /// The amount to charge; more than 0.
    pub amount: Money,
    /// How the customer pays (`credit_card` when not given).
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
}

/// What the payment-success model read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentSuccessFeatures {
    /// The model's payment method category (`card`, `wallet`, `bank_transfer`).
    pub method: String,
    /// The amount, in currency units.
    pub amount: f64,
    /// Days since the customer's first order the service saw (0 for a new customer).
    pub account_age_days: f64,
    /// The customer's earlier orders whose charge went through.
    pub past_successes: u32,
    /// The customer's earlier orders whose charge was declined.
    pub past_failures: u32,
    /// Recent attempts with this method at the gateway (the service does not watch the
    /// gateway: 0, as in fraud screening).
    pub gateway_attempts: u32,
    /// How many of those failed (0, likewise).
    pub gateway_failures: u32,
}

/// `POST /predict/payment-success`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentSuccessResponse {
    /// The customer.
    pub customer_id: Uuid,
    /// Estimated probability that the charge succeeds, in `[0, 1]`.
    pub probability: f64,
    /// What the model read.
    pub features: PaymentSuccessFeatures,
    /// The model (`payment_success`).
    pub model: String,
    /// Its kind.
    pub kind: String,
    /// Its file's format version.
    pub format_version: u32,
    /// When it was trained.
    pub trained_at: chrono::DateTime<Utc>,
}

async fn predict_payment(
    State(svc): State<Ai>,
    ApiJson(request): ApiJson<PaymentSuccessRequest>,
) -> Result<Json<PaymentSuccessResponse>, Problem> {
    let mut errors = Vec::new();
    if request.amount.cents() <= 0 {
        errors.push(FieldError::new("amount", "must be more than 0"));
    }
    let method = PaymentMethod::name_of(request.payment_method, &mut errors);
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let facts = OrderFacts {
        order_id: Uuid::now_v7(),
        customer_id: request.customer_id,
        items: Vec::new(),
        total: request.amount,
        shipping_address: Address {
            street: String::new(),
            city: String::new(),
            state: String::new(),
            zip: String::new(),
        },
        payment_method: method,
        created_at: Utc::now(),
    };
    let history = svc.history(&facts).await?;
    let prediction = svc
        .engine
        .predict_payment(&facts, &history)
        .map_err(|e| match e {
            AiAppError::InvalidInput(m) => {
                Problem::validation(vec![FieldError::new("payment_method.type", m)])
            }
            other => {
                tracing::error!(error = %other, "ai: the payment-success model failed");
                Problem::internal()
            }
        })?;
    let model = svc.engine.model("payment_success");
    let f = prediction.features;
    Ok(Json(PaymentSuccessResponse {
        customer_id: request.customer_id,
        probability: prediction.probability,
        features: PaymentSuccessFeatures {
            method: f.method.as_str().to_owned(),
            amount: f.amount,
            account_age_days: f.account_age_days,
            past_successes: f.past_successes,
            past_failures: f.past_failures,
            gateway_attempts: f.gateway_attempts,
            gateway_failures: f.gateway_failures,
        },
        model: "payment_success".to_owned(),
        kind: model.map_or_else(String::new, |m| m.kind.clone()),
        format_version: model.and_then(|m| m.format_version).unwrap_or_default(),
        trained_at: model.and_then(|m| m.trained_at).unwrap_or_default(),
    }))
}

async fn analysis(
    State(svc): State<Ai>,
    Path(order_id): Path<String>,
) -> Result<Json<AnalysisResponse>, Problem> {
    let id = parse_uuid("order", &order_id)?;
    svc.stored_analysis(id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found("analysis for order", id))
}
