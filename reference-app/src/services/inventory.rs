//! The inventory service (8002): the product catalog, stock and reservations.
//!
//! Stock is conserved: for every product `available + reserved + sold` equals its initial
//! stock. A reservation takes units from available to reserved (all lines or none, by
//! conditional updates that also hold under concurrent replicas on Postgres); `order.confirmed`
//! moves them to sold; a release (compensation) gives them back, from wherever they are.

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

use crate::api::money::Money;
use crate::api::problem::Problem;
use crate::consumer::Handler;
use crate::context::{Running, ServiceContext};
use crate::error::AppError;
use crate::messages::{OrderPayload, Outcome};
use crate::order_saga::events;
use crate::services::common::{health_routes, parse_ts, parse_uuid, reply, stored_uuid, ts};
use crate::services::order::{CATALOG_SYNC_REQUESTED, PRODUCT_UPSERTED, ProductUpserted};
use crate::with_db;

/// The inventory's tables.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t}products (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        price_cents BIGINT NOT NULL,
        available BIGINT NOT NULL,
        reserved BIGINT NOT NULL,
        sold BIGINT NOT NULL,
        initial_stock BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {t}reservations (
        order_id TEXT PRIMARY KEY,
        items TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)",
];

/// The subscription of the service.
pub const SUBSCRIPTION: &str = "inventory";

/// Namespace of the demo products' ids.
const PRODUCT_NAMESPACE: Uuid = Uuid::from_u128(0x5a6a_0002_0000_4000_8000_7072_6f64_7563);

/// The demo catalog seeded on first start: name, description, price in cents, stock. The
/// last one is scarce on purpose (the seed's "insufficient inventory" scenario).
pub const DEMO_PRODUCTS: &[(&str, &str, i64, i64)] = &[
    (
        "Laptop Pro 14",
        "14-inch laptop, 16 GB RAM, 512 GB SSD",
        129_999,
        100_000,
    ),
    ("Wireless Mouse", "Ergonomic wireless mouse", 2_500, 100_000),
    (
        "Mechanical Keyboard",
        "Tenkeyless, brown switches",
        8_999,
        100_000,
    ),
    (
        "USB-C Hub",
        "7-in-1 hub with HDMI and card reader",
        3_999,
        100_000,
    ),
    (
        "Noise-Cancelling Headphones",
        "Over-ear, 30 h battery",
        19_950,
        100_000,
    ),
    ("27\" Monitor", "27-inch 4K IPS monitor", 32_900, 100_000),
    ("Webcam HD", "1080p webcam with microphone", 5_999, 100_000),
    ("Desk Lamp", "LED desk lamp with dimmer", 2_999, 100_000),
    (
        "Limited Edition Vinyl",
        "Numbered pressing: only five exist",
        4_999,
        5,
    ),
];

/// The id of a demo product, derived from its name.
pub fn demo_product_id(name: &str) -> String {
    Uuid::new_v5(&PRODUCT_NAMESPACE, name.as_bytes()).to_string()
}

/// `GET /products`, `GET /products/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductResponse {
    /// The product.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Unit price.
    pub price: Money,
    /// Units that can be ordered.
    pub available_quantity: i64,
    /// Units held by reservations.
    pub reserved_quantity: i64,
}

/// One reserved line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReservedItem {
    /// The product.
    pub product_id: String,
    /// Units.
    pub quantity: i64,
}

/// `GET /reservations/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReservationResponse {
    /// The order.
    pub order_id: Uuid,
    /// The lines.
    pub items: Vec<ReservedItem>,
    /// `reserved`, `committed` (sold), `released` or `failed`.
    pub status: String,
    /// Why it failed, for `failed`.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// When it was made.
    pub created_at: chrono::DateTime<Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<Utc>,
}

/// `inventory.released`: what the release did, and the lines whose units it gave back (empty
/// when nothing moved: no reservation, a failed one, or one released already).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The order.
    pub order_id: Uuid,
    /// In words.
    pub detail: String,
    /// The lines given back.
    #[serde(default)]
    pub items: Vec<ReservedItem>,
}

#[derive(Clone)]
struct Inventory {
    ctx: ServiceContext,
}

/// Starts the inventory: migrations, demo catalog, consumer, routes.
pub async fn start(ctx: ServiceContext) -> Result<Running, AppError> {
    ctx.db.migrate(MIGRATIONS).await?;
    let inv = Inventory { ctx: ctx.clone() };
    seed_demo_products(&ctx).await?;
    let tasks = vec![
        ctx.consume(
            Subscription::new(
                SUBSCRIPTION,
                [
                    events::INVENTORY_RESERVE_REQUESTED,
                    events::INVENTORY_RELEASE_REQUESTED,
                    events::ORDER_CONFIRMED,
                    CATALOG_SYNC_REQUESTED,
                ],
            )
            .ordered(),
            Arc::new(inv.clone()),
        ),
        tokio::spawn(publish_catalog_when_ready(inv.clone())),
    ];
    let router = Router::new()
        .route("/products", get(list_products))
        .route("/products/{id}", get(get_product))
        .route("/reservations/{order_id}", get(get_reservation))
        .with_state(inv)
        .merge(health_routes(ctx.service, ctx.db.clone()));
    Ok(Running { router, tasks })
}

async fn seed_demo_products(ctx: &ServiceContext) -> Result<(), AppError> {
    let db = &ctx.db;
    let sql = db.qualify(
        "INSERT INTO {t}products (id, name, description, price_cents, available, reserved, sold, \
         initial_stock) VALUES ($1, $2, $3, $4, $5, 0, 0, $5) ON CONFLICT (id) DO NOTHING",
    );
    let mut seeded = 0u64;
    with_db!(db, store => {
        let mut uow = store.begin().await?;
        for (name, description, price, stock) in DEMO_PRODUCTS {
            seeded += sqlx::query(sql.clone())
                .bind(demo_product_id(name))
                .bind(*name)
                .bind(*description)
                .bind(*price)
                .bind(*stock)
                .execute(uow.tx())
                .await?
                .rows_affected();
        }
        uow.commit().await?;
    });
    if seeded > 0 {
        tracing::info!(products = seeded, "inventory: seeded the demo catalog");
    }
    Ok(())
}

/// Publishes the catalog once this process's subscriptions exist.
async fn publish_catalog_when_ready(inv: Inventory) {
    if !inv
        .ctx
        .ready
        .wait_all(std::time::Duration::from_secs(30))
        .await
    {
        tracing::warn!(
            "inventory: subscriptions not ready after 30 s; publishing the catalog anyway"
        );
    }
    if let Err(e) = inv.publish_catalog(None).await {
        tracing::warn!(error = %e, "inventory: publishing the catalog failed");
    }
}

type ProductRow = (String, String, String, i64, i64, i64);

fn product_response(row: ProductRow) -> ProductResponse {
    let (id, name, description, price, available, reserved) = row;
    ProductResponse {
        id,
        name,
        description,
        price: Money::from_cents(price),
        available_quantity: available,
        reserved_quantity: reserved,
    }
}

impl Inventory {
    async fn products(&self) -> Result<Vec<ProductResponse>, AppError> {
        let sql = self.ctx.db.qualify(
            "SELECT id, name, description, price_cents, available, reserved FROM {t}products \
             ORDER BY name",
        );
        let rows: Vec<ProductRow> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone()).fetch_all(store.read_pool()).await?
        });
        Ok(rows.into_iter().map(product_response).collect())
    }

    /// Publishes every product as `product.upserted` (in answer to `inbox` if given), with the
    /// units it was stocked with.
    async fn publish_catalog(&self, inbox: Option<Uuid>) -> Result<(), AppError> {
        let sql = self
            .ctx
            .db
            .qualify("SELECT id, name, price_cents, initial_stock FROM {t}products ORDER BY name");
        let products: Vec<(String, String, i64, i64)> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone()).fetch_all(store.read_pool()).await?
        });
        let events: Vec<Envelope> = products
            .into_iter()
            .map(|(id, name, price, initial_stock)| {
                let body = ProductUpserted {
                    id: id.clone(),
                    name,
                    price: Money::from_cents(price),
                    initial_stock: Some(initial_stock),
                };
                Envelope::new(
                    PRODUCT_UPSERTED,
                    id,
                    serde_json::to_value(body).unwrap_or_default(),
                )
                .with_source("inventory")
            })
            .collect();
        with_db!(&self.ctx.db, store => {
            let mut uow = store.begin().await?;
            if let Some(id) = inbox
                && !uow.mark_inbox(SUBSCRIPTION, id).await?
            {
                return Ok(());
            }
            uow.publish(&events).await?;
            uow.commit().await?;
        });
        Ok(())
    }

    async fn reserve(&self, command: &Envelope) -> Result<(), AppError> {
        let order = OrderPayload::from_value(&command.payload)?;
        let db = &self.ctx.db;
        let take = db.qualify(
            "UPDATE {t}products SET available = available - $1, reserved = reserved + $1 \
             WHERE id = $2 AND available >= $1",
        );
        let stock = db.qualify("SELECT available FROM {t}products WHERE id = $1");
        let insert = db.qualify(
            "INSERT INTO {t}reservations (order_id, items, status, reason, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (order_id) DO NOTHING",
        );
        // Lines of one product are taken together.
        let mut lines: Vec<ReservedItem> = Vec::new();
        for item in &order.items {
            match lines.iter_mut().find(|l| l.product_id == item.product_id) {
                Some(l) => l.quantity += item.quantity,
                None => lines.push(ReservedItem {
                    product_id: item.product_id.clone(),
                    quantity: item.quantity,
                }),
            }
        }
        // Rows are locked in one order (by product id) by every transaction, so two orders
        // of the same products never deadlock on Postgres.
        lines.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        let items = serde_json::to_string(&lines).map_err(|e| AppError::decode("items", e))?;
        let now = ts(Utc::now());
        // First try: take every line; any shortfall rolls the whole unit of work back.
        let shortage: Option<&ReservedItem> = with_db!(db, store => {
            let mut uow = store.begin().await?;
            // Every write in one batch (on SQLite one call to the database); what the
            // takes and the insert matched decides below whether it commits.
            let mut batch = uow.batch();
            batch.mark_inbox(SUBSCRIPTION, command.event_id);
            let takes: Vec<_> = lines
                .iter()
                .map(|line| {
                    batch
                        .execute(take.clone())
                        .bind(line.quantity)
                        .bind(&line.product_id)
                        .id()
                })
                .collect();
            let reservation = batch
                .execute(insert.clone())
                .bind(order.order_id.to_string())
                .bind(&items)
                .bind("reserved")
                .bind(None::<String>)
                .bind(&now)
                .id();
            let payload = serde_json::json!({
                "order_id": order.order_id,
                "items": lines,
            });
            batch.publish(&[reply(command, events::INVENTORY_RESERVED, payload)]);
            let done = batch.run().await?;
            if done.is_duplicate() {
                return Ok(());
            }
            let short = lines
                .iter()
                .zip(&takes)
                .find(|(_, take)| done.rows_affected(**take) != Some(1))
                .map(|(line, _)| line);
            if short.is_none() {
                if done.rows_affected(reservation) == Some(0) {
                    // A reservation exists already (another command id for the same order,
                    // after a retry on deadline): keep the first, report it again.
                    drop(uow);
                    return self.reply_existing(command, &order).await;
                }
                uow.commit().await?;
            }
            short
        });
        let Some(line) = shortage else {
            return Ok(());
        };
        // Nothing was taken (the unit of work was dropped): say why.
        let available: Option<(i64,)> = with_db!(db, store => {
            sqlx::query_as(stock.clone())
                .bind(&line.product_id)
                .fetch_optional(store.read_pool())
                .await?
        });
        let reason = match available {
            None => format!("unknown product {}", line.product_id),
            Some((a,)) => format!(
                "insufficient stock for {}: {} requested, {} available",
                line.product_id, line.quantity, a
            ),
        };
        // Record the refusal and say so.
        let payload = serde_json::to_value(Outcome {
            order_id: order.order_id,
            detail: reason.clone(),
        })
        .map_err(|e| AppError::decode("outcome", e))?;
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            let mut batch = uow.batch();
            batch.mark_inbox(SUBSCRIPTION, command.event_id);
            batch
                .execute(insert.clone())
                .bind(order.order_id.to_string())
                .bind(&items)
                .bind("failed")
                .bind(Some(reason.clone()))
                .bind(&now);
            batch.publish(&[reply(command, events::INVENTORY_RESERVE_FAILED, payload.clone())]);
            if batch.run().await?.is_duplicate() {
                return Ok(());
            }
            uow.commit().await?;
        });
        Ok(())
    }

    /// Answers a repeated reservation command with the state of the first.
    async fn reply_existing(
        &self,
        command: &Envelope,
        order: &OrderPayload,
    ) -> Result<(), AppError> {
        let existing = self.reservation(order.order_id).await?;
        let (kind, payload) = match existing {
            Some(r) if r.status == "failed" => (
                events::INVENTORY_RESERVE_FAILED,
                serde_json::json!({"order_id": order.order_id, "detail": r.reason}),
            ),
            Some(r) => (
                events::INVENTORY_RESERVED,
                serde_json::json!({"order_id": order.order_id, "items": r.items}),
            ),
            None => return Err(AppError::Config("reservation vanished".into())),
        };
        with_db!(&self.ctx.db, store => {
            let mut uow = store.begin().await?;
            if !uow.mark_inbox(SUBSCRIPTION, command.event_id).await? {
                return Ok(());
            }
            uow.publish(&[reply(command, kind, payload)]).await?;
            uow.commit().await?;
        });
        Ok(())
    }

    /// Gives a reservation's units back (compensation), from reserved or from sold.
    async fn release(&self, command: &Envelope) -> Result<(), AppError> {
        let order = OrderPayload::from_value(&command.payload)?;
        let existing = self.reservation(order.order_id).await?;
        let db = &self.ctx.db;
        let mark = db.qualify(
            "UPDATE {t}reservations SET status = 'released', updated_at = $1 \
             WHERE order_id = $2 AND status = $3",
        );
        let from_reserved = db.qualify(
            "UPDATE {t}products SET available = available + $1, reserved = reserved - $1 WHERE id = $2",
        );
        let from_sold = db.qualify(
            "UPDATE {t}products SET available = available + $1, sold = sold - $1 WHERE id = $2",
        );
        let now = ts(Utc::now());
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            if !uow.mark_inbox(SUBSCRIPTION, command.event_id).await? {
                return Ok(());
            }
            // The lines whose units this release gave back (none when nothing moved).
            let mut released: &[ReservedItem] = &[];
            let detail = match &existing {
                Some(r) if r.status == "reserved" || r.status == "committed" => {
                    // Only one release wins the status change; only it moves stock.
                    let changed = sqlx::query(mark.clone())
                        .bind(&now)
                        .bind(order.order_id.to_string())
                        .bind(&r.status)
                        .execute(uow.tx())
                        .await?
                        .rows_affected();
                    if changed == 1 {
                        let sql = if r.status == "reserved" { &from_reserved } else { &from_sold };
                        for line in sorted(&r.items) {
                            sqlx::query(sql.clone())
                                .bind(line.quantity)
                                .bind(&line.product_id)
                                .execute(uow.tx())
                                .await?;
                        }
                        released = &r.items;
                        format!("released {} line(s)", r.items.len())
                    } else {
                        "already released".to_owned()
                    }
                }
                Some(r) => format!("nothing to release (reservation {})", r.status),
                None => "nothing to release (no reservation)".to_owned(),
            };
            let payload = serde_json::to_value(Released {
                order_id: order.order_id,
                detail,
                items: released.to_vec(),
            })
            .map_err(|e| AppError::decode("outcome", e))?;
            uow.publish(&[reply(command, events::INVENTORY_RELEASED, payload)]).await?;
            uow.commit().await?;
        });
        Ok(())
    }

    /// `order.confirmed`: the reserved units are sold.
    async fn commit_sale(&self, event: &Envelope) -> Result<(), AppError> {
        let order_id = event
            .payload
            .get("order_id")
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| AppError::Config("order.confirmed without order_id".into()))?;
        let existing = self.reservation(order_id).await?;
        let db = &self.ctx.db;
        let mark = db.qualify(
            "UPDATE {t}reservations SET status = 'committed', updated_at = $1 \
             WHERE order_id = $2 AND status = 'reserved'",
        );
        let sell = db.qualify(
            "UPDATE {t}products SET reserved = reserved - $1, sold = sold + $1 WHERE id = $2",
        );
        with_db!(db, store => {
            let mut uow = store.begin().await?;
            if !uow.mark_inbox(SUBSCRIPTION, event.event_id).await? {
                return Ok(());
            }
            if let Some(r) = &existing {
                let changed = sqlx::query(mark.clone())
                    .bind(ts(Utc::now()))
                    .bind(order_id.to_string())
                    .execute(uow.tx())
                    .await?
                    .rows_affected();
                if changed == 1 {
                    for line in sorted(&r.items) {
                        sqlx::query(sell.clone())
                            .bind(line.quantity)
                            .bind(&line.product_id)
                            .execute(uow.tx())
                            .await?;
                    }
                }
            }
            uow.commit().await?;
        });
        Ok(())
    }

    async fn reservation(&self, order_id: Uuid) -> Result<Option<ReservationResponse>, AppError> {
        let sql = self.ctx.db.qualify(
            "SELECT order_id, items, status, reason, created_at, updated_at FROM {t}reservations \
             WHERE order_id = $1",
        );
        type Row = (String, String, String, Option<String>, String, String);
        let row: Option<Row> = with_db!(&self.ctx.db, store => {
            sqlx::query_as(sql.clone())
                .bind(order_id.to_string())
                .fetch_optional(store.write_pool())
                .await?
        });
        row.map(|(o, items, status, reason, created, updated)| {
            Ok(ReservationResponse {
                order_id: stored_uuid(&o),
                items: serde_json::from_str(&items)
                    .map_err(|e| AppError::decode("reservation items", e))?,
                status,
                reason,
                created_at: parse_ts(&created),
                updated_at: parse_ts(&updated),
            })
        })
        .transpose()
    }
}

/// The lines in the order every transaction locks their rows: by product id.
fn sorted(items: &[ReservedItem]) -> Vec<&ReservedItem> {
    let mut v: Vec<&ReservedItem> = items.iter().collect();
    v.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    v
}

#[async_trait]
impl Handler for Inventory {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let done = match envelope.event_type.as_str() {
            events::INVENTORY_RESERVE_REQUESTED => self.reserve(envelope).await,
            events::INVENTORY_RELEASE_REQUESTED => self.release(envelope).await,
            events::ORDER_CONFIRMED => self.commit_sale(envelope).await,
            CATALOG_SYNC_REQUESTED => self.publish_catalog(Some(envelope.event_id)).await,
            other => Err(AppError::Config(format!(
                "inventory: unexpected event {other}"
            ))),
        };
        done.map_err(Into::into)
    }
}

async fn list_products(
    State(inv): State<Inventory>,
) -> Result<Json<Vec<ProductResponse>>, Problem> {
    Ok(Json(inv.products().await?))
}

async fn get_product(
    State(inv): State<Inventory>,
    Path(id): Path<String>,
) -> Result<Json<ProductResponse>, Problem> {
    let products = inv.products().await?;
    products
        .into_iter()
        .find(|p| p.id == id)
        .map(Json)
        .ok_or_else(|| Problem::not_found("product", &id))
}

async fn get_reservation(
    State(inv): State<Inventory>,
    Path(order_id): Path<String>,
) -> Result<Json<ReservationResponse>, Problem> {
    let id = parse_uuid("order", &order_id)?;
    inv.reservation(id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found("reservation for order", id))
}
