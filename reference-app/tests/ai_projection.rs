//! The AI service's projections on a real database (SQLite, and Postgres when `DATABASE_URL`
//! is set): four weeks of orders folded in from their events, then the demand forecast, the
//! projected stock, the purchases and the saga traces read back, redeliveries and events out of
//! order included, and pruning that keeps the stock figure.

use chrono::{DateTime, Days, TimeDelta, Utc};
use reference_app::ai::demand::{ForecastStatus, forecast_demand};
use reference_app::db::Db;
use reference_app::order_saga::events::*;
use reference_app::services::ai::MIGRATIONS;
use reference_app::services::ai_insights::{Projection, prune};
use saga_core::Envelope;
use serde_json::json;
use uuid::Uuid;

const PRODUCT: &str = "lamp";
const INITIAL_STOCK: i64 = 500;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-31T15:00:00Z")
        .unwrap()
        .to_utc()
}

fn event(kind: &str, order: Uuid, at: DateTime<Utc>, payload: serde_json::Value) -> Envelope {
    Envelope::new(kind, order.to_string(), payload).with_timestamp(at)
}

fn placed(order: Uuid, customer: Uuid, at: DateTime<Utc>, lines: &[(&str, i64)]) -> Envelope {
    let items: Vec<_> = lines
        .iter()
        .map(|(p, q)| json!({"product_id": p, "quantity": q, "price": 10.0}))
        .collect();
    event(
        ORDER_PLACED,
        order,
        at,
        json!({
            "order_id": order,
            "customer_id": customer,
            "items": items,
            "total_amount": 10.0,
            "shipping_address": {"street": "1 Elm St", "city": "X", "state": "Y", "zip": "1"},
            "payment_method": "credit_card",
            "created_at": at,
        }),
    )
}

fn lines(order: Uuid, lines: &[(&str, i64)]) -> serde_json::Value {
    let items: Vec<_> = lines
        .iter()
        .map(|(p, q)| json!({"product_id": p, "quantity": q}))
        .collect();
    json!({"order_id": order, "items": items, "detail": "released 1 line(s)"})
}

/// The events of one order that goes through (`cancel`: then cancelled after shipping failed),
/// in saga order.
fn saga(day: DateTime<Utc>, customer: Uuid, units: i64, cancel: bool) -> (Uuid, Vec<Envelope>) {
    let order = Uuid::now_v7();
    let ms = |n| day + TimeDelta::milliseconds(n);
    let line = [(PRODUCT, units)];
    let mut events = vec![
        placed(order, customer, ms(0), &line),
        event(FRAUD_CHECK_REQUESTED, order, ms(0), json!({})),
        event(FRAUD_CHECK_PASSED, order, ms(3), json!({})),
        event(INVENTORY_RESERVE_REQUESTED, order, ms(4), json!({})),
        event(INVENTORY_RESERVED, order, ms(6), lines(order, &line)),
        event(PAYMENT_REQUESTED, order, ms(7), json!({})),
        event(PAYMENT_PROCESSED, order, ms(20), json!({})),
        event(ORDER_CONFIRMED, order, ms(21), json!({"order_id": order})),
        event(SHIPPING_SCHEDULE_REQUESTED, order, ms(21), json!({})),
    ];
    if cancel {
        events.extend([
            event(SHIPPING_FAILED, order, ms(30), json!({})),
            event(PAYMENT_REFUND_REQUESTED, order, ms(31), json!({})),
            event(PAYMENT_REFUNDED, order, ms(40), json!({})),
            event(INVENTORY_RELEASE_REQUESTED, order, ms(41), json!({})),
            event(INVENTORY_RELEASED, order, ms(43), lines(order, &line)),
            event(ORDER_CANCELLED, order, ms(43), json!({"order_id": order})),
        ]);
    } else {
        events.push(event(SHIPPING_SCHEDULED, order, ms(30), json!({})));
    }
    (order, events)
}

async fn exercise(db: Db) {
    db.migrate(MIGRATIONS).await.unwrap();
    let projection = Projection::new(db.clone());
    let first_day = now() - TimeDelta::days(28);
    let catalog = Envelope::new(
        "product.upserted",
        PRODUCT,
        json!({"id": PRODUCT, "name": "Desk Lamp", "price": 29.99, "initial_stock": INITIAL_STOCK}),
    )
    .with_timestamp(first_day);
    projection.record(&catalog).await.unwrap();
    let (ann, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut sold_complete_days = 0;
    let mut sold_today = 0;
    let mut sagas = 0;
    for d in 0..=28u64 {
        let day = first_day
            .date_naive()
            .checked_add_days(Days::new(d))
            .unwrap();
        let at = day.and_hms_opt(10, 0, 0).unwrap().and_utc();
        let units = 3 + (d % 4) as i64;
        let (_, events) = saga(at, ann, units, false);
        for e in &events {
            projection.record(e).await.unwrap();
        }
        if d % 7 == 3 {
            // A second order that day, cancelled: sold nothing, its stock given back. Its
            // events arrive in reverse, and twice, all in one unit of work (a batch).
            let (_, cancelled) = saga(at + TimeDelta::hours(2), bob, 50, true);
            let batch: Vec<&Envelope> = cancelled
                .iter()
                .rev()
                .chain(cancelled.iter().rev())
                .collect();
            projection.record_all(&batch).await.unwrap();
            sagas += 1;
        }
        // Every event delivered again: nothing counts twice.
        projection.record(&events[0]).await.unwrap();
        sagas += 1;
        if day == now().date_naive() {
            sold_today += units;
        } else {
            sold_complete_days += units;
        }
    }

    // The forecast reads 28 complete days and today's sales apart.
    let input = projection
        .demand_input(PRODUCT, 14, now())
        .await
        .unwrap()
        .expect("a known product");
    assert_eq!(input.first_day, first_day.date_naive());
    assert_eq!(
        input.available,
        Some(INITIAL_STOCK - sold_complete_days - sold_today),
        "cancelled orders give their units back"
    );
    let f = forecast_demand(&input).unwrap();
    assert_eq!(f.status, ForecastStatus::Forecast, "{f:?}");
    assert_eq!(f.method.as_deref(), Some("ensemble"));
    assert_eq!(f.history.days, 28);
    assert_eq!(f.history.units_sold, sold_complete_days);
    assert_eq!(f.history.today_units_sold, sold_today);
    assert_eq!(f.daily.len(), 14);
    let mean: f64 = f.daily.iter().map(|d| d.mean).sum::<f64>() / 14.0;
    assert!((3.0..=6.0).contains(&mean), "about 4.5 a day: {mean}");
    assert!(
        f.stock.stockout_date.is_none(),
        "over 300 units last the fortnight"
    );
    assert_eq!(f.stock.reorder_quantity, Some(0));
    assert!(
        projection
            .demand_input("no-such", 14, now())
            .await
            .unwrap()
            .is_none()
    );

    // Purchases: ann's orders only (bob's were cancelled), oldest first.
    let purchases = projection.purchases().await.unwrap();
    assert_eq!(purchases.len(), 29);
    assert!(purchases.iter().all(|p| p.customer == ann.to_string()));
    assert!(purchases.windows(2).all(|w| w[0].at <= w[1].at));

    // Saga traces: one per order, the cancelled ones ending in compensation.
    let traces = projection.traces(now()).await.unwrap();
    assert_eq!(traces.len(), sagas);
    let cancelled = traces
        .iter()
        .filter(|t| t.events.last().unwrap().event_type == ORDER_CANCELLED)
        .count();
    assert_eq!(cancelled, 4);
    assert!(
        traces
            .windows(2)
            .all(|w| w[0].started_at <= w[1].started_at)
    );
    let last = traces.last().unwrap();
    assert_eq!(last.events.len(), 6, "{last:?}");

    // Pruning: old saga events go, old reservations fold into a total that keeps the stock.
    // (a week kept: the last six days' orders, and one cancelled among them)
    prune(&db, now() + TimeDelta::days(1)).await.unwrap();
    assert_eq!(projection.traces(now()).await.unwrap().len(), 7);
    prune(&db, now() + TimeDelta::days(45)).await.unwrap();
    let after = projection
        .demand_input(PRODUCT, 14, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.available, input.available);
    assert!(projection.traces(now()).await.unwrap().is_empty());
}

#[tokio::test]
async fn projections_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("ai.db"), false)
        .await
        .unwrap();
    exercise(db).await;
}

#[tokio::test]
async fn projections_on_postgres() {
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("projections_on_postgres: DATABASE_URL not set but CI=true");
        }
        eprintln!("SKIP projections_on_postgres: DATABASE_URL not set");
        return;
    };
    let schema = format!("aiproj_{}", Uuid::now_v7().simple());
    let db = Db::connect_postgres(&url, &schema, 4).await.unwrap();
    exercise(db.clone()).await;
    if let Db::Postgres { store, .. } = &db {
        let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(store.write_pool())
            .await
            .unwrap();
    }
}
