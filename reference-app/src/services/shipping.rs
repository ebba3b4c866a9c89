//! The shipping service (8004): schedules shipments, then (simulated, time-scaled) dispatches
//! and delivers them.
//!
//! The simulated carrier refuses addresses with the zip code `00000` (`shipping.failed`), the
//! seed's shipping failure scenario; everything else is scheduled with a tracking number.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use saga_core::broker::Subscription;
use saga_core::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::order::Address;
use crate::api::problem::Problem;
use crate::consumer::Handler;
use crate::context::{Running, ServiceContext};
use crate::error::AppError;
use crate::messages::{OrderPayload, Outcome};
use crate::order_saga::events;
use crate::services::common::{health_routes, parse_ts, parse_uuid, reply, stored_uuid, ts};
use crate::trace_context::TraceContext;
use crate::with_db;

/// The shipping service's tables.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t}shipments (
        order_id TEXT PRIMARY KEY,
        shipment_id TEXT NOT NULL,
        tracking_number TEXT NOT NULL,
        carrier TEXT NOT NULL,
        status TEXT NOT NULL,
        address TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS shipments_by_status ON {t}shipments (status, updated_at)",
    // The W3C trace context of each shipment's saga, for `dispatched` and `delivered`.
    "CREATE TABLE IF NOT EXISTS {t}shipment_traces (
        order_id TEXT PRIMARY KEY,
        traceparent TEXT NOT NULL,
        tracestate TEXT)",
];

/// The subscription of the service.
pub const SUBSCRIPTION: &str = "shipping";

/// The zip code the simulated carrier cannot deliver to.
pub const UNDELIVERABLE_ZIP: &str = "00000";

/// `GET /shipments/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShipmentResponse {
    /// The shipment.
    pub id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The carrier's tracking number.
    pub tracking_number: String,
    /// The (simulated) carrier.
    pub carrier: String,
    /// `scheduled`, `dispatched` or `delivered`.
    pub status: String,
    /// Where it goes.
    pub shipping_address: Address,
    /// When it was scheduled.
    pub created_at: chrono::DateTime<Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<Utc>,
}

#[derive(Clone)]
struct Shipping {
    ctx: ServiceContext,
}

/// Starts the shipping service.
pub async fn start(ctx: ServiceContext) -> Result<Running, AppError> {
    ctx.db.migrate(MIGRATIONS).await?;
    let svc = Shipping { ctx: ctx.clone() };
    let tasks = vec![
        ctx.consume(
            Subscription::new(SUBSCRIPTION, [events::SHIPPING_SCHEDULE_REQUESTED]).ordered(),
            Arc::new(svc.clone()),
        ),
        tokio::spawn(advance_shipments(svc.clone())),
    ];
    let router = Router::new()
        .route("/shipments/{order_id}", get(get_shipment))
        .with_state(svc)
        .merge(health_routes(ctx.service, ctx.db.clone()));
    Ok(Running { router, tasks })
}

impl Shipping {
    async fn schedule(&self, command: &Envelope) -> Result<(), AppError> {
        let order = OrderPayload::from_value(&command.payload)?;
        let db = &self.ctx.db;
        let insert = db.qualify(
            "INSERT INTO {t}shipments (order_id, shipment_id, tracking_number, carrier, status, \
             address, correlation_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'scheduled', $5, $6, $7, $7) ON CONFLICT (order_id) DO NOTHING",
        );
        let shipment_id = Uuid::new_v5(&order.order_id, b"shipment");
        let tracking = format!(
            "SIM{}",
            &shipment_id.simple().to_string()[..12].to_uppercase()
        );
        let address = serde_json::to_string(&order.shipping_address)
            .map_err(|e| AppError::decode("address", e))?;
        let trace = TraceContext::of(command);
        let remember_trace = db.qualify(
            "INSERT INTO {t}shipment_traces (order_id, traceparent, tracestate) \
             VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING",
        );
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            // Every write in one batch: on SQLite one call to the database.
            let mut batch = uow.batch();
            batch.mark_inbox(SUBSCRIPTION, command.event_id);
            let event = if order.shipping_address.zip.trim() == UNDELIVERABLE_ZIP {
                let payload = serde_json::to_value(Outcome {
                    order_id: order.order_id,
                    detail: format!(
                        "the simulated carrier does not deliver to zip {UNDELIVERABLE_ZIP}"
                    ),
                })
                .map_err(|e| AppError::decode("outcome", e))?;
                reply(command, events::SHIPPING_FAILED, payload)
            } else {
                batch
                    .execute(insert.clone())
                    .bind(order.order_id.to_string())
                    .bind(shipment_id.to_string())
                    .bind(&tracking)
                    .bind("SimExpress")
                    .bind(&address)
                    .bind(command.correlation_id.to_string())
                    .bind(ts(Utc::now()));
                if let Some(trace) = &trace {
                    batch
                        .execute(remember_trace.clone())
                        .bind(order.order_id.to_string())
                        .bind(trace.parent.header())
                        .bind(trace.state.clone());
                }
                reply(
                    command,
                    events::SHIPPING_SCHEDULED,
                    serde_json::json!({
                        "order_id": order.order_id,
                        "shipment_id": shipment_id,
                        "tracking_number": tracking,
                        "carrier": "SimExpress",
                    }),
                )
            };
            batch.publish(&[event]);
            if batch.run().await?.is_duplicate() {
                return Ok(());
            }
            uow.commit().await?;
        });
        Ok(())
    }

    /// Moves shipments one status on once they have waited the simulated time; each move
    /// commits with its event, and a conditional update makes replicas move each once.
    async fn advance(&self, from: &str, to: &str, event_type: &str) -> Result<usize, AppError> {
        let db = &self.ctx.db;
        let step = chrono::Duration::from_std(self.ctx.settings.delivery_step)
            .unwrap_or_else(|_| chrono::Duration::seconds(2));
        let before = ts(Utc::now() - step);
        let due = db.qualify(
            "SELECT s.order_id, s.correlation_id, s.tracking_number, t.traceparent, t.tracestate \
             FROM {t}shipments s LEFT JOIN {t}shipment_traces t ON t.order_id = s.order_id \
             WHERE s.status = $1 AND s.updated_at <= $2 ORDER BY s.updated_at LIMIT 100",
        );
        let mark = db.qualify(
            "UPDATE {t}shipments SET status = $1, updated_at = $2 WHERE order_id = $3 AND status = $4",
        );
        type Due = (String, String, String, Option<String>, Option<String>);
        let rows: Vec<Due> = with_db!(db, store => {
            sqlx::query_as(due.clone()).bind(from).bind(&before).fetch_all(store.read_pool()).await?
        });
        let mut moved = 0;
        for (order_id, correlation, tracking, parent, state) in rows {
            let mut event = Envelope::new(
                event_type,
                order_id.clone(),
                serde_json::json!({"order_id": order_id, "tracking_number": tracking, "status": to}),
            )
            .with_id(Uuid::new_v5(
                &stored_uuid(&order_id),
                event_type.as_bytes(),
            ))
            .with_correlation_id(stored_uuid(&correlation))
            .with_source("shipping");
            if let Some(trace) = parent.and_then(|p| TraceContext::from_stored(&p, state)) {
                trace.stamp(&mut event);
            }
            with_db!(db, store => {
                let mut uow = store.begin().await?;
                // The move and its event in one batch; kept only if the move matched.
                let mut batch = uow.batch();
                let change = batch
                    .execute(mark.clone())
                    .bind(to)
                    .bind(ts(Utc::now()))
                    .bind(&order_id)
                    .bind(from)
                    .id();
                batch.publish(&[event]);
                if batch.run().await?.rows_affected(change) == Some(1) {
                    uow.commit().await?;
                    moved += 1;
                }
            });
        }
        Ok(moved)
    }

    async fn shipment(&self, order_id: Uuid) -> Result<Option<ShipmentResponse>, AppError> {
        let sql = self.ctx.db.qualify(
            "SELECT shipment_id, order_id, tracking_number, carrier, status, address, created_at, \
             updated_at FROM {t}shipments WHERE order_id = $1",
        );
        type Row = (
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        );
        let row: Option<Row> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone())
                .bind(order_id.to_string())
                .fetch_optional(store.read_pool())
                .await?
        });
        row.map(
            |(id, order, tracking, carrier, status, address, created, updated)| {
                Ok(ShipmentResponse {
                    id: stored_uuid(&id),
                    order_id: stored_uuid(&order),
                    tracking_number: tracking,
                    carrier,
                    status,
                    shipping_address: serde_json::from_str(&address)
                        .map_err(|e| AppError::decode("address", e))?,
                    created_at: parse_ts(&created),
                    updated_at: parse_ts(&updated),
                })
            },
        )
        .transpose()
    }
}

async fn advance_shipments(svc: Shipping) {
    let mut tick = tokio::time::interval(
        (svc.ctx.settings.delivery_step / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = svc.ctx.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (from, to, event) in [
            ("dispatched", "delivered", events::SHIPPING_DELIVERED),
            ("scheduled", "dispatched", events::SHIPPING_DISPATCHED),
        ] {
            if let Err(e) = svc.advance(from, to, event).await {
                tracing::warn!(error = %e, "shipping: advancing shipments failed");
            }
        }
    }
}

#[async_trait]
impl Handler for Shipping {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        match envelope.event_type.as_str() {
            events::SHIPPING_SCHEDULE_REQUESTED => {
                self.schedule(envelope).await.map_err(Into::into)
            }
            other => Err(HandlerError::permanent(format!(
                "shipping: unexpected event {other}"
            ))),
        }
    }
}

async fn get_shipment(
    State(svc): State<Shipping>,
    Path(order_id): Path<String>,
) -> Result<Json<ShipmentResponse>, Problem> {
    let id = parse_uuid("order", &order_id)?;
    svc.shipment(id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found("shipment for order", id))
}
