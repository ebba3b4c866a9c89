//! Reading the rows the invariants are computed from, service by service (read-only
//! statements; the services' databases are separate, so the snapshot is not one point in
//! time: run the checker on a quiet system).

use std::collections::BTreeMap;

use saga_core::dead_letter::DeadLetterFilter;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::databases::Databases;
use crate::db::Db;
use crate::error::AppError;
use crate::services::notification::NOTIFIED;
use crate::topology::Service;
use crate::with_db;

/// An order and the saga it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderRow {
    pub(crate) id: String,
    pub(crate) status: String,
    pub(crate) correlation_id: String,
}

/// A product's stock figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProductRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) available: i64,
    pub(crate) reserved: i64,
    pub(crate) sold: i64,
    pub(crate) initial_stock: i64,
}

/// A charge (or declined charge) of the payment service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransactionRow {
    pub(crate) order_id: String,
    pub(crate) status: String,
    pub(crate) amount_cents: i64,
}

/// A refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefundRow {
    pub(crate) order_id: String,
    pub(crate) amount_cents: i64,
}

/// An event id and its type (a logged event, or the event a notification is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventRef {
    pub(crate) event_id: String,
    pub(crate) event_type: String,
}

/// One service's outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboxFigures {
    pub(crate) service: Service,
    /// Rows in the outbox (published and not).
    pub(crate) rows: i64,
    /// Unpublished rows older than the cutoff.
    pub(crate) stale: i64,
    /// A few of them: (seq, event id, created at in nanoseconds since the epoch).
    pub(crate) stale_examples: Vec<(i64, String, i64)>,
}

/// A dead letter, as far as the checker cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetterRow {
    pub(crate) id: String,
    pub(crate) subscription: String,
    pub(crate) event_type: String,
    pub(crate) reason: String,
}

/// Everything the invariants look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The order service's orders, by id.
    pub(crate) orders: Vec<OrderRow>,
    /// The order service's sagas: id to status.
    pub(crate) sagas: BTreeMap<String, String>,
    /// The inventory's products.
    pub(crate) products: Vec<ProductRow>,
    /// The inventory's reservations: (order id, status).
    pub(crate) reservations: Vec<(String, String)>,
    /// The payment service's transactions.
    pub(crate) transactions: Vec<TransactionRow>,
    /// The payment service's refunds.
    pub(crate) refunds: Vec<RefundRow>,
    /// The shipping service's shipments: order ids.
    pub(crate) shipments: Vec<String>,
    /// The notification service's notifications (the events they are about).
    pub(crate) notifications: Vec<EventRef>,
    /// The analytics event log's events of the notified types.
    pub(crate) logged_notified: Vec<EventRef>,
    /// The analytics event counts (every event ever recorded, pruned ones too), of the
    /// notified types.
    pub(crate) notified_counts: BTreeMap<String, i64>,
    /// Every service's outbox.
    pub(crate) outboxes: Vec<OutboxFigures>,
    /// Every dead letter.
    pub(crate) dead_letters: Vec<DeadLetterRow>,
}

/// Every row of a statement without parameters.
async fn rows<T>(db: &Db, sql: &str) -> Result<Vec<T>, AppError>
where
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let sql = db.qualify(sql);
    Ok(with_db!(db, store => {
        sqlx::query_as(sql.clone()).fetch_all(store.read_pool()).await?
    }))
}

/// Reads the snapshot; outbox rows unpublished since before `outbox_cutoff_nanos`
/// (nanoseconds since the epoch, as the outbox stores its times) count as stale.
pub(crate) async fn read(dbs: &Databases, outbox_cutoff_nanos: i64) -> Result<Snapshot, AppError> {
    let order = dbs.db(Service::Order)?;
    let orders: Vec<(String, String, String)> = rows(
        order,
        "SELECT id, status, correlation_id FROM {t}orders ORDER BY id",
    )
    .await?;
    let sagas: Vec<(String, String)> = rows(order, "SELECT id, status FROM {t}sagas").await?;

    let inventory = dbs.db(Service::Inventory)?;
    let products: Vec<(String, String, i64, i64, i64, i64)> = rows(
        inventory,
        "SELECT id, name, available, reserved, sold, initial_stock FROM {t}products ORDER BY name",
    )
    .await?;
    let reservations: Vec<(String, String)> = rows(
        inventory,
        "SELECT order_id, status FROM {t}reservations ORDER BY order_id",
    )
    .await?;

    let payment = dbs.db(Service::Payment)?;
    let transactions: Vec<(String, String, i64)> = rows(
        payment,
        "SELECT order_id, status, amount_cents FROM {t}transactions ORDER BY order_id",
    )
    .await?;
    let refunds: Vec<(String, i64)> = rows(
        payment,
        "SELECT order_id, amount_cents FROM {t}refunds ORDER BY order_id",
    )
    .await?;

    let shipments: Vec<(String,)> = rows(
        dbs.db(Service::Shipping)?,
        "SELECT order_id FROM {t}shipments ORDER BY order_id",
    )
    .await?;

    let notifications: Vec<(String, String)> = rows(
        dbs.db(Service::Notification)?,
        "SELECT event_id, event_type FROM {t}notifications ORDER BY event_id",
    )
    .await?;

    let analytics = dbs.db(Service::Analytics)?;
    let placeholders: Vec<String> = (1..=NOTIFIED.len()).map(|i| format!("${i}")).collect();
    let logged_sql = analytics.qualify(&format!(
        "SELECT event_id, event_type FROM {{t}}event_log WHERE event_type IN ({}) \
         ORDER BY event_id",
        placeholders.join(", ")
    ));
    let logged: Vec<(String, String)> = with_db!(analytics, store => {
        let mut query = sqlx::query_as(logged_sql.clone());
        for event_type in NOTIFIED {
            query = query.bind(*event_type);
        }
        query.fetch_all(store.read_pool()).await?
    });
    let counts: Vec<(String, i64)> =
        rows(analytics, "SELECT event_type, count FROM {t}event_counts").await?;

    let mut outboxes = Vec::new();
    for (service, db) in dbs.services() {
        outboxes.push(outbox(service, db, outbox_cutoff_nanos).await?);
    }

    let mut dead_letters = Vec::new();
    for store in dbs.dead_letter_stores() {
        for letter in store.list(&DeadLetterFilter::default()).await? {
            dead_letters.push(DeadLetterRow {
                id: letter.id.to_string(),
                subscription: letter.subscription,
                event_type: letter.envelope.event_type,
                reason: letter.reason,
            });
        }
    }

    Ok(Snapshot {
        orders: orders
            .into_iter()
            .map(|(id, status, correlation_id)| OrderRow {
                id,
                status,
                correlation_id,
            })
            .collect(),
        sagas: sagas.into_iter().collect(),
        products: products
            .into_iter()
            .map(
                |(id, name, available, reserved, sold, initial_stock)| ProductRow {
                    id,
                    name,
                    available,
                    reserved,
                    sold,
                    initial_stock,
                },
            )
            .collect(),
        reservations,
        transactions: transactions
            .into_iter()
            .map(|(order_id, status, amount_cents)| TransactionRow {
                order_id,
                status,
                amount_cents,
            })
            .collect(),
        refunds: refunds
            .into_iter()
            .map(|(order_id, amount_cents)| RefundRow {
                order_id,
                amount_cents,
            })
            .collect(),
        shipments: shipments.into_iter().map(|(o,)| o).collect(),
        notifications: notifications.into_iter().map(event_ref).collect(),
        logged_notified: logged.into_iter().map(event_ref).collect(),
        notified_counts: counts
            .into_iter()
            .filter(|(t, _)| NOTIFIED.contains(&t.as_str()))
            .collect(),
        outboxes,
        dead_letters,
    })
}

fn event_ref((event_id, event_type): (String, String)) -> EventRef {
    EventRef {
        event_id,
        event_type,
    }
}

/// The figures of one service's outbox.
async fn outbox(service: Service, db: &Db, cutoff: i64) -> Result<OutboxFigures, AppError> {
    // Published rows kept for the retention period live apart (saga-outbox schema v2).
    let total = db.qualify(
        "SELECT (SELECT COUNT(*) FROM {t}outbox) + (SELECT COUNT(*) FROM {t}outbox_published)",
    );
    let stale =
        db.qualify("SELECT COUNT(*) FROM {t}outbox WHERE published_at IS NULL AND created_at < $1");
    let examples = db.qualify(
        "SELECT seq, event_id, created_at FROM {t}outbox \
         WHERE published_at IS NULL AND created_at < $1 ORDER BY seq LIMIT 5",
    );
    let (rows, stale, stale_examples) = with_db!(db, store => {
        let (rows,): (i64,) = sqlx::query_as(total.clone()).fetch_one(store.read_pool()).await?;
        let (stale,): (i64,) = sqlx::query_as(stale.clone())
            .bind(cutoff)
            .fetch_one(store.read_pool())
            .await?;
        let stale_examples: Vec<(i64, String, i64)> = sqlx::query_as(examples.clone())
            .bind(cutoff)
            .fetch_all(store.read_pool())
            .await?;
        (rows, stale, stale_examples)
    });
    Ok(OutboxFigures {
        service,
        rows,
        stale,
        stale_examples,
    })
}
