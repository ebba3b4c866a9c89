//! W3C trace context from the HTTP request to the last event of the saga: an order placed
//! through the web front with a `traceparent` has every event of its saga, from `order.placed`
//! to `shipping.delivered`, carry that trace (its `tracestate` too); a saga whose payment
//! passes its deadline (commands sent by the deadline sweeper, the compensations, the
//! self-healing records) as well; an order without one starts a trace of its own.

mod support;

use std::time::Duration;

use reference_app::topology::Service;
use reference_app::trace_context::TraceParent;
use reference_app::with_db;
use saga_core::Envelope;
use serde_json::{Value, json};
use support::App;

/// Every event the analytics service logged for order `id` (the event log keeps each
/// published envelope whole), once `done` holds for their types (20 s at most).
async fn events_of(app: &App, id: &str, done: impl Fn(&[String]) -> bool) -> Vec<Envelope> {
    let db = app.system.db(Service::Analytics).unwrap();
    let sql = db.qualify("SELECT body FROM {t}event_log WHERE aggregate_id = $1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<(String,)> = with_db!(db, store => {
            sqlx::query_as(sql.clone())
                .bind(id)
                .fetch_all(store.read_pool())
                .await
                .unwrap()
        });
        let events: Vec<Envelope> = rows
            .iter()
            .map(|(b,)| serde_json::from_str(b).unwrap())
            .collect();
        let types: Vec<String> = events.iter().map(|e| e.event_type.clone()).collect();
        if done(&types) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the saga of {id} never logged what was awaited: {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs an order through the web front's `/api/orders`, with `headers`.
async fn place_via_web(app: &App, product: &Value, headers: &[(&str, &str)]) -> String {
    let web = app.system.url(Service::Web);
    let mut body = support::order_body(product, 1, "94102");
    body["customer_id"] = json!(uuid::Uuid::now_v7());
    let mut req = app.client.post(format!("{web}/api/orders")).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    let order: Value = serde_json::from_str(&text).unwrap();
    order["id"].as_str().unwrap().to_owned()
}

/// The trace ids the events carry, and the events that carry none.
fn traces(events: &[Envelope]) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut without = Vec::new();
    for e in events {
        match e
            .headers
            .get("traceparent")
            .and_then(|t| TraceParent::parse(t))
        {
            Some(p) => ids.push(p.trace_id_hex()),
            None => without.push(e.event_type.clone()),
        }
    }
    ids.sort();
    ids.dedup();
    (ids, without)
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_trace_reaches_the_last_event_of_the_saga() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_custom(dir.path(), |s| {
        s.step_deadline = Duration::from_millis(1000);
    })
    .await;
    let products = app.products().await;
    let laptop = &products["Laptop Pro 14"];

    // 1. Completed and delivered.
    let id = place_via_web(
        &app,
        laptop,
        &[("traceparent", CALLER), ("tracestate", "congo=t61rcWkgMzE")],
    )
    .await;
    let events = events_of(&app, &id, |t| t.iter().any(|t| t == "shipping.delivered")).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    for expected in [
        "order.placed",
        "fraud.check.requested",
        "fraud.check.passed",
        "inventory.reserve.requested",
        "inventory.reserved",
        "payment.requested",
        "payment.processed",
        "order.confirmed",
        "shipping.schedule.requested",
        "shipping.scheduled",
        "shipping.dispatched",
        "shipping.delivered",
    ] {
        assert!(types.contains(&expected), "{expected}: {types:?}");
    }
    assert_eq!(
        traces(&events),
        (vec![CALLER_TRACE.to_owned()], Vec::new()),
        "{events:?}"
    );
    for e in &events {
        assert_eq!(
            e.headers.get("tracestate").map(String::as_str),
            Some("congo=t61rcWkgMzE"),
            "{}",
            e.event_type
        );
        // The order service's span is the parent, not the caller's.
        assert_ne!(e.headers["traceparent"], CALLER, "{}", e.event_type);
    }

    // 2. A payment slower than its deadline: sent again by the sweeper, then compensated.
    app.set_gateway_latency(3000).await;
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let stuck = place_via_web(&app, laptop, &[("traceparent", other)]).await;
    let events = events_of(&app, &stuck, |t| {
        t.iter().any(|t| t == "order.cancelled") && t.iter().any(|t| t == "inventory.released")
    })
    .await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "payment.requested").count(),
        2,
        "{types:?}"
    );
    for expected in [
        "payment.refund.requested",
        "payment.refunded",
        "inventory.release.requested",
        // The stuck-saga policy's records of the retry and the compensation.
        "healing.action_taken",
    ] {
        assert!(types.contains(&expected), "{expected}: {types:?}");
    }
    let (ids, without) = traces(&events);
    assert_eq!(ids, ["0af7651916cd43dd8448eb211c80319c"], "{events:?}");
    assert!(without.is_empty(), "{without:?}");

    // 3. No traceparent: the order starts its own trace, shared by its saga's events.
    app.set_gateway_latency(1).await;
    let fresh = place_via_web(&app, laptop, &[("traceparent", "not-a-traceparent")]).await;
    let events = events_of(&app, &fresh, |t| {
        t.iter().any(|t| t == "shipping.delivered")
    })
    .await;
    let (ids, without) = traces(&events);
    assert_eq!(ids.len(), 1, "{events:?}");
    assert!(without.is_empty(), "{without:?}");
    assert_ne!(ids[0], CALLER_TRACE);
    assert!(events.iter().all(|e| !e.headers.contains_key("tracestate")));
    app.stop().await;
}
