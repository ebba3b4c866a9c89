//! The notification service (8005): one simulated e-mail or SMS per customer-facing event.
//!
//! Nothing is sent anywhere: each notification is recorded with `simulated: true`. The
//! notification's id is derived from the event's id, so a redelivered event records nothing
//! new.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use saga_core::broker::Subscription;
use saga_core::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::problem::Problem;
use crate::consumer::Handler;
use crate::context::{Running, ServiceContext};
use crate::error::AppError;
use crate::order_saga::events;
use crate::services::common::{health_routes, parse_ts, parse_uuid, stored_uuid, ts};
use crate::with_db;

/// The notification service's tables.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t}notifications (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        order_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS notifications_by_order ON {t}notifications (order_id, created_at)",
];

/// The subscription of the service.
pub const SUBSCRIPTION: &str = "notification";

/// The events a customer hears about.
pub const NOTIFIED: &[&str] = &[
    events::ORDER_PLACED,
    events::ORDER_CONFIRMED,
    events::ORDER_CANCELLED,
    events::ORDER_FAILED,
    events::PAYMENT_PROCESSED,
    events::PAYMENT_FAILED,
    events::PAYMENT_REFUNDED,
    events::SHIPPING_SCHEDULED,
    events::SHIPPING_DISPATCHED,
    events::SHIPPING_DELIVERED,
];

/// `GET /notifications/{order_id}`: one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationResponse {
    /// The notification.
    pub id: Uuid,
    /// The event it is about.
    pub event_id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// `email` or `sms`.
    pub channel: String,
    /// Who it went to (simulated).
    pub recipient: String,
    /// What it said.
    pub message: String,
    /// Always true: nothing is really sent.
    pub simulated: bool,
    /// When.
    pub created_at: chrono::DateTime<Utc>,
}

/// The channel and the text of the notification for an event.
pub fn compose(envelope: &Envelope) -> (&'static str, String) {
    let order = &envelope.aggregate_id;
    let detail = envelope
        .payload
        .get("detail")
        .or_else(|| envelope.payload.get("reason"))
        .and_then(|v| v.as_str())
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    match envelope.event_type.as_str() {
        events::ORDER_PLACED => ("email", format!("We received your order {order}.")),
        events::ORDER_CONFIRMED => ("email", format!("Your order {order} is confirmed.")),
        events::ORDER_CANCELLED => (
            "email",
            format!(
                "Your order {order} was cancelled{detail}; nothing was charged or it was refunded."
            ),
        ),
        events::ORDER_FAILED => (
            "email",
            format!("We could not accept your order {order}{detail}."),
        ),
        events::PAYMENT_PROCESSED => ("email", format!("Payment received for order {order}.")),
        events::PAYMENT_FAILED => (
            "email",
            format!("Payment for order {order} was declined{detail}."),
        ),
        events::PAYMENT_REFUNDED => ("email", format!("Order {order}: refund processed{detail}.")),
        events::SHIPPING_SCHEDULED => ("sms", format!("Order {order} will ship soon.")),
        events::SHIPPING_DISPATCHED => ("sms", format!("Order {order} is on its way.")),
        events::SHIPPING_DELIVERED => ("sms", format!("Order {order} was delivered.")),
        other => ("email", format!("Order {order}: {other}.")),
    }
}

#[derive(Clone)]
struct Notifications {
    ctx: ServiceContext,
}

/// Starts the notification service.
pub async fn start(ctx: ServiceContext) -> Result<Running, AppError> {
    ctx.db.migrate(MIGRATIONS).await?;
    let svc = Notifications { ctx: ctx.clone() };
    let tasks = vec![ctx.consume(
        Subscription::new(SUBSCRIPTION, NOTIFIED.iter().copied()),
        Arc::new(svc.clone()),
    )];
    let router = Router::new()
        .route("/notifications/{order_id}", get(list_notifications))
        .with_state(svc)
        .merge(health_routes(ctx.service, ctx.db.clone()));
    Ok(Running { router, tasks })
}

/// The statement recording one notification; a repeated event records nothing.
const INSERT: &str = "INSERT INTO {t}notifications (id, event_id, order_id, event_type, channel, \
     recipient, message, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (event_id) DO NOTHING";

/// Most events recorded in one unit of work (what is already waiting, never more).
const BATCH: usize = 64;

/// The recipient of a notification on `channel` about `envelope`'s order.
fn recipient(envelope: &Envelope, channel: &str) -> String {
    let customer = envelope
        .payload
        .get("customer_id")
        .and_then(|v| v.as_str())
        .unwrap_or("customer");
    match channel {
        "sms" => format!("sms:{customer}"),
        _ => format!("{customer}@customers.example"),
    }
}

/// Binds the notification about `envelope` to [`INSERT`] (a query or a batch statement).
macro_rules! bind_notification {
    ($query:expr, $envelope:expr, $at:expr) => {{
        let envelope: &Envelope = $envelope;
        let (channel, message) = compose(envelope);
        $query
            .bind(Uuid::new_v5(&envelope.event_id, channel.as_bytes()).to_string())
            .bind(envelope.event_id.to_string())
            .bind(envelope.aggregate_id.clone())
            .bind(envelope.event_type.clone())
            .bind(channel)
            .bind(recipient(envelope, channel))
            .bind(message)
            .bind($at)
    }};
}

#[async_trait]
impl Handler for Notifications {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let db = &self.ctx.db;
        let sql = db.qualify(INSERT);
        let done: Result<(), AppError> = with_db!(db, store => {
            bind_notification!(sqlx::query(sql.clone()), envelope, ts(Utc::now()))
                .execute(store.write_pool())
                .await
                .map(|_| ())
                .map_err(AppError::from)
        });
        done.map_err(Into::into)
    }

    fn batch_limit(&self) -> usize {
        BATCH
    }

    async fn handle_batch(&self, envelopes: &[Arc<Envelope>]) -> Result<(), HandlerError> {
        self.record_all(envelopes).await.map_err(Into::into)
    }
}

impl Notifications {
    /// Records the notifications of `envelopes` in one unit of work.
    async fn record_all(&self, envelopes: &[Arc<Envelope>]) -> Result<(), AppError> {
        let db = &self.ctx.db;
        let sql = db.qualify(INSERT);
        let at = ts(Utc::now());
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            // One batch: on SQLite one call to the database for all of them.
            let mut batch = uow.batch();
            for envelope in envelopes {
                bind_notification!(batch.execute(sql.clone()), envelope, at.clone());
            }
            batch.run().await?;
            uow.commit().await?;
        });
        Ok(())
    }
}

async fn list_notifications(
    State(svc): State<Notifications>,
    Path(order_id): Path<String>,
) -> Result<Json<Vec<NotificationResponse>>, Problem> {
    let id = parse_uuid("order", &order_id)?;
    let sql = svc.ctx.db.qualify(
        "SELECT id, event_id, order_id, event_type, channel, recipient, message, created_at \
         FROM {t}notifications WHERE order_id = $1 ORDER BY created_at, id",
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
    let rows: Vec<Row> = with_db!(&svc.ctx.db, store => {
        sqlx::query_as(sql.clone())
            .bind(id.to_string())
            .fetch_all(store.read_pool())
            .await
            .map_err(AppError::from)?
    });
    Ok(Json(
        rows.into_iter()
            .map(
                |(id, event, order, event_type, channel, recipient, message, at)| {
                    NotificationResponse {
                        id: stored_uuid(&id),
                        event_id: stored_uuid(&event),
                        order_id: stored_uuid(&order),
                        event_type,
                        channel,
                        recipient,
                        message,
                        simulated: true,
                        created_at: parse_ts(&at),
                    }
                },
            )
            .collect(),
    ))
}
