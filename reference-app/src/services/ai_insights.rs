//! The AI service's projections and the routes that read them: demand forecasts,
//! recommendations, saga anomalies and the models' metadata.
//!
//! The subscription [`SUBSCRIPTION`] (apart from fraud screening's, so that screening never
//! waits behind it) records, each event in one unit of work with its inbox mark (the saga
//! events fraud screening handles anyway are recorded in screening's own units of work):
//!
//! | table | from | for |
//! |-------|------|-----|
//! | `catalog` | `product.upserted` (name, initial stock) | known products, stock |
//! | `order_lines`, `order_states` | `order.placed` (lines), `order.confirmed` / `cancelled` / `failed` | units sold per day, purchases per customer |
//! | `stock_lines`, `stock_releases`, `stock_base` | `inventory.reserved` / `released` (lines) | available stock: initial stock less what reservations hold |
//! | `saga_events`, `saga_runs` | the order saga's commands, replies and `order.*` events (a saga is listed from its `order.placed`) | saga traces |
//!
//! Every fold is insensitive to the order of events (statuses only rise, lines are keyed by
//! order and product, a reservation counts until its release is seen), so the subscription
//! needs no per-key order. Models are fitted off the async threads: forecasts per request,
//! the recommender and the shop's own anomaly detector lazily, cached for a refresh interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use saga_ai::anomaly::SagaTrace;
use saga_core::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use sqlx::SqlStr;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::ai::anomalies::{
    Detector, DetectorSource, DetectorSummary, SagaAnomaly, find_anomalies, fit_observed,
};
use crate::ai::demand::{
    DEFAULT_HORIZON_DAYS, DemandFit, DemandForecast, DemandInput, MAX_HISTORY_DAYS,
    MAX_HORIZON_DAYS, daily_series, fit_demand, forecast_info,
};
use crate::ai::recommendations::{FittedRecommender, Purchase, Strategy, fit_recommender};
use crate::ai::traces::{RecordedEvent, TRACE_EVENTS, trace_of};
use crate::ai::{AiAppError, AiEngine, ModelInfo};
use crate::api::problem::Problem;
use crate::consumer::Handler;
use crate::context::ServiceContext;
use crate::db::Db;
use crate::error::AppError;
use crate::messages::OrderPayload;
use crate::order_saga::events;
use crate::services::common::{parse_ts, parse_uuid, ts, values_rows};
use crate::services::drift::{DriftReport, DriftWatch};
use crate::services::inventory::{Released, ReservedItem};
use crate::services::order::{PRODUCT_UPSERTED, ProductUpserted};
use crate::with_db;
use saga_ai::anomaly::SagaDetector;

/// The subscription of the AI service's projections.
pub const SUBSCRIPTION: &str = "ai-insights";

/// Saga events the fraud-screening subscription receives or sends anyway: its units of work
/// record them in the traces ([`saga_event_statement`]), so this subscription does not take
/// them a second time.
pub const RECORDED_BY_SCREENING: [&str; 5] = [
    events::FRAUD_CHECK_REQUESTED,
    events::FRAUD_CHECK_PASSED,
    events::FRAUD_CHECK_FAILED,
    events::PAYMENT_PROCESSED,
    events::PAYMENT_FAILED,
];

/// The events this subscription reads: the order saga's (but [`RECORDED_BY_SCREENING`]), and
/// the inventory's catalog.
pub fn subscribed_events() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = TRACE_EVENTS
        .into_iter()
        .filter(|t| !RECORDED_BY_SCREENING.contains(t))
        .collect();
    all.push(PRODUCT_UPSERTED);
    all
}

/// The statement recording one saga event in the traces: bind its id, its order (aggregate)
/// id, its type and its time ([`ts`]); a repeated id adds nothing.
pub fn saga_event_statement(db: &Db) -> SqlStr {
    db.qualify(
        "INSERT INTO {t}saga_events (event_id, saga_id, event_type, occurred_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
    )
}

/// Most rows of one [`saga_events_insert`] (4 parameters each).
const SAGA_EVENT_ROWS: usize = 500;

/// [`saga_event_statement`] for `rows` events.
fn saga_events_insert(rows: usize) -> String {
    format!(
        "INSERT INTO {{t}}saga_events (event_id, saga_id, event_type, occurred_at) \
         VALUES {} ON CONFLICT (event_id) DO NOTHING",
        values_rows(rows, 4)
    )
}

/// Deliveries of the subscription in flight at once, recorded in one unit of work when they
/// wait together: the unit of work holds the database's writer while it records, and fraud
/// screening, on the saga's path, waits behind whatever holds it, so batches stay small.
pub const PREFETCH: u16 = 16;

/// How long a fitted recommender serves at most before the next request refits it (other
/// replicas' consumers record orders this one does not hear of).
pub const RECOMMENDER_REFRESH: Duration = Duration::from_secs(60);
/// How long a fitted recommender serves at least, even when this process has recorded orders
/// since (so a busy shop does not refit on every request).
pub const RECOMMENDER_MIN_AGE: Duration = Duration::from_secs(2);
/// How long an anomaly detector fitted on the shop's sagas serves.
pub const DETECTOR_REFRESH: Duration = Duration::from_secs(600);
/// How soon the service looks again whether it has seen enough sagas to fit one.
pub const DETECTOR_RETRY: Duration = Duration::from_secs(60);
/// The latest sagas scored by `GET /anomalies` (and learned from once there are enough).
pub const SAGA_WINDOW: i64 = 1000;
/// The latest purchase lines the recommender learns from.
pub const MAX_PURCHASE_LINES: i64 = 200_000;
/// Most recommendations or anomalies one request returns.
pub const MAX_LIMIT: u32 = 100;
/// How long saga events are kept (anomalies look at the latest sagas only).
const SAGA_RETENTION: TimeDelta = TimeDelta::days(7);
/// How long order lines are kept (forecasts read a year).
const SALES_RETENTION: TimeDelta = TimeDelta::days(400);
/// Reservations older than this are folded into a per-product total.
const STOCK_FOLD_AFTER: TimeDelta = TimeDelta::days(30);

/// A model fitted at some instant.
type Slot<T> = Arc<Mutex<Option<(Instant, Arc<T>)>>>;
/// The recommender, when it was fitted and the order generation it saw.
type RecommenderSlot = Arc<Mutex<Option<(Instant, u64, Arc<FittedRecommender>)>>>;

/// The AI service's projections in its database: what [`Projection::record`] folds in, and
/// the reads the routes make.
#[derive(Debug, Clone)]
pub struct Projection {
    db: Db,
}

/// The projections' handler and the state of the routes that read them.
#[derive(Clone)]
pub(crate) struct Insights {
    projection: Projection,
    engine: Arc<AiEngine>,
    /// Order events (placed, confirmed, cancelled, failed) this process has recorded.
    orders_seen: Arc<AtomicU64>,
    recommender: RecommenderSlot,
    /// The anomaly detector fitted on the shop's sagas (`None`: not enough of them yet).
    observed: Slot<Option<Detector>>,
    /// The duration-drift policy's figures.
    drift: DriftWatch,
}

/// Runs `fit` on tokio's blocking pool.
async fn off_thread<T: Send + 'static>(
    fit: impl FnOnce() -> Result<T, AiAppError> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(fit)
        .await
        .map_err(|e| model_problem(AiAppError::Task(e.to_string())))?
        .map_err(model_problem)
}

fn model_problem(e: AiAppError) -> Problem {
    tracing::error!(error = %e, "ai: a model failed");
    Problem::internal()
}

fn bad_query(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-query", "Bad query", detail)
}

pub(crate) fn query_problem(e: QueryRejection) -> Problem {
    bad_query(e.body_text())
}

/// A count parameter in `1..=max`, `default` when absent.
pub(crate) fn bounded(
    name: &str,
    value: Option<i64>,
    default: u32,
    max: u32,
) -> Result<u32, Problem> {
    match value {
        None => Ok(default),
        Some(v) if (1..=i64::from(max)).contains(&v) => Ok(v as u32),
        Some(v) => Err(bad_query(format!(
            "`{name}` must be between 1 and {max}, got {v}"
        ))),
    }
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// A product as the AI service knows it.
struct KnownProduct {
    name: String,
    initial_stock: Option<i64>,
    first_seen: NaiveDate,
}

/// `inventory.reserved`.
#[derive(Deserialize)]
struct Reserved {
    items: Vec<ReservedItem>,
}

/// What one event changes besides the saga trace.
enum Change {
    Placed(OrderPayload),
    Status(&'static str, i64),
    Product(ProductUpserted),
    Reserved(Vec<ReservedItem>),
    Released(Vec<ReservedItem>),
    None,
}

impl Change {
    fn of(envelope: &Envelope) -> Result<Self, AppError> {
        let decode = |what| move |e| AppError::decode(what, e);
        let payload = || envelope.payload.clone();
        Ok(match envelope.event_type.as_str() {
            events::ORDER_PLACED => Change::Placed(OrderPayload::from_value(&envelope.payload)?),
            events::ORDER_CONFIRMED => Change::Status("confirmed", 1),
            events::ORDER_CANCELLED => Change::Status("cancelled", 2),
            events::ORDER_FAILED => Change::Status("failed", 2),
            PRODUCT_UPSERTED => {
                Change::Product(serde_json::from_value(payload()).map_err(decode("product"))?)
            }
            events::INVENTORY_RESERVED => Change::Reserved(
                serde_json::from_value::<Reserved>(payload())
                    .map_err(decode("reservation"))?
                    .items,
            ),
            events::INVENTORY_RELEASED => Change::Released(
                serde_json::from_value::<Released>(payload())
                    .map_err(decode("release"))?
                    .items,
            ),
            _ => Change::None,
        })
    }
}

/// An order's lines, one per product (quantities of repeated products summed), in the order
/// the products first appear.
fn lines_of(order: &OrderPayload) -> Vec<(String, i64)> {
    let mut lines: Vec<(String, i64)> = Vec::new();
    for item in &order.items {
        match lines.iter_mut().find(|(p, _)| *p == item.product_id) {
            Some((_, q)) => *q += item.quantity,
            None => lines.push((item.product_id.clone(), item.quantity)),
        }
    }
    lines
}

impl Projection {
    /// The projections in `db` (migrated with the AI service's migrations).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Folds one event into the projections, with its inbox mark, in one unit of work (a
    /// redelivered event changes nothing). Events the projections do not read only mark the
    /// inbox.
    pub async fn record(&self, envelope: &Envelope) -> Result<(), AppError> {
        self.record_all(&[envelope]).await
    }

    /// Folds several events into the projections as [`Projection::record`] does, all in one
    /// unit of work.
    pub async fn record_all(&self, envelopes: &[&Envelope]) -> Result<(), AppError> {
        let changes = envelopes
            .iter()
            .map(|e| Change::of(e))
            .collect::<Result<Vec<_>, _>>()?;
        let db = &self.db;
        let q = |sql: &str| db.qualify(sql);
        // A saga starts with its order's `order.placed` (sent with the first command).
        let saga_run = q(
            "INSERT INTO {t}saga_runs (saga_id, started_at) VALUES ($1, $2) \
             ON CONFLICT (saga_id) DO NOTHING",
        );
        let line = q(
            "INSERT INTO {t}order_lines (order_id, product_id, line_no, quantity, customer_id, \
             placed_at, placed_day) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (order_id, product_id) DO NOTHING",
        );
        let state = q(
            "INSERT INTO {t}order_states AS s (order_id, status, rank, recorded_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO UPDATE SET \
             status = CASE WHEN excluded.rank > s.rank THEN excluded.status ELSE s.status END, \
             rank = CASE WHEN excluded.rank > s.rank THEN excluded.rank ELSE s.rank END, \
             recorded_at = excluded.recorded_at",
        );
        let product = q(
            "INSERT INTO {t}catalog AS c (product_id, name, initial_stock, first_seen_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (product_id) DO UPDATE SET \
             name = excluded.name, \
             initial_stock = COALESCE(excluded.initial_stock, c.initial_stock)",
        );
        let stock_line = q(
            "INSERT INTO {t}stock_lines (order_id, product_id, quantity, recorded_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (order_id, product_id) DO NOTHING",
        );
        let release = q(
            "INSERT INTO {t}stock_releases (order_id, recorded_at) VALUES ($1, $2) \
             ON CONFLICT (order_id) DO NOTHING",
        );
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            // The batch's inbox marks in one statement; a redelivered event is skipped.
            let ids: Vec<uuid::Uuid> = envelopes.iter().map(|e| e.event_id).collect();
            let new = uow.mark_inbox_all(SUBSCRIPTION, &ids).await?;
            // Every write after the marks in one batch: on SQLite one call to the database.
            let mut batch = uow.batch();
            // The new traced events' rows in one statement per chunk.
            let traced: Vec<&Envelope> = envelopes
                .iter()
                .zip(&new)
                .filter(|(e, new)| **new && TRACE_EVENTS.contains(&e.event_type.as_str()))
                .map(|(e, _)| *e)
                .collect();
            for chunk in traced.chunks(SAGA_EVENT_ROWS) {
                let mut query = batch.execute(db.qualify(&saga_events_insert(chunk.len())));
                for envelope in chunk {
                    // Rows are stamped with the event's time (what pruning goes by).
                    query = query
                        .bind(envelope.event_id.to_string())
                        .bind(&envelope.aggregate_id)
                        .bind(&envelope.event_type)
                        .bind(ts(envelope.timestamp));
                }
            }
            for ((envelope, change), new) in envelopes.iter().zip(&changes).zip(new) {
                if !new {
                    continue;
                }
                let envelope: &Envelope = envelope;
                let at = ts(envelope.timestamp);
                let order_id = &envelope.aggregate_id;
                match &change {
                    Change::Placed(order) => {
                        batch.execute(saga_run.clone())
                            .bind(order_id)
                            .bind(&at);
                        let placed_at = ts(order.created_at);
                        let day = day_text(order.created_at.date_naive());
                        for (no, (product_id, quantity)) in lines_of(order).iter().enumerate() {
                            batch.execute(line.clone())
                                .bind(order.order_id.to_string())
                                .bind(product_id)
                                .bind(no as i64)
                                .bind(*quantity)
                                .bind(order.customer_id.to_string())
                                .bind(&placed_at)
                                .bind(&day);
                        }
                        batch.execute(state.clone())
                            .bind(order.order_id.to_string())
                            .bind("placed")
                            .bind(0i64)
                            .bind(&at);
                    }
                    Change::Status(status, rank) => {
                        batch.execute(state.clone())
                            .bind(order_id)
                            .bind(*status)
                            .bind(*rank)
                            .bind(&at);
                    }
                    Change::Product(p) => {
                        batch.execute(product.clone())
                            .bind(&p.id)
                            .bind(&p.name)
                            .bind(p.initial_stock)
                            .bind(&at);
                    }
                    Change::Reserved(items) | Change::Released(items) => {
                        for item in items {
                            batch.execute(stock_line.clone())
                                .bind(order_id)
                                .bind(&item.product_id)
                                .bind(item.quantity)
                                .bind(&at);
                        }
                        // Only a release that gave units back frees them.
                        if matches!(change, Change::Released(_)) && !items.is_empty() {
                            batch.execute(release.clone())
                                .bind(order_id)
                                .bind(&at);
                        }
                    }
                    Change::None => {}
                }
            }
            batch.run().await?;
            uow.commit().await?;
        });
        Ok(())
    }

    async fn product(&self, id: &str) -> Result<Option<KnownProduct>, AppError> {
        let db = &self.db;
        let sql = db.qualify(
            "SELECT name, initial_stock, first_seen_at FROM {t}catalog WHERE product_id = $1",
        );
        let row: Option<(String, Option<i64>, String)> = with_db!(db, store => {
            sqlx::query_as(sql.clone()).bind(id).fetch_optional(store.read_pool()).await?
        });
        Ok(row.map(|(name, initial_stock, seen)| KnownProduct {
            name,
            initial_stock,
            first_seen: parse_ts(&seen).date_naive(),
        }))
    }

    /// What a forecast of product `id` over `horizon` days at `now` reads: its name, its
    /// sales since the service first saw it (or an order of it), its available stock (the
    /// initial stock less what the reservations seen still hold). `None` for a product the
    /// service has not seen in the catalog.
    pub async fn demand_input(
        &self,
        id: &str,
        horizon: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<DemandInput>, AppError> {
        let Some(product) = self.product(id).await? else {
            return Ok(None);
        };
        let today = now.date_naive();
        let sales = self.sales(Some(id), history_start(today)).await?;
        let first_orders = self.first_order_days().await?;
        let available = match product.initial_stock {
            Some(initial) => Some(initial - self.held(id).await?),
            None => None,
        };
        Ok(Some(DemandInput {
            product_id: id.to_owned(),
            first_day: first_day(product.first_seen, first_orders.get(id)),
            product_name: product.name,
            sales: sales.into_iter().map(|(_, d, u)| (d, u)).collect(),
            available,
            horizon,
            now,
        }))
    }

    /// Units the reservations the service saw still hold (sold or reserved) of `id`.
    async fn held(&self, id: &str) -> Result<i64, AppError> {
        let db = &self.db;
        let lines = db.qualify(
            "SELECT CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT) FROM {t}stock_lines l \
             WHERE l.product_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM {t}stock_releases r WHERE r.order_id = l.order_id)",
        );
        let base = db.qualify("SELECT taken FROM {t}stock_base WHERE product_id = $1");
        let (held, folded): ((i64,), Option<(i64,)>) = with_db!(db, store => {
            (
                sqlx::query_as(lines.clone()).bind(id).fetch_one(store.read_pool()).await?,
                sqlx::query_as(base.clone()).bind(id).fetch_optional(store.read_pool()).await?,
            )
        });
        Ok(held.0 + folded.map_or(0, |f| f.0))
    }

    /// Units of `id` the reservations of orders still running hold (reserved, not yet sold
    /// nor released).
    async fn in_flight(&self, id: &str) -> Result<i64, AppError> {
        let db = &self.db;
        let sql = db.qualify(
            "SELECT CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT) FROM {t}stock_lines l \
             LEFT JOIN {t}order_states s ON s.order_id = l.order_id \
             WHERE l.product_id = $1 AND COALESCE(s.rank, 0) = 0 AND NOT EXISTS \
             (SELECT 1 FROM {t}stock_releases r WHERE r.order_id = l.order_id)",
        );
        let (units,): (i64,) = with_db!(db, store => {
            sqlx::query_as(sql.clone()).bind(id).fetch_one(store.read_pool()).await?
        });
        Ok(units)
    }

    /// The customers of the orders recorded, latest order first.
    async fn customer_ids(&self) -> Result<Vec<Uuid>, AppError> {
        let db = &self.db;
        let sql = db.qualify(
            "SELECT customer_id, MAX(placed_at) AS last FROM {t}order_lines \
             GROUP BY customer_id ORDER BY last DESC",
        );
        let rows: Vec<(String, String)> = with_db!(db, store => {
            sqlx::query_as(sql.clone()).fetch_all(store.read_pool()).await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(c, _)| Uuid::parse_str(&c).ok())
            .collect())
    }

    /// Units of confirmed orders per product and day, from `since`; only `product` if given.
    async fn sales(
        &self,
        product: Option<&str>,
        since: NaiveDate,
    ) -> Result<Vec<(String, NaiveDate, i64)>, AppError> {
        let db = &self.db;
        let sql = db.qualify(
            "SELECT l.product_id, l.placed_day, CAST(SUM(l.quantity) AS BIGINT) \
             FROM {t}order_lines l JOIN {t}order_states s ON s.order_id = l.order_id \
             WHERE s.status = 'confirmed' AND l.placed_day >= $1 \
             AND (CAST($2 AS TEXT) IS NULL OR l.product_id = $2) \
             GROUP BY l.product_id, l.placed_day",
        );
        let rows: Vec<(String, String, i64)> = with_db!(db, store => {
            sqlx::query_as(sql.clone())
                .bind(day_text(since))
                .bind(product)
                .fetch_all(store.read_pool())
                .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(p, day, units)| Some((p, parse_day(&day)?, units)))
            .collect())
    }

    /// The first day the service saw an order of each product.
    async fn first_order_days(&self) -> Result<BTreeMap<String, NaiveDate>, AppError> {
        let db = &self.db;
        let sql = db
            .qualify("SELECT product_id, MIN(placed_day) FROM {t}order_lines GROUP BY product_id");
        let rows: Vec<(String, Option<String>)> = with_db!(db, store => {
            sqlx::query_as(sql.clone()).fetch_all(store.read_pool()).await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(p, d)| Some((p, parse_day(d.as_deref()?)?)))
            .collect())
    }

    /// The latest purchases (orders not failed or cancelled), oldest first.
    pub async fn purchases(&self) -> Result<Vec<Purchase>, AppError> {
        let db = &self.db;
        let sql = db.qualify(
            "SELECT l.order_id, l.customer_id, l.product_id, l.line_no, l.placed_at \
             FROM {t}order_lines l LEFT JOIN {t}order_states s ON s.order_id = l.order_id \
             WHERE COALESCE(s.rank, 0) < 2 \
             ORDER BY l.placed_at DESC, l.order_id, l.line_no LIMIT $1",
        );
        let mut rows: Vec<(String, String, String, i64, String)> = with_db!(db, store => {
            sqlx::query_as(sql.clone())
                .bind(MAX_PURCHASE_LINES)
                .fetch_all(store.read_pool())
                .await?
        });
        rows.sort_by(|a, b| (&a.4, &a.0, a.3).cmp(&(&b.4, &b.0, b.3)));
        let mut purchases: Vec<Purchase> = Vec::new();
        let mut current: Option<String> = None;
        for (order, customer, product, _, at) in rows {
            if current.as_deref() != Some(order.as_str()) {
                purchases.push(Purchase {
                    customer,
                    products: Vec::new(),
                    at: parse_ts(&at),
                });
                current = Some(order);
            }
            if let Some(p) = purchases.last_mut() {
                p.products.push(product);
            }
        }
        Ok(purchases)
    }

    /// The traces of the latest [`SAGA_WINDOW`] sagas as they stood at `now`, oldest first.
    pub async fn traces(&self, now: DateTime<Utc>) -> Result<Vec<SagaTrace>, AppError> {
        Ok(traces_of(self.saga_events(None).await?, now))
    }

    /// The recorded events of the latest [`SAGA_WINDOW`] sagas (of those started at `since`
    /// or later, if given), by saga.
    pub async fn saga_events(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<BTreeMap<String, Vec<RecordedEvent>>, AppError> {
        let db = &self.db;
        let sql = db.qualify(
            "SELECT e.saga_id, e.event_type, e.occurred_at FROM {t}saga_events e \
             JOIN (SELECT saga_id FROM {t}saga_runs WHERE started_at >= $2 \
             ORDER BY started_at DESC LIMIT $1) r ON r.saga_id = e.saga_id",
        );
        // Every stored time is an RFC 3339 text of one width: "" is before all of them.
        let since = since.map(ts).unwrap_or_default();
        let rows: Vec<(String, String, String)> = with_db!(db, store => {
            sqlx::query_as(sql.clone())
                .bind(SAGA_WINDOW)
                .bind(&since)
                .fetch_all(store.read_pool())
                .await?
        });
        let mut by_saga: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
        for (saga, event_type, at) in rows {
            by_saga.entry(saga).or_default().push(RecordedEvent {
                event_type,
                at: parse_ts(&at),
            });
        }
        Ok(by_saga)
    }

    /// Complete days of sales of every known product, oldest first, for the forecaster's
    /// held-out measure.
    /// The catalog's product names by id.
    pub async fn product_names(&self) -> Result<BTreeMap<String, String>, AppError> {
        let db = &self.db;
        let sql = db.qualify("SELECT product_id, name FROM {t}catalog");
        let rows: Vec<(String, String)> = with_db!(db, store => {
            sqlx::query_as(sql.clone()).fetch_all(store.read_pool()).await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Complete days of sales of every known product (oldest first, up to `today`), for the
    /// forecaster's held-out measure.
    pub async fn all_series(&self, today: NaiveDate) -> Result<Vec<Vec<f64>>, AppError> {
        let db = &self.db;
        let sql = db.qualify("SELECT product_id, first_seen_at FROM {t}catalog");
        let products: Vec<(String, String)> = with_db!(db, store => {
            sqlx::query_as(sql.clone()).fetch_all(store.read_pool()).await?
        });
        let since = history_start(today);
        let mut sales: BTreeMap<String, Vec<(NaiveDate, i64)>> = BTreeMap::new();
        for (p, day, units) in self.sales(None, since).await? {
            sales.entry(p).or_default().push((day, units));
        }
        let first_orders = self.first_order_days().await?;
        Ok(products
            .into_iter()
            .map(|(p, seen)| {
                let first = first_day(parse_ts(&seen).date_naive(), first_orders.get(&p));
                let rows = sales.remove(&p).unwrap_or_default();
                daily_series(first, today, &rows).1
            })
            .collect())
    }
}

impl Insights {
    pub(crate) fn new(ctx: &ServiceContext, engine: Arc<AiEngine>, drift: DriftWatch) -> Self {
        Self {
            projection: Projection::new(ctx.db.clone()),
            engine,
            orders_seen: Arc::default(),
            recommender: Arc::default(),
            observed: Arc::default(),
            drift,
        }
    }

    /// The duration-drift policy's figures of every step.
    pub(crate) fn drift(&self) -> DriftReport {
        self.drift.report()
    }

    /// The recommender, refitted when older than [`RECOMMENDER_REFRESH`], or than
    /// [`RECOMMENDER_MIN_AGE`] when this process has recorded order events since.
    async fn recommender(&self) -> Result<Arc<FittedRecommender>, Problem> {
        let mut slot = self.recommender.lock().await;
        let generation = self.orders_seen.load(Ordering::Acquire);
        if let Some((at, seen, fitted)) = slot.as_ref() {
            let age = at.elapsed();
            if age < RECOMMENDER_MIN_AGE || (age < RECOMMENDER_REFRESH && *seen == generation) {
                return Ok(fitted.clone());
            }
        }
        let purchases = self.projection.purchases().await?;
        let fitted = Arc::new(off_thread(move || fit_recommender(&purchases, Utc::now())).await?);
        *slot = Some((Instant::now(), generation, fitted.clone()));
        Ok(fitted)
    }

    /// Runs `score` off the async threads with the detector that scores sagas now (the one
    /// fitted on the shop's sagas when there are enough, else the generated model), its
    /// summary, and the traces of the latest sagas.
    pub(crate) async fn score_sagas<R: Send + 'static>(
        &self,
        score: impl FnOnce(&SagaDetector, DetectorSummary, &[SagaTrace]) -> Result<R, AiAppError>
        + Send
        + 'static,
    ) -> Result<R, Problem> {
        let traces = self.projection.traces(Utc::now()).await?;
        let observed = self.observed_detector(&traces).await?;
        let engine = self.engine.clone();
        off_thread(move || {
            let (detector, summary) = match observed.as_ref() {
                Some(d) => (&d.detector, d.summary.clone()),
                None => {
                    let file = engine.model("saga_anomaly");
                    (
                        engine.anomaly_detector(),
                        DetectorSummary {
                            source: DetectorSource::Generated,
                            kind: file.map_or_else(String::new, |m| m.kind.clone()),
                            trained_at: file.and_then(|m| m.trained_at).unwrap_or_default(),
                            trained_on: file.map_or(0, |m| m.training_rows),
                        },
                    )
                }
            };
            score(detector, summary, &traces)
        })
        .await
    }

    /// The demand forecast of product `id` over `horizon` days, with the fitted forecast and
    /// stock-out risk; `None` for a product the service has not seen in the catalog.
    pub(crate) async fn demand(
        &self,
        id: &str,
        horizon: u32,
    ) -> Result<Option<DemandFit>, Problem> {
        let Some(input) = self
            .projection
            .demand_input(id, horizon, Utc::now())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(off_thread(move || fit_demand(&input)).await?))
    }

    /// The catalog's product names by id.
    pub(crate) async fn product_names(&self) -> Result<BTreeMap<String, String>, AppError> {
        self.projection.product_names().await
    }

    /// Product `id`'s stock as projected: units that can be ordered (none when the inventory
    /// has not told its initial stock) and units reserved by orders still running. `None` for
    /// a product the service has not seen in the catalog.
    pub(crate) async fn stock(&self, id: &str) -> Result<Option<(Option<i64>, i64)>, AppError> {
        let Some(product) = self.projection.product(id).await? else {
            return Ok(None);
        };
        let available = match product.initial_stock {
            Some(initial) => Some(initial - self.projection.held(id).await?),
            None => None,
        };
        Ok(Some((available, self.projection.in_flight(id).await?)))
    }

    /// The customers the service saw place orders whose id starts as `matches` says, at
    /// most `limit`.
    pub(crate) async fn customers(
        &self,
        matches: impl Fn(&Uuid) -> bool,
        limit: usize,
    ) -> Result<Vec<Uuid>, AppError> {
        Ok(self
            .projection
            .customer_ids()
            .await?
            .into_iter()
            .filter(|c| matches(c))
            .take(limit)
            .collect())
    }

    /// The top `limit` products for `customer` (strategy, `(product, score)` best first), the
    /// products it bought, and the model's metadata.
    pub(crate) async fn recommend(
        &self,
        customer: Uuid,
        limit: usize,
    ) -> Result<(Strategy, Vec<(String, f64)>, Vec<String>, ModelInfo), Problem> {
        let model = self.recommender().await?;
        let key = customer.to_string();
        let (strategy, items) = model.recommend(&key, limit).map_err(model_problem)?;
        Ok((strategy, items, model.purchased(&key), model.info().clone()))
    }

    /// The detector fitted on the shop's sagas, if there are enough; chosen again when older
    /// than [`DETECTOR_REFRESH`].
    async fn observed_detector(
        &self,
        traces: &[SagaTrace],
    ) -> Result<Arc<Option<Detector>>, Problem> {
        let mut slot = self.observed.lock().await;
        if let Some((at, fitted)) = slot.as_ref() {
            // Too few sagas last time: look again sooner.
            let refresh = if fitted.is_some() {
                DETECTOR_REFRESH
            } else {
                DETECTOR_RETRY
            };
            if at.elapsed() < refresh {
                return Ok(fitted.clone());
            }
        }
        let traces = traces.to_vec();
        let fitted = Arc::new(off_thread(move || fit_observed(&traces, Utc::now())).await?);
        *slot = Some((Instant::now(), fitted.clone()));
        Ok(fitted)
    }
}

/// The traces of the sagas' recorded events as they stood at `now`, oldest first.
pub fn traces_of(
    by_saga: BTreeMap<String, Vec<RecordedEvent>>,
    now: DateTime<Utc>,
) -> Vec<SagaTrace> {
    let mut traces: Vec<SagaTrace> = by_saga
        .iter()
        .filter_map(|(id, recorded)| trace_of(id, recorded, now))
        .collect();
    traces.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
    traces
}

/// The earliest day a forecast reads.
fn history_start(today: NaiveDate) -> NaiveDate {
    today
        .checked_sub_days(Days::new(MAX_HISTORY_DAYS as u64 + 1))
        .unwrap_or(today)
}

/// A product's history starts when the service first saw it or an order of it.
fn first_day(seen: NaiveDate, first_order: Option<&NaiveDate>) -> NaiveDate {
    first_order.map_or(seen, |d| seen.min(*d))
}

#[async_trait]
impl Handler for Insights {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.projection.record(envelope).await?;
        if envelope.event_type.starts_with("order.") {
            self.orders_seen.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    fn batch_limit(&self) -> usize {
        usize::from(PREFETCH)
    }

    async fn handle_batch(&self, envelopes: &[Arc<Envelope>]) -> Result<(), HandlerError> {
        let refs: Vec<&Envelope> = envelopes.iter().map(|e| &**e).collect();
        self.projection.record_all(&refs).await?;
        let orders = envelopes
            .iter()
            .filter(|e| e.event_type.starts_with("order."))
            .count();
        self.orders_seen
            .fetch_add(u64::try_from(orders).unwrap_or(u64::MAX), Ordering::AcqRel);
        Ok(())
    }
}

/// Removes saga events older than a week and order lines older than 400 days, and folds
/// reservations older than 30 days into a per-product total (what they hold stays counted;
/// their rows go). Ages go by the events' timestamps, against `now`.
pub async fn prune(db: &Db, now: DateTime<Utc>) -> Result<(), AppError> {
    let sagas = ts(now - SAGA_RETENTION);
    let sales = ts(now - SALES_RETENTION);
    let stock = ts(now - STOCK_FOLD_AFTER);
    let q = |sql: &str| db.qualify(sql);
    let statements = [
        (
            q("DELETE FROM {t}saga_events WHERE occurred_at < $1"),
            &sagas,
        ),
        (q("DELETE FROM {t}saga_runs WHERE started_at < $1"), &sagas),
        (q("DELETE FROM {t}order_lines WHERE placed_at < $1"), &sales),
        (
            q("DELETE FROM {t}order_states WHERE recorded_at < $1"),
            &sales,
        ),
        (
            q("INSERT INTO {t}stock_base AS b (product_id, taken) \
               SELECT l.product_id, CAST(SUM(l.quantity) AS BIGINT) FROM {t}stock_lines l \
               WHERE l.recorded_at < $1 AND NOT EXISTS \
               (SELECT 1 FROM {t}stock_releases r WHERE r.order_id = l.order_id) \
               GROUP BY l.product_id \
               ON CONFLICT (product_id) DO UPDATE SET taken = b.taken + excluded.taken"),
            &stock,
        ),
        (
            q("DELETE FROM {t}stock_lines WHERE recorded_at < $1"),
            &stock,
        ),
        (
            q("DELETE FROM {t}stock_releases WHERE recorded_at < $1"),
            &stock,
        ),
    ];
    with_db!(db, store => {
        let mut uow = store.begin().await?;
        for (sql, before) in &statements {
            sqlx::query(sql.clone()).bind(*before).execute(uow.tx()).await?;
        }
        uow.commit().await?;
    });
    Ok(())
}

/// Prunes every hour until `shutdown`.
pub async fn prune_every(db: Db, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = prune(&db, Utc::now()).await {
            tracing::warn!(error = %e, "ai: pruning the projections failed");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Routes.

/// `GET /forecast/{product_id}?horizon=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForecastQuery {
    horizon: Option<i64>,
}

/// `GET /forecast/{product_id}`: the product's demand forecast, stock-out date and reorder
/// quantity.
pub(crate) async fn forecast(
    State(svc): State<Insights>,
    Path(product_id): Path<String>,
    query: Result<Query<ForecastQuery>, QueryRejection>,
) -> Result<Json<DemandForecast>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let horizon = bounded("horizon", q.horizon, DEFAULT_HORIZON_DAYS, MAX_HORIZON_DAYS)?;
    let fit = svc
        .demand(&product_id, horizon)
        .await?
        .ok_or_else(|| Problem::not_found("product", &product_id))?;
    Ok(Json(fit.answer))
}

/// `GET /recommendations/{customer_id}?limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitQuery {
    limit: Option<i64>,
}

/// A recommended product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendedProduct {
    /// The product.
    pub product_id: String,
    /// Its name, if the catalog has it.
    #[schema(required = true)]
    pub name: Option<String>,
    /// The model's score (higher first; popularity counts customers).
    pub score: f64,
}

/// `GET /recommendations/{customer_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendationsResponse {
    /// The customer.
    pub customer_id: Uuid,
    /// `personalized` (from the customer's purchases) or `popularity` (cold start).
    pub strategy: Strategy,
    /// Why this strategy, in a sentence.
    pub explanation: String,
    /// Best first, at most `limit`.
    pub items: Vec<RecommendedProduct>,
    /// Products left out because the customer bought them.
    pub excluded_purchased: Vec<String>,
    /// The model's kind.
    pub model: String,
    /// When it was fitted.
    pub trained_at: DateTime<Utc>,
}

/// `GET /recommendations/{customer_id}`: products for a customer.
pub(crate) async fn recommendations(
    State(svc): State<Insights>,
    Path(customer_id): Path<String>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<RecommendationsResponse>, Problem> {
    let customer = parse_uuid("customer", &customer_id)?;
    let Query(q) = query.map_err(query_problem)?;
    let limit = bounded("limit", q.limit, 10, MAX_LIMIT)?;
    let (strategy, items, excluded, info) = svc.recommend(customer, limit as usize).await?;
    let explanation = match strategy {
        Strategy::Personalized => format!(
            "from the customer's {} purchased product(s), by the model fitted on {} purchase(s)",
            excluded.len(),
            info.training_rows
        ),
        Strategy::Popularity if info.training_rows == 0 => {
            "no purchases seen yet: nothing to recommend".to_owned()
        }
        Strategy::Popularity => format!(
            "cold start: no purchase of this customer seen; the products most customers bought \
             (of {} purchase(s))",
            info.training_rows
        ),
    };
    let names = svc.projection.product_names().await?;
    Ok(Json(RecommendationsResponse {
        customer_id: customer,
        strategy,
        explanation,
        items: items
            .into_iter()
            .map(|(product_id, score)| RecommendedProduct {
                name: names.get(&product_id).cloned(),
                product_id,
                score,
            })
            .collect(),
        excluded_purchased: excluded,
        trained_at: info.trained_at.unwrap_or_else(Utc::now),
        model: info.kind,
    }))
}

/// `GET /anomalies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnomaliesResponse {
    /// The detector that scored.
    pub detector: DetectorSummary,
    /// Sagas scored: the latest ones the service recorded, at most 1000.
    pub sagas_scored: usize,
    /// When the earliest of them started (none without sagas).
    #[schema(required = true)]
    pub window_start: Option<DateTime<Utc>>,
    /// The sagas scored above the normal limit, most recently started first, at most `limit`.
    pub anomalies: Vec<SagaAnomaly>,
    /// The duration-drift policy: each step's recent durations against its baseline, and
    /// whether it is flagged as drifting.
    pub drift: DriftReport,
}

/// `GET /anomalies?limit=`: the latest sagas the detector flags, with its reasons.
pub(crate) async fn anomalies(
    State(svc): State<Insights>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<AnomaliesResponse>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let limit = bounded("limit", q.limit, 20, MAX_LIMIT)? as usize;
    let (detector, sagas_scored, window_start, anomalies) = svc
        .score_sagas(move |detector, summary, traces| {
            let found = find_anomalies(detector, traces, limit).map_err(AiAppError::Scoring)?;
            Ok((
                summary,
                traces.len(),
                traces.first().map(|t| t.started_at),
                found,
            ))
        })
        .await?;
    Ok(Json(AnomaliesResponse {
        detector,
        sagas_scored,
        window_start,
        anomalies,
        drift: svc.drift(),
    }))
}

/// `GET /models`: every model of the service with its metadata.
pub(crate) async fn models(State(svc): State<Insights>) -> Result<Json<Vec<ModelInfo>>, Problem> {
    let now = Utc::now();
    let mut all = svc.engine.models();
    let traces = svc.projection.traces(now).await?;
    if let Some(observed) = svc.observed_detector(&traces).await?.as_ref()
        && let Some(info) = &observed.info
    {
        all.push(info.clone());
    }
    all.push(svc.recommender().await?.info().clone());
    let series = svc.projection.all_series(now.date_naive()).await?;
    all.push(off_thread(move || forecast_info(&series, now)).await?);
    Ok(Json(all))
}
