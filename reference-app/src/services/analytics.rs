//! The analytics service (8006): the event log and the business figures, a read model built
//! only from events.
//!
//! Every event the system publishes is appended to `event_log` (its id the key, so a
//! redelivery appends nothing) in the same transaction that folds it into the figures, so
//! each event is counted once, across restarts too. `rebuild` folds the log again from
//! nothing (`reference-app replay analytics`); the fold is insensitive to the order of events
//! of different orders, so the rebuilt figures equal the live ones. The log is kept for a
//! retention period (`--event-log-retention-days`, 30 by default); pruned events are folded
//! into a baseline first, and a rebuild starts from it. `GET /metrics/timeseries` reads the
//! log minute by minute (orders placed, confirmed and failed, completed sagas, revenue, p95
//! saga duration).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use saga_core::broker::Subscription;
use saga_core::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use sqlx::SqlStr;

use crate::api::money::Money;
use crate::api::problem::Problem;
use crate::consumer::Handler;
use crate::context::{Running, ServiceContext};
use crate::db::Db;
use crate::error::AppError;
use crate::order_saga::events;
use crate::services::analytics_cache::FiguresCache;
use crate::services::common::{health_routes, parse_ts, ts, values_rows};
use crate::with_db;

/// The analytics service's tables.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t}event_log (
        event_id TEXT PRIMARY KEY,
        event_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS event_log_by_recorded ON {t}event_log (recorded_at)",
    "CREATE INDEX IF NOT EXISTS event_log_by_occurred ON {t}event_log (occurred_at)",
    "CREATE TABLE IF NOT EXISTS {t}event_counts (
        event_type TEXT PRIMARY KEY,
        count BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {t}order_facts (
        order_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        rank BIGINT NOT NULL,
        total_cents BIGINT NOT NULL,
        created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS order_facts_by_created ON {t}order_facts (created_at)",
    // What the pruned part of the event log added up to, so that a rebuild from the log
    // still gives the live figures after retention removed old events.
    "CREATE TABLE IF NOT EXISTS {t}event_counts_base (
        event_type TEXT PRIMARY KEY,
        count BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {t}order_facts_base (
        order_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        rank BIGINT NOT NULL,
        total_cents BIGINT NOT NULL,
        created_at TEXT NOT NULL)",
];

/// The subscription of the service: every event.
pub const SUBSCRIPTION: &str = "analytics";

/// Most events recorded in one unit of work (what is already waiting, never more).
const BATCH: usize = 64;

/// `GET /metrics`: the seed's business figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricsResponse {
    /// Orders placed.
    pub total_orders: i64,
    /// Orders whose status is confirmed.
    pub confirmed_orders: i64,
    /// Orders that failed or were cancelled.
    pub failed_orders: i64,
    /// Sum of the confirmed orders' totals.
    pub total_revenue: Money,
    /// Charges that went through, of all charges (0 when there were none).
    pub payment_success_rate: f64,
    /// Revenue per confirmed order.
    pub average_order_value: Money,
}

/// `GET /events/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventStats {
    /// Events recorded.
    pub total_events: i64,
    /// Events per type.
    pub events_by_type: BTreeMap<String, i64>,
}

/// `GET /orders/recent`: one order as analytics knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecentOrder {
    /// The order.
    pub order_id: String,
    /// Its latest status.
    pub status: String,
    /// Its total.
    pub total_amount: Money,
    /// When it was placed.
    pub created_at: chrono::DateTime<Utc>,
}

/// An order status and its rank: a status only ever replaces a lower one, so the fold does
/// not depend on the order in which events of one order arrive.
fn order_status_of(event_type: &str) -> Option<(&'static str, i64)> {
    Some(match event_type {
        events::ORDER_PLACED => ("pending", 0),
        events::ORDER_CONFIRMED => ("confirmed", 1),
        events::ORDER_CANCELLED => ("cancelled", 2),
        events::ORDER_FAILED => ("failed", 2),
        _ => return None,
    })
}

#[derive(Clone)]
struct Analytics {
    ctx: ServiceContext,
    cache: Option<FiguresCache>,
}

/// Starts the analytics service.
pub async fn start(ctx: ServiceContext) -> Result<Running, AppError> {
    ctx.db.migrate(MIGRATIONS).await?;
    let cache = match &ctx.settings.redis_url {
        Some(url) => Some(FiguresCache::connect(url, &ctx.settings.redis_prefix).await?),
        None => None,
    };
    let svc = Analytics {
        ctx: ctx.clone(),
        cache: cache.clone(),
    };
    let mut tasks = vec![ctx.consume(
        Subscription::new(SUBSCRIPTION, ["#"]),
        Arc::new(svc.clone()),
    )];
    if let Some(retention) = ctx.settings.event_log_retention {
        tasks.push(tokio::spawn(prune_every(
            ctx.db.clone(),
            retention,
            ctx.shutdown.clone(),
        )));
    }
    if let Some(cache) = cache {
        tasks.push(tokio::spawn(cache.reconcile_every(
            ctx.db.clone(),
            std::time::Duration::from_secs(10),
            ctx.shutdown.clone(),
        )));
    }
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/timeseries", get(timeseries))
        .route("/events/stats", get(event_stats))
        .route("/orders/recent", get(recent_orders))
        .with_state(svc)
        .merge(health_routes(ctx.service, ctx.db.clone()));
    Ok(Running { router, tasks })
}

/// Folds one event into the figures on `conn`; evaluates to the change of the order's row
/// (status and total before and after), for order events.
macro_rules! fold_on {
    ($db:expr, $conn:expr, $envelope:expr) => {
        fold_on!($db, $conn, $envelope, "")
    };
    ($db:expr, $conn:expr, $envelope:expr, $suffix:expr) => {{
        let envelope: &Envelope = $envelope;
        count_on!($db, $conn, &envelope.event_type, 1i64, $suffix);
        fold_order_on!($db, $conn, envelope, $suffix)
    }};
}

/// Adds `n` events of `event_type` to the counts on `conn`.
macro_rules! count_on {
    ($db:expr, $conn:expr, $event_type:expr, $n:expr, $suffix:expr) => {{
        let n: i64 = $n;
        sqlx::query(count_statement($db, $suffix))
            .bind($event_type)
            .bind(n)
            .execute(&mut *$conn)
            .await?;
    }};
}

/// `INSERT ... event_counts{suffix}` adding `$2` events of type `$1`.
fn count_statement(db: &Db, suffix: &str) -> SqlStr {
    db.qualify(
        &"INSERT INTO {t}event_counts{s} AS c (event_type, count) VALUES ($1, $2) \
          ON CONFLICT (event_type) DO UPDATE SET count = c.count + excluded.count"
            .replace("{s}", suffix),
    )
}

/// Appends `envelopes` (their JSON `bodies` beside) to the event log on `conn`, one
/// statement per [`APPEND_ROWS`]; evaluates to the ids of the events appended: not those
/// logged before (a redelivery), and an event given twice once.
macro_rules! append_on {
    ($db:expr, $conn:expr, $envelopes:expr, $bodies:expr, $recorded_at:expr) => {{
        let db: &Db = $db;
        let envelopes: &[&Envelope] = $envelopes;
        let bodies: &[String] = $bodies;
        let recorded_at: &String = $recorded_at;
        let mut appended: HashSet<String> = HashSet::new();
        for (events, bodies) in envelopes
            .chunks(APPEND_ROWS)
            .zip(bodies.chunks(APPEND_ROWS))
        {
            let sql = db.qualify(&append_statement(events.len()));
            let mut query = sqlx::query_as::<_, (String,)>(sql);
            for (envelope, body) in events.iter().zip(bodies) {
                query = query
                    .bind(envelope.event_id.to_string())
                    .bind(&envelope.event_type)
                    .bind(&envelope.aggregate_id)
                    .bind(envelope.correlation_id.to_string())
                    .bind(ts(envelope.timestamp))
                    .bind(recorded_at)
                    .bind(body);
            }
            appended.extend(
                query
                    .fetch_all(&mut *$conn)
                    .await?
                    .into_iter()
                    .map(|(id,)| id),
            );
        }
        appended
    }};
}

/// Folds an order event into the order's row of the figures on `conn` (other events change
/// nothing there); evaluates to the change of the row.
macro_rules! fold_order_on {
    ($db:expr, $conn:expr, $envelope:expr, $suffix:expr) => {{
        let db: &Db = $db;
        let envelope: &Envelope = $envelope;
        let suffix: &str = $suffix;
        let q = |sql: &str| db.qualify(&sql.replace("{s}", suffix));
        let mut change: Option<OrderChange> = None;
        if let Some((status, rank)) = order_status_of(&envelope.event_type) {
            let total = envelope
                .payload
                .get("total_amount")
                .and_then(|v| serde_json::from_value::<Money>(v.clone()).ok())
                .map(Money::cents)
                .unwrap_or(0);
            let created = envelope
                .payload
                .get("created_at")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| ts(envelope.timestamp));
            let read =
                q("SELECT status, total_cents FROM {t}order_facts{s} WHERE order_id = $1");
            let before: Option<(String, i64)> = sqlx::query_as(read.clone())
                .bind(&envelope.aggregate_id)
                .fetch_optional(&mut *$conn)
                .await?;
            let upsert = q(
                "INSERT INTO {t}order_facts{s} AS f (order_id, status, rank, total_cents, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO UPDATE SET \
                 status = CASE WHEN excluded.rank > f.rank THEN excluded.status ELSE f.status END, \
                 rank = CASE WHEN excluded.rank > f.rank THEN excluded.rank ELSE f.rank END, \
                 total_cents = CASE WHEN excluded.rank = 0 THEN excluded.total_cents \
                                    ELSE f.total_cents END, \
                 created_at = CASE WHEN excluded.rank = 0 THEN excluded.created_at \
                                   ELSE f.created_at END \
                 RETURNING status, total_cents",
            );
            let after: (String, i64) = sqlx::query_as(upsert.clone())
                .bind(&envelope.aggregate_id)
                .bind(status)
                .bind(rank)
                .bind(total)
                .bind(created)
                .fetch_one(&mut *$conn)
                .await?;
            change = Some(OrderChange { before, after });
        }
        change
    }};
}

/// Most events appended to the log by one statement (7 parameters each).
const APPEND_ROWS: usize = 500;

/// `INSERT INTO event_log ...` of `rows` events, returning the ids of those appended.
fn append_statement(rows: usize) -> String {
    format!(
        "INSERT INTO {{t}}event_log (event_id, event_type, aggregate_id, correlation_id, \
         occurred_at, recorded_at, body) VALUES {} ON CONFLICT (event_id) DO NOTHING \
         RETURNING event_id",
        values_rows(rows, 7)
    )
}

/// How one event changed an order's row of the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderChange {
    /// Status and total before (none: first event of the order).
    pub before: Option<(String, i64)>,
    /// Status and total after.
    pub after: (String, i64),
}

impl Analytics {
    /// Appends `envelopes` to the event log and folds each newly appended one into the
    /// figures, all in one unit of work; then tells the cache what changed.
    async fn record(&self, envelopes: &[&Envelope]) -> Result<(), AppError> {
        let db = &self.ctx.db;
        let bodies = envelopes
            .iter()
            .map(|e| serde_json::to_string(e).map_err(|e| AppError::decode("envelope", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut changes = Vec::with_capacity(envelopes.len());
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            let recorded_at = ts(Utc::now());
            let conn = uow.tx();
            let mut appended = append_on!(db, conn, envelopes, &bodies, &recorded_at);
            for envelope in envelopes {
                if appended.remove(&envelope.event_id.to_string()) {
                    let conn = uow.tx();
                    let change = fold_order_on!(db, conn, envelope, "");
                    changes.push((&envelope.event_type, change));
                }
            }
            // The counts once per event type of the batch.
            let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
            for (event_type, _) in &changes {
                *counts.entry(event_type.as_str()).or_default() += 1;
            }
            // In one batch: on SQLite one call to the database.
            let mut batch = uow.batch();
            for (event_type, n) in counts {
                batch.execute(count_statement(db, "")).bind(event_type).bind(n);
            }
            batch.run().await?;
            if !changes.is_empty() {
                uow.commit().await?;
            }
        });
        if let Some(cache) = &self.cache {
            for (event_type, change) in changes {
                cache.apply(event_type, change.as_ref()).await;
            }
        }
        Ok(())
    }
}

/// Removes the events recorded before `before` from the log, folding them into the baseline
/// first (so that [`rebuild`] still gives the live figures); returns how many were pruned.
pub async fn prune(db: &Db, before: chrono::DateTime<Utc>) -> Result<u64, AppError> {
    let read = db.qualify(
        "SELECT event_id, body FROM {t}event_log WHERE recorded_at < $1 \
         ORDER BY recorded_at, event_id LIMIT 5000",
    );
    let delete = db.qualify("DELETE FROM {t}event_log WHERE event_id = $1");
    let mut pruned = 0u64;
    loop {
        let n = with_db!(db, store => {
            let mut uow = store.begin().await?;
            let rows: Vec<(String, String)> =
                sqlx::query_as(read.clone()).bind(ts(before)).fetch_all(uow.tx()).await?;
            for (id, body) in &rows {
                let envelope: Envelope =
                    serde_json::from_str(body).map_err(|e| AppError::decode("logged event", e))?;
                let conn = uow.tx();
                let _ = fold_on!(db, conn, &envelope, "_base");
                sqlx::query(delete.clone()).bind(id).execute(uow.tx()).await?;
            }
            uow.commit().await?;
            rows.len()
        });
        pruned += n as u64;
        if n < 5000 {
            return Ok(pruned);
        }
    }
}

/// Prunes the event log every hour, keeping `retention`.
async fn prune_every(
    db: Db,
    retention: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let keep = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let Some(before) = Utc::now().checked_sub_signed(keep) else {
            continue;
        };
        match prune(&db, before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "analytics: pruned the event log"),
            Err(e) => tracing::warn!(error = %e, "analytics: pruning the event log failed"),
        }
    }
}

/// Rebuilds the figures from the event log alone (on top of the baseline of what retention
/// pruned); returns how many logged events were folded.
pub async fn rebuild(db: &Db) -> Result<u64, AppError> {
    let clear_counts = db.qualify("DELETE FROM {t}event_counts");
    let clear_orders = db.qualify("DELETE FROM {t}order_facts");
    let copy_counts = db
        .qualify("INSERT INTO {t}event_counts SELECT event_type, count FROM {t}event_counts_base");
    let copy_orders = db.qualify(
        "INSERT INTO {t}order_facts SELECT order_id, status, rank, total_cents, created_at \
         FROM {t}order_facts_base",
    );
    let read = db.qualify("SELECT body FROM {t}event_log ORDER BY recorded_at, event_id");
    let mut folded = 0u64;
    with_db!(db, store => {
        let mut uow = store.begin().await?;
        sqlx::query(clear_counts.clone()).execute(uow.tx()).await?;
        sqlx::query(clear_orders.clone()).execute(uow.tx()).await?;
        sqlx::query(copy_counts.clone()).execute(uow.tx()).await?;
        sqlx::query(copy_orders.clone()).execute(uow.tx()).await?;
        let bodies: Vec<(String,)> = sqlx::query_as(read.clone()).fetch_all(uow.tx()).await?;
        for (body,) in bodies {
            let envelope: Envelope =
                serde_json::from_str(&body).map_err(|e| AppError::decode("logged event", e))?;
            let conn = uow.tx();
            let _ = fold_on!(db, conn, &envelope);
            folded += 1;
        }
        uow.commit().await?;
    });
    Ok(folded)
}

/// The business figures as they stand.
pub async fn figures(db: &Db) -> Result<MetricsResponse, AppError> {
    let stats = event_stats_of(db).await?;
    let (orders, confirmed, failed, revenue) = order_figures(db).await?;
    Ok(compose_figures(&stats, orders, confirmed, failed, revenue))
}

/// The seed's figures from the event counts and the orders' statuses.
pub fn compose_figures(
    stats: &EventStats,
    orders: i64,
    confirmed: i64,
    failed: i64,
    revenue_cents: i64,
) -> MetricsResponse {
    let count = |t: &str| stats.events_by_type.get(t).copied().unwrap_or(0);
    let processed = count(events::PAYMENT_PROCESSED);
    let declined = count(events::PAYMENT_FAILED);
    let placed = count(events::ORDER_PLACED);
    MetricsResponse {
        total_orders: placed.max(orders),
        confirmed_orders: confirmed,
        failed_orders: failed,
        total_revenue: Money::from_cents(revenue_cents),
        payment_success_rate: if processed + declined == 0 {
            0.0
        } else {
            processed as f64 / (processed + declined) as f64
        },
        average_order_value: Money::from_cents(if confirmed == 0 {
            0
        } else {
            revenue_cents / confirmed
        }),
    }
}

/// The orders' figures as stored: (orders, confirmed, failed or cancelled, revenue in cents).
pub async fn order_figures(db: &Db) -> Result<(i64, i64, i64, i64), AppError> {
    let orders = db.qualify(
        "SELECT COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN status = 'confirmed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN status IN ('failed', 'cancelled') THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN status = 'confirmed' THEN total_cents ELSE 0 END), 0) AS BIGINT) \
         FROM {t}order_facts",
    );
    Ok(with_db!(db, store => {
        sqlx::query_as(orders.clone()).fetch_one(store.read_pool()).await?
    }))
}

/// Event counts as they stand.
pub async fn event_stats_of(db: &Db) -> Result<EventStats, AppError> {
    let sql = db.qualify("SELECT event_type, count FROM {t}event_counts ORDER BY event_type");
    let rows: Vec<(String, i64)> = with_db!(db, store => {
        sqlx::query_as(sql.clone()).fetch_all(store.read_pool()).await?
    });
    Ok(EventStats {
        total_events: rows.iter().map(|(_, n)| n).sum(),
        events_by_type: rows.into_iter().collect(),
    })
}

#[async_trait]
impl Handler for Analytics {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.record(&[envelope]).await.map_err(Into::into)
    }

    fn batch_limit(&self) -> usize {
        BATCH
    }

    async fn handle_batch(&self, envelopes: &[Arc<Envelope>]) -> Result<(), HandlerError> {
        let envelopes: Vec<&Envelope> = envelopes.iter().map(|e| &**e).collect();
        self.record(&envelopes).await.map_err(Into::into)
    }
}

async fn metrics(State(svc): State<Analytics>) -> Result<Json<MetricsResponse>, Problem> {
    if let Some(cache) = &svc.cache
        && let Some(figures) = cache.figures().await
    {
        return Ok(Json(figures));
    }
    Ok(Json(figures(&svc.ctx.db).await?))
}

async fn event_stats(State(svc): State<Analytics>) -> Result<Json<EventStats>, Problem> {
    if let Some(cache) = &svc.cache
        && let Some(stats) = cache.event_stats().await
    {
        return Ok(Json(stats));
    }
    Ok(Json(event_stats_of(&svc.ctx.db).await?))
}

async fn recent_orders(State(svc): State<Analytics>) -> Result<Json<Vec<RecentOrder>>, Problem> {
    let sql = svc.ctx.db.qualify(
        "SELECT order_id, status, total_cents, created_at FROM {t}order_facts \
         ORDER BY created_at DESC LIMIT 10",
    );
    let rows: Vec<(String, String, i64, String)> = with_db!(&svc.ctx.db, store => {
        sqlx::query_as(sql.clone())
            .fetch_all(store.read_pool())
            .await
            .map_err(AppError::from)?
    });
    Ok(Json(
        rows.into_iter()
            .map(|(order_id, status, total, created)| RecentOrder {
                order_id,
                status,
                total_amount: Money::from_cents(total),
                created_at: parse_ts(&created),
            })
            .collect(),
    ))
}

/// Every event of the log, in the order it was recorded.
pub async fn logged_events(db: &Db) -> Result<Vec<Envelope>, AppError> {
    let read = db.qualify("SELECT body FROM {t}event_log ORDER BY recorded_at, event_id");
    let bodies: Vec<(String,)> = with_db!(db, store => {
        sqlx::query_as(read.clone()).fetch_all(store.read_pool()).await?
    });
    bodies
        .into_iter()
        .map(|(b,)| serde_json::from_str(&b).map_err(|e| AppError::decode("logged event", e)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The figures minute by minute.

/// `GET /metrics/timeseries`: the business minute by minute, from the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimeseriesResponse {
    /// How many minutes the series covers (the last one is the current, unfinished minute).
    pub minutes: u32,
    /// One bucket per minute, oldest first.
    pub buckets: Vec<MinuteFigures>,
}

/// What happened in one minute, by the time the events happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MinuteFigures {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    /// Orders placed (`order.placed`).
    pub orders_placed: i64,
    /// Orders confirmed, that is paid (`order.confirmed`; an order whose shipping then fails
    /// is cancelled later).
    pub orders_confirmed: i64,
    /// Orders that failed or were cancelled: sagas that ended compensated or failed.
    pub orders_failed: i64,
    /// Sagas that completed (shipping scheduled).
    pub sagas_completed: i64,
    /// Totals of the orders confirmed in this minute that are still confirmed (so the
    /// buckets add up to the revenue of `/metrics`).
    pub revenue: Money,
    /// Completed sagas of the sagas that ended in this minute; null when none ended.
    #[schema(required = true)]
    pub success_rate: Option<f64>,
    /// 95th percentile (nearest rank) of the sagas that ended in this minute, from
    /// `order.placed` to their last event (shipping scheduled, order cancelled or failed), in
    /// milliseconds; null when none ended.
    #[schema(required = true)]
    pub p95_saga_ms: Option<i64>,
}

/// One event the time series counts, with what analytics knows of its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesEvent {
    /// `order.placed|confirmed|cancelled|failed` or `shipping.scheduled`.
    pub event_type: String,
    /// The order.
    pub order_id: String,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// When the order was placed, if analytics knows the order.
    pub placed_at: Option<DateTime<Utc>>,
    /// Whether the order's latest status is confirmed.
    pub still_confirmed: bool,
    /// The order's total, in cents.
    pub total_cents: i64,
}

/// The event types the time series counts.
const SERIES_EVENTS: [&str; 5] = [
    events::ORDER_PLACED,
    events::ORDER_CONFIRMED,
    events::ORDER_CANCELLED,
    events::ORDER_FAILED,
    events::SHIPPING_SCHEDULED,
];

/// The most minutes one request covers (a day).
pub const MAX_SERIES_MINUTES: u32 = 1440;

/// The start of the minute `at` falls in.
fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

/// Buckets `events` into the `minutes` minutes that end with the one `now` falls in; events
/// outside are left out, and each (order, event type) counts once.
pub fn bucket_series(
    events: &[SeriesEvent],
    now: DateTime<Utc>,
    minutes: u32,
) -> Vec<MinuteFigures> {
    let minutes = minutes.max(1);
    let first = minute_of(now) - TimeDelta::minutes(i64::from(minutes) - 1);
    let mut buckets: Vec<MinuteFigures> = (0..minutes)
        .map(|i| MinuteFigures {
            minute: first + TimeDelta::minutes(i64::from(i)),
            orders_placed: 0,
            orders_confirmed: 0,
            orders_failed: 0,
            sagas_completed: 0,
            revenue: Money::from_cents(0),
            success_rate: None,
            p95_saga_ms: None,
        })
        .collect();
    let mut revenue = vec![0i64; buckets.len()];
    let mut durations: Vec<Vec<i64>> = vec![Vec::new(); buckets.len()];
    let mut seen = std::collections::HashSet::new();
    for e in events {
        let offset = (e.at - first).num_minutes();
        let Some(i) = usize::try_from(offset).ok().filter(|i| *i < buckets.len()) else {
            continue;
        };
        if e.at < first || !seen.insert((e.order_id.as_str(), e.event_type.as_str())) {
            continue;
        }
        let b = &mut buckets[i];
        let ended = match e.event_type.as_str() {
            events::ORDER_PLACED => {
                b.orders_placed += 1;
                false
            }
            events::ORDER_CONFIRMED => {
                b.orders_confirmed += 1;
                if e.still_confirmed {
                    revenue[i] += e.total_cents;
                }
                false
            }
            events::ORDER_CANCELLED | events::ORDER_FAILED => {
                b.orders_failed += 1;
                true
            }
            events::SHIPPING_SCHEDULED => {
                b.sagas_completed += 1;
                true
            }
            _ => false,
        };
        if ended && let Some(placed) = e.placed_at {
            durations[i].push((e.at - placed).num_milliseconds().max(0));
        }
    }
    for ((b, cents), mut d) in buckets.iter_mut().zip(revenue).zip(durations) {
        b.revenue = Money::from_cents(cents);
        let ended = b.sagas_completed + b.orders_failed;
        if ended > 0 {
            b.success_rate = Some(b.sagas_completed as f64 / ended as f64);
        }
        if !d.is_empty() {
            d.sort_unstable();
            // Nearest rank: the smallest value with at least 95 % of them at or below it.
            let rank = (d.len() * 95).div_ceil(100).max(1);
            b.p95_saga_ms = Some(d[rank - 1]);
        }
    }
    buckets
}

/// The time series of the last `minutes` minutes, read from the event log.
pub async fn series(
    db: &Db,
    now: DateTime<Utc>,
    minutes: u32,
) -> Result<TimeseriesResponse, AppError> {
    let minutes = minutes.clamp(1, MAX_SERIES_MINUTES);
    let from = minute_of(now) - TimeDelta::minutes(i64::from(minutes) - 1);
    let kinds = SERIES_EVENTS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = db.qualify(&format!(
        "SELECT e.event_type, e.aggregate_id, e.occurred_at, f.created_at, f.status, \
         f.total_cents FROM {{t}}event_log e LEFT JOIN {{t}}order_facts f \
         ON f.order_id = e.aggregate_id \
         WHERE e.occurred_at >= $1 AND e.event_type IN ({kinds})"
    ));
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Row> = with_db!(db, store => {
        sqlx::query_as(sql.clone()).bind(ts(from)).fetch_all(store.read_pool()).await?
    });
    let events: Vec<SeriesEvent> = rows
        .into_iter()
        .map(
            |(event_type, order_id, at, placed, status, total)| SeriesEvent {
                event_type,
                order_id,
                at: parse_ts(&at),
                placed_at: placed.as_deref().map(parse_ts),
                still_confirmed: status.as_deref() == Some("confirmed"),
                total_cents: total.unwrap_or(0),
            },
        )
        .collect();
    Ok(TimeseriesResponse {
        minutes,
        buckets: bucket_series(&events, now, minutes),
    })
}

/// `GET /metrics/timeseries?minutes=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    minutes: Option<u32>,
}

async fn timeseries(
    State(svc): State<Analytics>,
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TimeseriesResponse>, Problem> {
    let Query(q) = query?;
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=MAX_SERIES_MINUTES).contains(&minutes) {
        return Err(Problem::bad_query(format!(
            "minutes must be from 1 to {MAX_SERIES_MINUTES}, not {minutes}"
        )));
    }
    Ok(Json(series(&svc.ctx.db, Utc::now(), minutes).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_ts(text)
    }

    fn event(kind: &str, order: &str, when: &str, placed: &str, confirmed: bool) -> SeriesEvent {
        SeriesEvent {
            event_type: kind.to_owned(),
            order_id: order.to_owned(),
            at: at(when),
            placed_at: Some(at(placed)),
            still_confirmed: confirmed,
            total_cents: 1000,
        }
    }

    /// Appends `batch` in one unit of work, committed; the ids appended.
    async fn append(db: &Db, batch: &[&Envelope]) -> Result<HashSet<String>, AppError> {
        let bodies: Vec<String> = batch
            .iter()
            .map(|e| serde_json::to_string(e).map_err(|e| AppError::decode("envelope", e)))
            .collect::<Result<_, _>>()?;
        let at = ts(Utc::now());
        Ok(with_db!(db, store => {
            let mut uow = store.begin().await?;
            let conn = uow.tx();
            let appended = append_on!(db, conn, batch, &bodies, &at);
            uow.commit().await?;
            appended
        }))
    }

    #[tokio::test]
    async fn a_batch_appends_each_new_event_once() -> Result<(), AppError> {
        let dir = tempfile::tempdir()?;
        let db = Db::open_sqlite(&dir.path().join("analytics.db"), false).await?;
        db.migrate(MIGRATIONS).await?;
        let placed = |order: &str| {
            Envelope::new(
                events::ORDER_PLACED,
                order,
                serde_json::json!({"total_amount": 10}),
            )
        };
        let (a, b, c) = (placed("a"), placed("b"), placed("c"));
        let ids = |of: &[&Envelope]| -> HashSet<String> {
            of.iter().map(|e| e.event_id.to_string()).collect()
        };
        assert_eq!(
            append(&db, &[&a, &b, &a]).await?,
            ids(&[&a, &b]),
            "a given twice is appended once"
        );
        // A redelivery of b beside a new c: only c is new.
        assert_eq!(append(&db, &[&b, &c]).await?, ids(&[&c]));
        Ok(())
    }

    #[test]
    fn events_fall_into_their_minutes() {
        let now = at("2025-01-01T10:02:30Z");
        let p = "2025-01-01T10:00:10Z";
        let events = vec![
            // Before the window: left out.
            event(
                events::ORDER_PLACED,
                "old",
                "2025-01-01T09:59:59Z",
                p,
                false,
            ),
            event(events::ORDER_PLACED, "a", "2025-01-01T10:00:10Z", p, true),
            event(events::ORDER_PLACED, "b", "2025-01-01T10:00:20Z", p, false),
            // A redelivered event counts once.
            event(events::ORDER_PLACED, "b", "2025-01-01T10:00:20Z", p, false),
            event(
                events::ORDER_CONFIRMED,
                "a",
                "2025-01-01T10:01:00Z",
                p,
                true,
            ),
            // Confirmed, then cancelled: no revenue.
            event(
                events::ORDER_CONFIRMED,
                "b",
                "2025-01-01T10:01:05Z",
                p,
                false,
            ),
            event(
                events::SHIPPING_SCHEDULED,
                "a",
                "2025-01-01T10:01:10Z",
                p,
                true,
            ),
            event(
                events::ORDER_CANCELLED,
                "b",
                "2025-01-01T10:02:10Z",
                p,
                false,
            ),
            // In the future of `now`: left out.
            event(events::ORDER_PLACED, "c", "2025-01-01T10:03:00Z", p, false),
        ];
        let b = bucket_series(&events, now, 3);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].minute, at("2025-01-01T10:00:00Z"));
        assert_eq!(
            b.iter().map(|m| m.orders_placed).collect::<Vec<_>>(),
            [2, 0, 0]
        );
        assert_eq!(b[1].orders_confirmed, 2);
        assert_eq!(b[1].revenue, Money::from_cents(1000));
        assert_eq!(b[1].sagas_completed, 1);
        assert_eq!(b[1].success_rate, Some(1.0));
        assert_eq!(b[1].p95_saga_ms, Some(60_000));
        assert_eq!(b[2].orders_failed, 1);
        assert_eq!(b[2].success_rate, Some(0.0));
        assert_eq!(b[2].p95_saga_ms, Some(120_000));
        assert_eq!(b[0].success_rate, None);
        assert_eq!(b[0].p95_saga_ms, None);
    }

    #[test]
    fn the_95th_percentile_is_the_nearest_rank() {
        let now = at("2025-01-01T10:00:59Z");
        let events: Vec<SeriesEvent> = (1..=40)
            .map(|i| SeriesEvent {
                event_type: events::SHIPPING_SCHEDULED.into(),
                order_id: format!("o{i}"),
                at: at("2025-01-01T10:00:50Z"),
                placed_at: Some(at("2025-01-01T10:00:50Z") - TimeDelta::milliseconds(i * 10)),
                still_confirmed: true,
                total_cents: 0,
            })
            .collect();
        let b = bucket_series(&events, now, 1);
        // 40 durations 10..=400 ms: rank ceil(0.95 * 40) = 38, so 380 ms.
        assert_eq!(b[0].p95_saga_ms, Some(380));
        assert_eq!(b[0].sagas_completed, 40);
    }
}
