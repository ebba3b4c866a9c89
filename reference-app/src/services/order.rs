//! The order service (8001): takes orders and orchestrates their sagas.
//!
//! `POST /orders` writes the order, starts its saga and appends `order.placed` and the first
//! command to the outbox in one transaction. Replies come back on the `order-saga`
//! subscription (ordered per order); each is applied by the pure transition function and its
//! consequences (saga state with the version check, log lines, the order's status, the next
//! commands, `order.confirmed|cancelled|failed`) commit in one unit of work. Passed deadlines
//! are swept the same way. The saga log served at `/orders/{id}/saga-logs` is a read model
//! built only from events: the events this service publishes and the replies it receives are
//! projected in the same unit of work that publishes or handles them, and the delivery events
//! it takes no part in come by the `order-delivery-log` subscription; `rebuild_saga_log` projects
//! the event log again. The known products are a read model of the inventory's
//! `product.upserted` events.
//!
//! `GET /orders/{id}/events` streams the saga log as server-sent events while the saga runs:
//! a stream wakes when this process commits lines of its order and reads the log again every
//! half second besides, so lines another replica wrote reach it too. The `/dead-letters`
//! routes are the operator's `reference-app dlq` over HTTP, on the whole system's dead
//! letters ([`crate::operator::DeadLetterDesk`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use saga_core::broker::Subscription;
use saga_core::saga::transition::{self, Outcome, SagaInput, Transition};
use saga_core::saga::{SagaDefinition, SagaInstance, SagaStatus};
use saga_core::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};
use uuid::Uuid;

use crate::api::json::ApiJson;
use crate::api::money::Money;
use crate::api::order::{CreateOrderRequest, OrderItem, OrderResponse, OrderStatus, ValidOrder};
use crate::api::problem::{FieldError, Problem};
use crate::consumer::Handler;
use crate::context::{Running, ServiceContext};
use crate::db::Db;
use crate::error::AppError;
use crate::healing::{self, PolicySwitch, stuck};
use crate::messages::{OrderPayload, OrderStatusChanged};
use crate::operator::Handled;
use crate::order_saga::{self, events};
use crate::services::common::{health_routes, parse_ts, parse_uuid, stored_uuid, ts, values_rows};
use crate::services::order_stats;
use crate::trace_context::{SPAN_TARGET, TraceContext};
use crate::with_db;
use tracing::Instrument;

/// The order service's tables.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t}orders (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        status TEXT NOT NULL,
        total_cents BIGINT NOT NULL,
        items TEXT NOT NULL,
        shipping_address TEXT NOT NULL,
        payment_method TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        request_body TEXT NOT NULL,
        failure_reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS orders_by_created ON {t}orders (created_at)",
    "CREATE TABLE IF NOT EXISTS {t}saga_log_view (
        event_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        step TEXT NOT NULL,
        status TEXT NOT NULL,
        event_type TEXT NOT NULL,
        details TEXT,
        created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS saga_log_view_by_order ON {t}saga_log_view (order_id, created_at)",
    "CREATE TABLE IF NOT EXISTS {t}known_products (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        price_cents BIGINT NOT NULL)",
    // The W3C trace context of each saga, from the request that placed its order.
    "CREATE TABLE IF NOT EXISTS {t}saga_traces (
        saga_id TEXT PRIMARY KEY,
        traceparent TEXT NOT NULL,
        tracestate TEXT)",
];

/// Namespace of the ids derived from an `Idempotency-Key`.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x5a6a_0001_0000_4000_8000_6f72_6465_7273);

/// The subscription names of the service.
pub mod subscriptions {
    /// Replies to the saga's commands.
    pub const SAGA: &str = "order-saga";
    /// The delivery events, for the saga log read model (the only events of a saga the
    /// order service neither publishes nor receives as replies).
    pub const DELIVERY_LOG: &str = "order-delivery-log";
    /// Retired names, removed from the broker at start: `order-saga-log` took every saga
    /// event although all but the delivery events are projected where they are handled.
    pub const RETIRED: &[&str] = &["order-saga-log"];
    /// The inventory's catalog.
    pub const CATALOG: &str = "order-catalog";
}

/// The replies the saga waits for.
pub const REPLIES: &[&str] = &[
    events::FRAUD_CHECK_PASSED,
    events::FRAUD_CHECK_FAILED,
    events::INVENTORY_RESERVED,
    events::INVENTORY_RESERVE_FAILED,
    events::INVENTORY_RELEASED,
    events::PAYMENT_PROCESSED,
    events::PAYMENT_FAILED,
    events::PAYMENT_REFUNDED,
    events::SHIPPING_SCHEDULED,
    events::SHIPPING_FAILED,
];

/// The order service's shared state.
#[derive(Clone)]
pub struct OrderService {
    ctx: ServiceContext,
    definition: Arc<SagaDefinition>,
    waiters: Arc<Waiters>,
    /// Fired with the order's id after a unit of work wrote lines into its saga log: wakes
    /// the streams of `GET /orders/{id}/events` of this process.
    log_appended: broadcast::Sender<Uuid>,
    /// Whether another replica of the service may be running (and end sagas this process
    /// does not see end): always false embedded; on Postgres, whether the outbox has any
    /// live relay but this one, looked up every few seconds (true until known).
    peers: Arc<AtomicBool>,
}

impl std::fmt::Debug for OrderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderService").finish_non_exhaustive()
    }
}

/// Orders whose saga end someone awaits (`GET /orders/{id}/wait`).
#[derive(Default)]
struct Waiters(Mutex<HashMap<Uuid, Vec<oneshot::Sender<()>>>>);

impl Waiters {
    fn register(&self, order: Uuid) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(order).or_default();
        list.retain(|s| !s.is_closed());
        list.push(tx);
        rx
    }

    fn wake(&self, order: Uuid) {
        let list = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&order);
        for tx in list.into_iter().flatten() {
            let _ = tx.send(());
        }
    }
}

/// Starts the order service: migrations, consumers, deadline sweeper, routes.
pub async fn start(ctx: ServiceContext) -> Result<Running, AppError> {
    ctx.db.migrate(MIGRATIONS).await?;
    let svc = OrderService {
        definition: Arc::new(order_saga::definition_with_retries(
            ctx.settings.step_deadline,
            // With the stuck-saga policy off, a step past its deadline is compensated at once.
            u32::from(ctx.settings.healing.on(PolicySwitch::StuckSagas)),
        )),
        waiters: Arc::new(Waiters::default()),
        log_appended: broadcast::channel(LOG_WAKE_CAPACITY).0,
        peers: Arc::new(AtomicBool::new(matches!(ctx.db, Db::Postgres { .. }))),
        ctx: ctx.clone(),
    };
    for name in subscriptions::RETIRED {
        ctx.subscriber.remove_subscription(name).await?;
    }
    let tasks = vec![
        ctx.consume(
            Subscription::new(subscriptions::SAGA, REPLIES.iter().copied()).ordered(),
            Arc::new(SagaReplies(svc.clone())),
        ),
        ctx.consume(
            Subscription::new(
                subscriptions::DELIVERY_LOG,
                [events::SHIPPING_DISPATCHED, events::SHIPPING_DELIVERED],
            ),
            Arc::new(SagaLogProjection(svc.clone())),
        ),
        ctx.consume(
            Subscription::new(subscriptions::CATALOG, ["product.#"]),
            Arc::new(Catalog(svc.clone())),
        ),
        tokio::spawn(sweep_deadlines(svc.clone())),
        tokio::spawn(request_catalog(ctx.clone())),
        tokio::spawn(watch_peers(ctx.clone(), svc.peers.clone())),
    ];
    let router = Router::new()
        .route("/orders", post(create_order).get(list_orders))
        .route("/orders/stats", get(order_stats))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/saga-logs", get(saga_logs))
        .route("/orders/{id}/wait", get(wait_order))
        .route("/orders/{id}/events", get(order_events))
        .route("/dead-letters", get(list_dead_letters))
        .route("/dead-letters/{id}", get(get_dead_letter))
        .merge(crate::http::admin_only(
            Router::new()
                .route("/dead-letters/{id}/replay", post(replay_dead_letter))
                .route("/dead-letters/{id}/discard", post(discard_dead_letter)),
            ctx.settings.admin_token.as_ref(),
        ))
        .with_state(svc)
        .merge(health_routes(ctx.service, ctx.db.clone()));
    Ok(Running { router, tasks })
}

/// One line of the saga log read model: an event that stands for a step.
struct LogLine<'e> {
    envelope: &'e Envelope,
    step: &'static str,
    status: &'static str,
}

/// The saga log read model's lines of `envelopes` (those that stand for a step).
fn saga_log_lines<'e>(envelopes: impl IntoIterator<Item = &'e Envelope>) -> Vec<LogLine<'e>> {
    envelopes
        .into_iter()
        .filter_map(|envelope| {
            log_line(&envelope.event_type).map(|(step, status)| LogLine {
                envelope,
                step,
                status,
            })
        })
        .collect()
}

/// Binds `lines` in [`saga_log_insert`]'s column order onto a query or a batch statement.
macro_rules! bind_log_lines {
    ($query:expr, $lines:expr) => {{
        let mut query = $query;
        for line in $lines {
            let e = line.envelope;
            query = query
                .bind(e.event_id.to_string())
                .bind(e.aggregate_id.clone())
                .bind(e.correlation_id.to_string())
                .bind(line.step)
                .bind(line.status)
                .bind(e.event_type.clone())
                .bind(details_of(e))
                .bind(ts(e.timestamp));
        }
        query
    }};
}

/// The saga log read model's insert of `rows` lines (idempotent by event id).
fn saga_log_insert(rows: usize) -> String {
    format!(
        "INSERT INTO {{t}}saga_log_view (event_id, order_id, correlation_id, step, status, \
         event_type, details, created_at) VALUES {} ON CONFLICT (event_id) DO NOTHING",
        values_rows(rows, 8)
    )
}

// ---------------------------------------------------------------------------------------
// Writing orders.

type OrderRow = (
    String,         // id
    String,         // customer_id
    String,         // status
    i64,            // total_cents
    String,         // items
    String,         // shipping_address
    String,         // correlation_id
    String,         // created_at
    String,         // request_body
    Option<String>, // failure_reason
);

const ORDER_COLUMNS: &str = "id, customer_id, status, total_cents, items, shipping_address, \
     correlation_id, created_at, request_body, failure_reason";

fn order_response(row: OrderRow) -> Result<OrderResponse, AppError> {
    let (id, customer, status, total, items, address, correlation, created, _, _) = row;
    Ok(OrderResponse {
        id: stored_uuid(&id),
        customer_id: stored_uuid(&customer),
        status: serde_json::from_value(serde_json::Value::String(status))
            .map_err(|e| AppError::decode("order status", e))?,
        total_amount: Money::from_cents(total),
        items: serde_json::from_str(&items).map_err(|e| AppError::decode("order items", e))?,
        shipping_address: serde_json::from_str(&address)
            .map_err(|e| AppError::decode("shipping address", e))?,
        correlation_id: stored_uuid(&correlation),
        created_at: parse_ts(&created),
    })
}

fn status_name(status: OrderStatus) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "pending".to_owned(),
    }
}

/// What the unit of work of a `POST /orders` did.
enum Placed {
    /// A new order (201).
    Created(OrderResponse),
    /// The same key and body as an earlier request: its answer again (201).
    Repeated(OrderResponse),
    /// The key was first used with another body: nothing was written (422).
    KeyReused,
}

impl OrderService {
    /// Places the order, or answers the first answer again for a repeated key and body.
    async fn place(
        &self,
        order: ValidOrder,
        key: Option<&str>,
        trace: &TraceContext,
    ) -> Result<OrderResponse, Problem> {
        let now = Utc::now();
        let order_id = match key {
            Some(k) => Uuid::new_v5(&KEY_NAMESPACE, format!("order:{k}").as_bytes()),
            None => Uuid::now_v7(),
        };
        let saga_id = Uuid::new_v5(&order_id, b"saga");
        let payload = OrderPayload {
            order_id,
            customer_id: order.customer_id,
            items: order.items.clone(),
            total_amount: order.total_amount,
            shipping_address: order.shipping_address.clone(),
            payment_method: order.payment_method.clone(),
            created_at: now,
        };
        // What makes two requests "the same": everything but the time.
        let body = serde_json::json!({
            "customer_id": order.customer_id,
            "items": order.items,
            "shipping_address": order.shipping_address,
            "payment_method": order.payment_method,
        })
        .to_string();
        let data = serde_json::to_value(&payload).map_err(|_| Problem::internal())?;
        let t = transition::start(
            &self.definition,
            saga_id,
            order_id.to_string(),
            data.clone(),
            now,
        );
        let placed = Envelope::new(events::ORDER_PLACED, order_id.to_string(), data)
            .with_id(Uuid::new_v5(&order_id, b"order.placed"))
            .with_correlation_id(saga_id)
            .with_timestamp(now)
            .with_source("order");
        let mut outgoing = vec![placed];
        outgoing.extend(t.commands.iter().map(|c| c.to_envelope(now)));
        for envelope in &mut outgoing {
            trace.stamp(envelope);
        }
        let db = &self.ctx.db;
        let remember_trace = db.qualify(
            "INSERT INTO {t}saga_traces (saga_id, traceparent, tracestate) VALUES ($1, $2, $3) \
             ON CONFLICT (saga_id) DO NOTHING",
        );
        let insert = db.qualify(
            "INSERT INTO {t}orders (id, customer_id, status, total_cents, items, shipping_address, \
             payment_method, correlation_id, request_body, failure_reason, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $10) ON CONFLICT (id) DO NOTHING",
        );
        let select = db.qualify(&format!(
            "SELECT {ORDER_COLUMNS} FROM {{t}}orders WHERE id = $1"
        ));
        let items = serde_json::to_string(&order.items).map_err(|_| Problem::internal())?;
        let address =
            serde_json::to_string(&order.shipping_address).map_err(|_| Problem::internal())?;
        let lines = saga_log_lines(&outgoing);
        let result: Result<Placed, AppError> = with_db!(db, store => {
            async {
                let mut uow = store.begin().await?;
                let inserted = sqlx::query(insert.clone())
                    .bind(order_id.to_string())
                    .bind(order.customer_id.to_string())
                    .bind(status_name(OrderStatus::Pending))
                    .bind(order.total_amount.cents())
                    .bind(&items)
                    .bind(&address)
                    .bind(&order.payment_method)
                    .bind(saga_id.to_string())
                    .bind(&body)
                    .bind(ts(now))
                    .execute(uow.tx())
                    .await?
                    .rows_affected();
                if inserted == 0 {
                    let row: OrderRow = sqlx::query_as(select.clone())
                        .bind(order_id.to_string())
                        .fetch_one(uow.tx())
                        .await?;
                    if row.8 != body {
                        return Ok(Placed::KeyReused);
                    }
                    return Ok(Placed::Repeated(order_response(row)?));
                }
                // The rest in one batch: on SQLite one call to the database.
                let mut batch = uow.batch();
                batch.create_saga(&t.instance);
                batch
                    .execute(remember_trace.clone())
                    .bind(saga_id.to_string())
                    .bind(trace.parent.header())
                    .bind(trace.state.clone());
                batch.append_saga_log(&t.log);
                batch.publish(&outgoing);
                if !lines.is_empty() {
                    bind_log_lines!(batch.execute(db.qualify(&saga_log_insert(lines.len()))), &lines);
                }
                batch.run().await?;
                uow.commit().await?;
                Ok(Placed::Created(OrderResponse {
                    id: order_id,
                    customer_id: order.customer_id,
                    status: OrderStatus::Pending,
                    total_amount: order.total_amount,
                    items: order.items.clone(),
                    shipping_address: order.shipping_address.clone(),
                    correlation_id: saga_id,
                    created_at: parse_ts(&ts(now)),
                }))
            }
            .await
        });
        match result {
            Ok(Placed::Created(o)) => {
                self.log_appended(o.id);
                Ok(o)
            }
            Ok(Placed::KeyReused) => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was first used with a different request body; \
                 use a new key for a different order",
            )),
            Ok(Placed::Repeated(o)) => Ok(o),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the lines against the known catalog: every product exists and is offered at
    /// the price the customer saw.
    async fn check_catalog(&self, items: &[OrderItem]) -> Result<(), Problem> {
        let sql = self
            .ctx
            .db
            .qualify("SELECT name, price_cents FROM {t}known_products WHERE id = $1");
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let found: Option<(String, i64)> = with_db!(&self.ctx.db, store => {
                sqlx::query_as(sql.clone())
                    .bind(&item.product_id)
                    .fetch_optional(store.read_pool())
                    .await
                    .map_err(|e| Problem::from(AppError::from(e)))?
            });
            match found {
                None => errors.push(FieldError::new(
                    format!("items[{i}].product_id"),
                    format!("unknown product `{}`", item.product_id),
                )),
                Some((name, price)) if price != item.price.cents() => errors.push(FieldError::new(
                    format!("items[{i}].price"),
                    format!(
                        "{} costs {}, not {}",
                        name,
                        Money::from_cents(price),
                        item.price
                    ),
                )),
                Some(_) => {}
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(errors))
        }
    }

    async fn load_order(&self, id: Uuid) -> Result<Option<OrderResponse>, AppError> {
        let sql = self.ctx.db.qualify(&format!(
            "SELECT {ORDER_COLUMNS} FROM {{t}}orders WHERE id = $1"
        ));
        let row: Option<OrderRow> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone()).bind(id.to_string()).fetch_optional(store.read_pool()).await?
        });
        row.map(order_response).transpose()
    }

    async fn saga_status(&self, order: &OrderResponse) -> Result<SagaStatus, AppError> {
        let sagas = self.ctx.db.sagas();
        Ok(sagas.load(order.correlation_id).await?.status)
    }
}

async fn create_order(
    State(svc): State<OrderService>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<impl IntoResponse, Problem> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.trim().is_empty() && k.len() <= 255 => Some(k.trim().to_owned()),
            _ => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-idempotency-key",
                    "Bad Idempotency-Key",
                    "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
                ));
            }
        },
    };
    let order = request.validate()?;
    svc.check_catalog(&order.items).await?;
    let span = tracing::info_span!(target: SPAN_TARGET, "place_order");
    let trace = TraceContext::for_request_in(&headers, &span);
    let placed = svc
        .place(order, key.as_deref(), &trace)
        .instrument(span)
        .await?;
    Ok((StatusCode::CREATED, Json(placed)))
}

async fn get_order(
    State(svc): State<OrderService>,
    Path(id): Path<String>,
) -> Result<Json<OrderResponse>, Problem> {
    let id = parse_uuid("order", &id)?;
    match svc.load_order(id).await? {
        Some(o) => Ok(Json(o)),
        None => Err(Problem::not_found("order", id)),
    }
}

/// `GET /orders?status=&customer_id=&id_prefix=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<OrderStatus>,
    customer_id: Option<Uuid>,
    id_prefix: Option<String>,
    limit: Option<u32>,
}

async fn list_orders(
    State(svc): State<OrderService>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<OrderResponse>>, Problem> {
    let Query(q) = query?;
    let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 500));
    let pattern = match q.id_prefix.as_deref() {
        None => None,
        Some(p) => Some(order_stats::prefix_pattern(p).ok_or_else(|| {
            Problem::validation(vec![FieldError::new(
                "id_prefix",
                "must be the start of an order id: hexadecimal digits, hyphens where a UUID has them",
            )])
        })?),
    };
    let sql = svc.ctx.db.qualify(&format!(
        "SELECT {ORDER_COLUMNS} FROM {{t}}orders \
         WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR customer_id = $2) \
         AND (CAST($4 AS TEXT) IS NULL OR id LIKE $4) \
         ORDER BY created_at DESC LIMIT $3"
    ));
    let status = q.status.map(status_name);
    let customer = q.customer_id.map(|c| c.to_string());
    let rows: Vec<OrderRow> = with_db!(&svc.ctx.db, store => {
        sqlx::query_as(sql.clone())
            .bind(status)
            .bind(customer)
            .bind(limit)
            .bind(&pattern)
            .fetch_all(store.read_pool())
            .await
            .map_err(AppError::from)?
    });
    let orders = rows
        .into_iter()
        .map(order_response)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(orders))
}

/// `GET /orders/stats?from=&to=`: counts and revenue of the orders placed in the period.
async fn order_stats(
    State(svc): State<OrderService>,
    query: Result<Query<order_stats::StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<order_stats::OrderStatsResponse>, Problem> {
    let Query(q) = query?;
    let (from, to) = q.period()?;
    let sql = svc.ctx.db.qualify(
        "SELECT status, COUNT(*), CAST(COALESCE(SUM(total_cents), 0) AS BIGINT) \
         FROM {t}orders WHERE created_at >= $1 AND created_at < $2 GROUP BY status",
    );
    let rows: Vec<(String, i64, i64)> = with_db!(&svc.ctx.db, store => {
        sqlx::query_as(sql.clone())
            .bind(ts(from))
            .bind(ts(to))
            .fetch_all(store.read_pool())
            .await
            .map_err(AppError::from)?
    });
    Ok(Json(order_stats::OrderStatsResponse::from_rows(
        from, to, &rows,
    )))
}

/// `GET /orders/{id}/wait`: the order once its saga has ended, or when the time is up.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitResponse {
    /// Whether the saga has ended.
    pub terminal: bool,
    /// The saga's status (`running`, `compensating`, `completed`, `compensated`, `failed`).
    pub saga_status: String,
    /// The order.
    pub order: OrderResponse,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    timeout_ms: Option<u64>,
}

/// How often `GET /orders/{id}/wait` looks at the order again while replicas may end its saga.
const WAIT_RECHECK_REPLICAS: Duration = Duration::from_millis(250);
/// The same with no other replica (the embedded mode, or a replica alone): the saga's end
/// wakes the waiter; this look only covers a wake-up that went missing.
const WAIT_RECHECK_ALONE: Duration = Duration::from_secs(2);
/// How often a replica on Postgres looks up whether it has live peers.
const PEERS_EVERY: Duration = Duration::from_secs(5);

/// On Postgres, keeps `peers` up to date from the outbox's live relays (one per replica,
/// named after it): peers unless this replica's own relay is the only one live. Embedded:
/// nothing to watch.
async fn watch_peers(ctx: ServiceContext, peers: Arc<AtomicBool>) {
    let Db::Postgres { store, .. } = &ctx.db else {
        return;
    };
    let mut tick = tokio::time::interval(PEERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Before this replica's relay is up, or after an error: assume peers.
        let alone = store
            .live_relays()
            .await
            .is_ok_and(|live| live == [ctx.replica.as_str()]);
        if peers.swap(!alone, Ordering::AcqRel) == alone {
            tracing::info!(
                peers = !alone,
                "order: {}",
                if alone {
                    "no other replica live; waits rely on this process's wake-ups"
                } else {
                    "other replicas may be live; waits look again every 250 ms"
                }
            );
        }
    }
}

async fn wait_order(
    State(svc): State<OrderService>,
    Path(id): Path<String>,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WaitResponse>, Problem> {
    let id = parse_uuid("order", &id)?;
    let Query(q) = query?;
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(10_000).min(60_000));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Register before looking, so an end between the look and the wait is not missed.
        let woken = svc.waiters.register(id);
        let Some(order) = svc.load_order(id).await? else {
            return Err(Problem::not_found("order", id));
        };
        let status = svc.saga_status(&order).await?;
        let now = tokio::time::Instant::now();
        if status.is_terminal() || now >= deadline {
            // The order was read before the saga: if the saga ended in between, the row read
            // is older than its end. The order's final status commits with the saga's end, so
            // reading it again now sees it.
            let order = if status.is_terminal() {
                svc.load_order(id)
                    .await?
                    .ok_or_else(|| Problem::not_found("order", id))?
            } else {
                order
            };
            return Ok(Json(WaitResponse {
                terminal: status.is_terminal(),
                saga_status: status.as_str().to_owned(),
                order,
            }));
        }
        // Another replica may end the saga: look again at least every 250 ms. With none,
        // this process wakes its waiters when a saga ends; the look is a safety net.
        let nap = (deadline - now).min(if svc.peers.load(Ordering::Acquire) {
            WAIT_RECHECK_REPLICAS
        } else {
            WAIT_RECHECK_ALONE
        });
        let _ = tokio::time::timeout(nap, woken).await;
    }
}

/// How many wake-ups of event streams may wait unread (a stream that falls behind reads its
/// log again, so a lost wake-up costs nothing).
const LOG_WAKE_CAPACITY: usize = 1024;
/// The longest an event stream of `GET /orders/{id}/events` lasts (also its default).
const EVENTS_MAX: Duration = Duration::from_secs(300);
/// How often an event stream reads the log without a wake-up: lines another replica
/// appended reach it within this.
const EVENTS_POLL: Duration = Duration::from_millis(500);
/// How often an idle event stream sends a comment, so proxies keep the connection.
const EVENTS_KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    timeout_ms: Option<u64>,
}

/// `GET /orders/{id}/events`: the order's saga log as server-sent events. First the lines so
/// far, then each new one as it is appended (event `log`, a [`SagaLogResponse`]), then event
/// `end` (a [`WaitResponse`]) when the saga has ended or the stream's time is up, and the
/// stream closes.
async fn order_events(
    State(svc): State<OrderService>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, Problem> {
    let id = parse_uuid("order", &id)?;
    let Query(q) = query?;
    let lifetime = q
        .timeout_ms
        .map_or(EVENTS_MAX, Duration::from_millis)
        .min(EVENTS_MAX);
    // Listen before the first read, so that no line appended after it goes unnoticed.
    let woken = svc.log_appended.subscribe();
    let Some(order) = svc.load_order(id).await? else {
        return Err(Problem::not_found("order", id));
    };
    let stream = LogStream {
        saga_id: order.correlation_id,
        order_id: id,
        svc,
        woken,
        sent: HashSet::new(),
        queue: VecDeque::new(),
        deadline: tokio::time::Instant::now() + lifetime,
        started: false,
        done: false,
    };
    let events =
        futures_util::stream::unfold(
            stream,
            |mut s| async move { s.next().await.map(|e| (Ok(e), s)) },
        );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(EVENTS_KEEP_ALIVE)))
}

/// One event stream of an order's saga log.
struct LogStream {
    svc: OrderService,
    order_id: Uuid,
    saga_id: Uuid,
    woken: broadcast::Receiver<Uuid>,
    /// The lines sent (by event id): lines may be appended out of time order.
    sent: HashSet<Uuid>,
    queue: VecDeque<Event>,
    deadline: tokio::time::Instant,
    started: bool,
    done: bool,
}

impl LogStream {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if self.started {
                self.wait().await;
            }
            self.started = true;
            if let Err(e) = self.read().await {
                tracing::warn!(order = %self.order_id, error = %e, "order events: reading failed");
                // Read again at the next tick, until the stream's time is up.
                if tokio::time::Instant::now() >= self.deadline
                    || self.svc.ctx.shutdown.is_cancelled()
                {
                    self.done = true;
                }
            }
        }
    }

    /// Until this order's log may have grown: a wake-up for it, the next tick, the deadline
    /// or shutdown.
    async fn wait(&mut self) {
        let until = (tokio::time::Instant::now() + EVENTS_POLL).min(self.deadline);
        let shutdown = self.svc.ctx.shutdown.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                _ = shutdown.cancelled() => return,
                woken = self.woken.recv() => match woken {
                    Ok(order) if order != self.order_id => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep_until(until).await;
                        return;
                    }
                },
            }
        }
    }

    /// Queues the lines not sent yet, and the end when the saga has ended or time is up.
    async fn read(&mut self) -> Result<(), AppError> {
        // The saga's status before the log: the lines of the unit of work that ended it are
        // in a log read after it.
        let status = self.svc.ctx.db.sagas().load(self.saga_id).await?.status;
        for line in self.svc.saga_log(self.order_id).await? {
            if self.sent.insert(line.id) {
                self.queue.push_back(json_event("log", &line)?);
            }
        }
        let out_of_time =
            tokio::time::Instant::now() >= self.deadline || self.svc.ctx.shutdown.is_cancelled();
        if status.is_terminal() || out_of_time {
            let Some(order) = self.svc.load_order(self.order_id).await? else {
                return Err(AppError::Core(saga_core::Error::NotFound {
                    entity: "order",
                    id: self.order_id.to_string(),
                }));
            };
            let end = WaitResponse {
                terminal: status.is_terminal(),
                saga_status: status.as_str().to_owned(),
                order,
            };
            self.queue.push_back(json_event("end", &end)?);
            self.done = true;
        }
        Ok(())
    }
}

fn json_event(name: &str, data: &impl Serialize) -> Result<Event, AppError> {
    let text = serde_json::to_string(data).map_err(|e| AppError::decode("event data", e))?;
    Ok(Event::default().event(name).data(text))
}

// ---------------------------------------------------------------------------------------
// Dead letters, for operators: what `reference-app dlq` does, over HTTP.

/// A message a consumer gave up on, as the operator routes show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterResponse {
    /// The dead letter's id (what replay and discard take).
    pub id: Uuid,
    /// The subscription (consumer) that gave up.
    pub subscription: String,
    /// The message's event id.
    pub event_id: Uuid,
    /// The message's type.
    pub event_type: String,
    /// The message's aggregate (an order's id, for the saga's messages).
    pub aggregate_id: String,
    /// The message's correlation id (the saga's).
    pub correlation_id: Uuid,
    /// The message that caused it, if recorded.
    #[schema(required = true)]
    pub causation_id: Option<Uuid>,
    /// When the message was sent.
    pub sent_at: chrono::DateTime<Utc>,
    /// The message's schema version.
    pub version: u32,
    /// The service that sent it.
    pub source: String,
    /// The message's headers.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Why it was given up on.
    pub reason: String,
    /// How many deliveries were tried.
    pub attempts: u32,
    /// The handler's last error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// `pending`, `replayed` or `discarded`.
    pub status: String,
    /// When it was given up on.
    pub dead_lettered_at: chrono::DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: chrono::DateTime<Utc>,
    /// The message's payload.
    pub payload: serde_json::Value,
}

impl From<saga_core::DeadLetter> for DeadLetterResponse {
    fn from(d: saga_core::DeadLetter) -> Self {
        Self {
            id: d.id,
            subscription: d.subscription,
            event_id: d.envelope.event_id,
            event_type: d.envelope.event_type,
            aggregate_id: d.envelope.aggregate_id,
            correlation_id: d.envelope.correlation_id,
            causation_id: d.envelope.causation_id,
            sent_at: d.envelope.timestamp,
            version: d.envelope.version,
            source: d.envelope.source,
            headers: d.envelope.headers,
            reason: d.reason,
            attempts: d.attempts,
            last_error: d.last_error,
            status: d.status.as_str().to_owned(),
            dead_lettered_at: d.dead_lettered_at,
            updated_at: d.updated_at,
            payload: d.envelope.payload,
        }
    }
}

/// `GET /dead-letters?status=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    status: Option<DeadLetterStatusFilter>,
    limit: Option<u32>,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatusFilter {
    /// Waiting for an operator (the default).
    Pending,
    /// Delivered again.
    Replayed,
    /// Dropped on purpose.
    Discarded,
    /// Every status.
    All,
}

async fn list_dead_letters(
    State(svc): State<OrderService>,
    query: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeadLetterResponse>>, Problem> {
    use saga_core::dead_letter::{DeadLetterFilter, DeadLetterStatus};
    let Query(q) = query?;
    let status = match q.status.unwrap_or(DeadLetterStatusFilter::Pending) {
        DeadLetterStatusFilter::Pending => Some(DeadLetterStatus::Pending),
        DeadLetterStatusFilter::Replayed => Some(DeadLetterStatus::Replayed),
        DeadLetterStatusFilter::Discarded => Some(DeadLetterStatus::Discarded),
        DeadLetterStatusFilter::All => None,
    };
    let filter = DeadLetterFilter {
        status,
        limit: Some(q.limit.unwrap_or(100).clamp(1, 1000) as usize),
        ..DeadLetterFilter::default()
    };
    let letters = svc.ctx.dead_letters.list(&filter).await?;
    Ok(Json(letters.into_iter().map(Into::into).collect()))
}

async fn get_dead_letter(
    State(svc): State<OrderService>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterResponse>, Problem> {
    let id = parse_uuid("dead letter", &id)?;
    match svc.ctx.dead_letters.get(id).await? {
        Some(letter) => Ok(Json(letter.into())),
        None => Err(Problem::not_found("dead letter", id)),
    }
}

async fn replay_dead_letter(
    State(svc): State<OrderService>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterResponse>, Problem> {
    let id = parse_uuid("dead letter", &id)?;
    let handled = svc.ctx.dead_letters.replay(id).await?;
    operator_answer(&svc, id, handled, "replayed").await
}

async fn discard_dead_letter(
    State(svc): State<OrderService>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterResponse>, Problem> {
    let id = parse_uuid("dead letter", &id)?;
    let handled = svc.ctx.dead_letters.discard(id).await?;
    operator_answer(&svc, id, handled, "discarded").await
}

/// The letter after a replay or discard; 409 if it was not pending, 404 if unknown.
async fn operator_answer(
    svc: &OrderService,
    id: Uuid,
    handled: Handled,
    verb: &str,
) -> Result<Json<DeadLetterResponse>, Problem> {
    let letter = match handled {
        Handled::Unknown => None,
        Handled::Done | Handled::NotPending => svc.ctx.dead_letters.get(id).await?,
    };
    let Some(letter) = letter else {
        return Err(Problem::not_found("dead letter", id));
    };
    if handled == Handled::NotPending {
        return Err(Problem::conflict(format!(
            "dead letter {id} is {}, not pending: it cannot be {verb}",
            letter.status.as_str()
        )));
    }
    Ok(Json(letter.into()))
}

// ---------------------------------------------------------------------------------------
// The saga's transactional shell.

/// How many times an input is re-applied after losing a version race.
const MAX_CONFLICTS: usize = 8;

impl OrderService {
    /// Applies a reply or a passed deadline to a saga, committing its consequences in one
    /// unit of work; `inbox` marks the reply handled in the same transaction.
    async fn apply(
        &self,
        saga_id: Uuid,
        input: SagaInput<'_>,
        inbox: Option<Uuid>,
    ) -> Result<Option<Transition>, AppError> {
        let mut last = None;
        for _ in 0..MAX_CONFLICTS {
            match self.apply_once(saga_id, input, inbox).await {
                Err(AppError::Core(e)) if e.kind() == saga_core::ErrorKind::Conflict => {
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(AppError::Core(last.unwrap_or_else(|| {
            saga_core::Error::InvalidArgument("version conflicts".into())
        })))
    }

    async fn apply_once(
        &self,
        saga_id: Uuid,
        input: SagaInput<'_>,
        inbox: Option<Uuid>,
    ) -> Result<Option<Transition>, AppError> {
        let now = Utc::now();
        let sagas = self.ctx.db.sagas();
        let instance = sagas.load(saga_id).await?;
        let t = transition::handle(&self.definition, &instance, input, now)?;
        let before = order_saga::order_status(&instance);
        let after = order_saga::order_status(&t.instance);
        let order_id = instance.aggregate_id.clone();
        let reply: Option<&Envelope> = match input {
            SagaInput::Reply(env) => Some(env),
            SagaInput::DeadlineExpired => None,
        };
        let mut outgoing: Vec<Envelope> = t.commands.iter().map(|c| c.to_envelope(now)).collect();
        if t.outcome == Outcome::Applied {
            if let Some(event) = status_event(&instance, &t.instance, before, after, now)? {
                outgoing.push(event);
            }
            // The stuck-saga policy's records commit with the decision they describe.
            if self.ctx.settings.healing.on(PolicySwitch::StuckSagas) {
                let records = stuck::records(&self.definition, &instance, &t.instance, reply, now);
                outgoing.extend(healing::stuck_events(self.ctx.service.name(), &records)?);
            }
            // Everything the transition sends carries the saga's trace context.
            if !outgoing.is_empty()
                && let Some(trace) = self.trace_of(saga_id, reply).await?
            {
                for envelope in &mut outgoing {
                    trace.stamp(envelope);
                }
            }
        }
        let update = self.ctx.db.qualify(
            "UPDATE {t}orders SET status = $1, failure_reason = $2, updated_at = $3 WHERE id = $4",
        );
        let db = &self.ctx.db;
        // The reply's line and those of the events this transition publishes (if it
        // applied), in one statement.
        let published = if t.outcome == Outcome::Applied {
            outgoing.as_slice()
        } else {
            &[]
        };
        let lines = saga_log_lines(published.iter().chain(reply));
        let applied = with_db!(db, store => {
            async {
                let mut uow = store.begin().await?;
                // Every write in one batch: on SQLite one call to the database.
                let mut batch = uow.batch();
                if let Some(event_id) = inbox {
                    batch.mark_inbox(subscriptions::SAGA, event_id);
                }
                if t.outcome == Outcome::Applied {
                    batch.save_saga(&t.instance, instance.version);
                    if before != after || t.instance.is_terminal() {
                        batch
                            .execute(update.clone())
                            .bind(status_name(after))
                            .bind(t.instance.failure.clone())
                            .bind(ts(now))
                            .bind(&order_id);
                    }
                    batch.publish(&outgoing);
                }
                if !lines.is_empty() {
                    bind_log_lines!(batch.execute(db.qualify(&saga_log_insert(lines.len()))), &lines);
                }
                batch.append_saga_log(&t.log);
                if batch.run().await?.is_duplicate() {
                    return Ok::<_, AppError>(false);
                }
                uow.commit().await?;
                Ok(true)
            }
            .await
        })?;
        if !applied {
            return Ok(None);
        }
        if let Ok(id) = Uuid::parse_str(&order_id) {
            self.log_appended(id);
            if t.instance.is_terminal() {
                self.waiters.wake(id);
            }
        }
        Ok(Some(t))
    }
}

impl OrderService {
    /// The saga's trace context: the reply's, or (a deadline, a reply without one) the one
    /// kept when its order was placed.
    async fn trace_of(
        &self,
        saga_id: Uuid,
        reply: Option<&Envelope>,
    ) -> Result<Option<TraceContext>, AppError> {
        if let Some(trace) = reply.and_then(TraceContext::of) {
            return Ok(Some(trace));
        }
        let sql = self
            .ctx
            .db
            .qualify("SELECT traceparent, tracestate FROM {t}saga_traces WHERE saga_id = $1");
        let row: Option<(String, Option<String>)> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone())
                .bind(saga_id.to_string())
                .fetch_optional(store.read_pool())
                .await?
        });
        Ok(row.and_then(|(parent, state)| TraceContext::from_stored(&parent, state)))
    }
}

/// The `order.*` event a transition causes, if the order's status changed in a way the other
/// services hear about: confirmed when paid, cancelled or failed when the saga has ended.
fn status_event(
    before_saga: &SagaInstance,
    saga: &SagaInstance,
    before: OrderStatus,
    after: OrderStatus,
    now: chrono::DateTime<Utc>,
) -> Result<Option<Envelope>, AppError> {
    let ended = saga.is_terminal() && !before_saga.is_terminal();
    let kind = match after {
        OrderStatus::Confirmed if before != OrderStatus::Confirmed => events::ORDER_CONFIRMED,
        OrderStatus::Cancelled if ended => events::ORDER_CANCELLED,
        OrderStatus::Failed if ended => events::ORDER_FAILED,
        _ => return Ok(None),
    };
    let order = OrderPayload::from_value(&saga.data)?;
    let body = OrderStatusChanged {
        order_id: order.order_id,
        customer_id: order.customer_id,
        status: after,
        total_amount: order.total_amount,
        reason: saga.failure.clone(),
    };
    let payload = serde_json::to_value(&body).map_err(|e| AppError::decode("status event", e))?;
    Ok(Some(
        Envelope::new(kind, saga.aggregate_id.clone(), payload)
            .with_id(Uuid::new_v5(&saga.id, kind.as_bytes()))
            .with_correlation_id(saga.id)
            .with_timestamp(now)
            .with_source("order"),
    ))
}

struct SagaReplies(OrderService);

#[async_trait]
impl Handler for SagaReplies {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        match self
            .0
            .apply(
                envelope.correlation_id,
                SagaInput::Reply(envelope),
                Some(envelope.event_id),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(AppError::Core(saga_core::Error::NotFound { .. })) => Err(HandlerError::permanent(
                format!("no saga {} for this reply", envelope.correlation_id),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Applies passed deadlines, every half second.
async fn sweep_deadlines(svc: OrderService) {
    let sagas = svc.ctx.db.sagas();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = svc.ctx.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let due = match sagas.due(Utc::now(), 100).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "deadline sweep: listing due sagas failed");
                continue;
            }
        };
        for instance in due {
            if let Err(e) = svc
                .apply(instance.id, SagaInput::DeadlineExpired, None)
                .await
            {
                tracing::warn!(saga = %instance.id, error = %e, "deadline sweep failed");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Read models.

/// One line of an order's saga log, built from the events of its saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SagaLogResponse {
    /// The event's id.
    pub id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The saga.
    pub correlation_id: Uuid,
    /// The step (`fraud_screening`, `reserve_inventory`, `process_payment`,
    /// `schedule_shipping`, or `order`).
    pub step: String,
    /// `started`, `completed`, `failed`, `compensating`, `compensated` or the order's status.
    pub status: String,
    /// The event.
    pub event_type: String,
    /// Why, or what was done, in words.
    #[schema(required = true)]
    pub details: Option<String>,
    /// When the event happened.
    pub created_at: chrono::DateTime<Utc>,
}

/// The step and status an event stands for in the saga log.
pub fn log_line(event_type: &str) -> Option<(&'static str, &'static str)> {
    use crate::order_saga::steps::*;
    Some(match event_type {
        events::ORDER_PLACED => ("order", "placed"),
        events::ORDER_CONFIRMED => ("order", "confirmed"),
        events::ORDER_CANCELLED => ("order", "cancelled"),
        events::ORDER_FAILED => ("order", "failed"),
        events::FRAUD_CHECK_REQUESTED => (FRAUD_SCREENING, "started"),
        events::FRAUD_CHECK_PASSED => (FRAUD_SCREENING, "completed"),
        events::FRAUD_CHECK_FAILED => (FRAUD_SCREENING, "failed"),
        events::INVENTORY_RESERVE_REQUESTED => (RESERVE_INVENTORY, "started"),
        events::INVENTORY_RESERVED => (RESERVE_INVENTORY, "completed"),
        events::INVENTORY_RESERVE_FAILED => (RESERVE_INVENTORY, "failed"),
        events::INVENTORY_RELEASE_REQUESTED => (RESERVE_INVENTORY, "compensating"),
        events::INVENTORY_RELEASED => (RESERVE_INVENTORY, "compensated"),
        events::PAYMENT_REQUESTED => (PROCESS_PAYMENT, "started"),
        events::PAYMENT_PROCESSED => (PROCESS_PAYMENT, "completed"),
        events::PAYMENT_FAILED => (PROCESS_PAYMENT, "failed"),
        events::PAYMENT_REFUND_REQUESTED => (PROCESS_PAYMENT, "compensating"),
        events::PAYMENT_REFUNDED => (PROCESS_PAYMENT, "compensated"),
        events::SHIPPING_SCHEDULE_REQUESTED => (SCHEDULE_SHIPPING, "started"),
        events::SHIPPING_SCHEDULED => (SCHEDULE_SHIPPING, "completed"),
        events::SHIPPING_FAILED => (SCHEDULE_SHIPPING, "failed"),
        events::SHIPPING_DISPATCHED => ("delivery", "dispatched"),
        events::SHIPPING_DELIVERED => ("delivery", "delivered"),
        _ => return None,
    })
}

/// The words of an event's payload worth showing in the log (`detail`, `reason`).
fn details_of(envelope: &Envelope) -> Option<String> {
    let p = &envelope.payload;
    for key in ["detail", "reason", "tracking_number", "transaction_id"] {
        if let Some(s) = p.get(key).and_then(|v| v.as_str()) {
            return Some(format!("{key}: {s}"));
        }
    }
    None
}

/// Writes one event into the saga log read model (idempotent by event id).
pub async fn project_saga_log(db: &crate::db::Db, envelope: &Envelope) -> Result<(), AppError> {
    let lines = saga_log_lines([envelope]);
    if lines.is_empty() {
        return Ok(());
    }
    let sql = db.qualify(&saga_log_insert(1));
    with_db!(db, store => {
        bind_log_lines!(sqlx::query(sql.clone()), &lines)
            .execute(store.write_pool())
            .await?;
    });
    Ok(())
}

struct SagaLogProjection(OrderService);

#[async_trait]
impl Handler for SagaLogProjection {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        // Idempotent by the event id: no inbox needed.
        project_saga_log(&self.0.ctx.db, envelope).await?;
        if log_line(&envelope.event_type).is_some()
            && let Ok(id) = Uuid::parse_str(&envelope.aggregate_id)
        {
            self.0.log_appended(id);
        }
        Ok(())
    }
}

async fn saga_logs(
    State(svc): State<OrderService>,
    Path(id): Path<String>,
) -> Result<Json<Vec<SagaLogResponse>>, Problem> {
    let id = parse_uuid("order", &id)?;
    if svc.load_order(id).await?.is_none() {
        return Err(Problem::not_found("order", id));
    }
    Ok(Json(svc.saga_log(id).await?))
}

impl OrderService {
    /// The order's saga log, oldest first.
    async fn saga_log(&self, id: Uuid) -> Result<Vec<SagaLogResponse>, AppError> {
        let sql = self.ctx.db.qualify(
            "SELECT event_id, order_id, correlation_id, step, status, event_type, details, \
             created_at FROM {t}saga_log_view WHERE order_id = $1 ORDER BY created_at, event_id",
        );
        type Row = (
            String,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            String,
        );
        let rows: Vec<Row> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone())
                .bind(id.to_string())
                .fetch_all(store.read_pool())
                .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(e, o, c, step, status, event_type, details, at)| SagaLogResponse {
                    id: stored_uuid(&e),
                    order_id: stored_uuid(&o),
                    correlation_id: stored_uuid(&c),
                    step,
                    status,
                    event_type,
                    details,
                    created_at: parse_ts(&at),
                },
            )
            .collect())
    }

    /// Wakes this process's event streams of the order (nobody listening is fine).
    fn log_appended(&self, order: Uuid) {
        let _ = self.log_appended.send(order);
    }
}

/// `product.upserted`: a product of the inventory's catalog, as the order service keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductUpserted {
    /// The product.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its price.
    pub price: Money,
    /// The units it was stocked with (`available + reserved + sold` at the inventory); absent
    /// in events of inventories older than this field. The AI service projects the available
    /// stock from it and the reservations it sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_stock: Option<i64>,
}

struct Catalog(OrderService);

#[async_trait]
impl Handler for Catalog {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let p: ProductUpserted = serde_json::from_value(envelope.payload.clone())
            .map_err(|e| HandlerError::permanent(format!("product.upserted payload: {e}")))?;
        let db = &self.0.ctx.db;
        let sql = db.qualify(
            "INSERT INTO {t}known_products (id, name, price_cents) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents",
        );
        with_db!(db, store => {
            sqlx::query(sql.clone())
                .bind(&p.id)
                .bind(&p.name)
                .bind(p.price.cents())
                .execute(store.write_pool())
                .await
                .map_err(|e| HandlerError::from(AppError::from(e)))?;
        });
        Ok(())
    }
}

/// Asks the inventory for its catalog once `ctx`'s subscriptions exist (the inventory also
/// publishes it when it starts: whichever comes second completes the exchange). The order and
/// the AI service both keep the catalog.
pub async fn request_catalog(ctx: ServiceContext) {
    let who = ctx.service;
    if !ctx.ready.wait_all(Duration::from_secs(30)).await {
        tracing::warn!("{who}: subscriptions not ready after 30 s; asking for the catalog anyway");
    }
    let request = Envelope::new(CATALOG_SYNC_REQUESTED, "catalog", serde_json::json!({}))
        .with_source(who.name());
    let db = &ctx.db;
    let sent: Result<(), AppError> = with_db!(db, store => {
        async {
            let mut uow = store.begin().await?;
            uow.publish(&[request]).await?;
            uow.commit().await?;
            Ok(())
        }
        .await
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "{who}: asking for the catalog failed");
    }
}

/// The order service asks the inventory to publish its catalog.
pub const CATALOG_SYNC_REQUESTED: &str = "catalog.sync.requested";
/// A product of the catalog, as the inventory publishes it.
pub const PRODUCT_UPSERTED: &str = "product.upserted";

/// Rebuilds the saga log read model of `order_db` from the event log in `analytics_db` (the
/// lines of events the log still holds; older lines are kept as they are); returns how many
/// events were replayed.
pub async fn rebuild_saga_log(
    order_db: &crate::db::Db,
    analytics_db: &crate::db::Db,
) -> Result<u64, AppError> {
    let events = crate::services::analytics::logged_events(analytics_db).await?;
    // Lines older than the log (pruned by retention) stay; the rest is rebuilt.
    let Some(oldest) = events.iter().map(|e| e.timestamp).min() else {
        return Ok(0);
    };
    let clear = order_db.qualify("DELETE FROM {t}saga_log_view WHERE created_at >= $1");
    with_db!(order_db, store => {
        sqlx::query(clear.clone()).bind(ts(oldest)).execute(store.write_pool()).await?;
    });
    let mut n = 0;
    for envelope in &events {
        project_saga_log(order_db, envelope).await?;
        n += 1;
    }
    Ok(n)
}
