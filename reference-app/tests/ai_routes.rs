//! The AI service's model routes against the running embedded system: orders of several
//! customers go through (one fails for want of stock, one is cancelled after the carrier
//! refuses it), then the payment-success prediction, the demand forecast with the projected
//! stock, the recommendations, the saga anomalies and the models' metadata answer from what
//! the service saw, and bad input gets a problem document.

mod support;

use std::collections::BTreeSet;

use reference_app::topology::Service;
use serde_json::{Value, json};
use support::{App, order_body};

const ANN: &str = "00000000-0000-4000-8000-00000000000a";
const BOB: &str = "00000000-0000-4000-8000-00000000000b";
const CY: &str = "00000000-0000-4000-8000-00000000000c";
const DEE: &str = "00000000-0000-4000-8000-00000000000d";
const EVE: &str = "00000000-0000-4000-8000-00000000000e";
const STRANGER: &str = "00000000-0000-4000-8000-0000000000ff";

/// An order of `lines` (product, quantity) for `customer`, shipped to `zip`.
fn order(customer: &str, lines: &[(&Value, i64)], zip: &str) -> Value {
    let mut body = order_body(lines[0].0, lines[0].1, zip);
    body["customer_id"] = json!(customer);
    body["items"] = lines
        .iter()
        .map(|(p, q)| json!({"product_id": p["id"], "quantity": q, "price": p["price"]}))
        .collect();
    body
}

/// GET or POST, returning the status, the media type and the body.
async fn call(app: &App, method: &str, path: &str, body: Option<&Value>) -> (u16, String, Value) {
    let url = format!("{}{path}", app.system.url(Service::Ai));
    let request = match body {
        Some(b) => app.client.post(&url).json(b),
        None if method == "POST" => app.client.post(&url),
        None => app.client.get(&url),
    };
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let media = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, media, r.json().await.unwrap_or(Value::Null))
}

/// A 4xx problem document of `status`.
async fn refused(app: &App, method: &str, path: &str, body: Option<&Value>, status: u16) {
    let (got, media, problem) = call(app, method, path, body).await;
    assert_eq!(got, status, "{method} {path}: {problem}");
    assert_eq!(media, "application/problem+json", "{method} {path}");
    assert_eq!(problem["status"], status, "{problem}");
    assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_routes_answer_from_what_the_service_saw() {
    let app = App::start(0.0).await;
    let products = app.products().await;
    let p = |name: &str| products[name].clone();
    let (laptop, mouse, keyboard, hub, headphones, vinyl, webcam) = (
        p("Laptop Pro 14"),
        p("Wireless Mouse"),
        p("Mechanical Keyboard"),
        p("USB-C Hub"),
        p("Noise-Cancelling Headphones"),
        p("Limited Edition Vinyl"),
        p("Webcam HD"),
    );
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();

    let orders = [
        (
            order(ANN, &[(&laptop, 2), (&mouse, 1)], "94102"),
            "confirmed",
        ),
        (order(BOB, &[(&laptop, 1), (&hub, 1)], "94102"), "confirmed"),
        (order(CY, &[(&mouse, 3)], "94102"), "confirmed"),
        (order(DEE, &[(&headphones, 1)], "94102"), "confirmed"),
        (order(ANN, &[(&keyboard, 1)], "94102"), "confirmed"),
        // More than there is: fails, nothing taken.
        (order(EVE, &[(&vinyl, 6)], "94102"), "failed"),
        // The carrier refuses: paid, then refunded and the stock given back.
        (order(EVE, &[(&webcam, 1)], "00000"), "cancelled"),
    ];
    for (body, end) in &orders {
        let (status, placed) = app.place(body, None).await;
        assert_eq!(status, 201, "{placed}");
        let done = app.wait(placed["id"].as_str().unwrap()).await;
        assert_eq!(done["order"]["status"], *end, "{done}");
    }

    // Payment success: the customer's paid orders are read.
    let ask = |customer: &str, method: &str| json!({"customer_id": customer, "amount": 120.5, "payment_method": {"type": method}});
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let ann_prediction = loop {
        let (status, _, v) = call(
            &app,
            "POST",
            "/predict/payment-success",
            Some(&ask(ANN, "paypal")),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        if v["features"]["past_successes"] == 2 || tokio::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        ann_prediction["features"]["past_successes"], 2,
        "{ann_prediction}"
    );
    assert_eq!(ann_prediction["features"]["past_failures"], 0);
    assert_eq!(ann_prediction["features"]["method"], "wallet");
    assert_eq!(ann_prediction["features"]["amount"], 120.5);
    let p_ann = ann_prediction["probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p_ann));
    let (_, _, stranger) = call(
        &app,
        "POST",
        "/predict/payment-success",
        Some(&ask(STRANGER, "bank_transfer")),
    )
    .await;
    assert_eq!(stranger["features"]["past_successes"], 0);
    assert_eq!(stranger["features"]["account_age_days"], 0.0);
    assert_eq!(stranger["features"]["method"], "bank_transfer");
    let path = "/predict/payment-success";
    for bad in [
        json!({"customer_id": ANN, "amount": 0}),
        json!({"customer_id": ANN, "amount": 10, "payment_method": {"type": "gold_bars"}}),
        json!({"customer_id": "ann", "amount": 10}),
        json!({"amount": 10}),
        json!({"customer_id": ANN, "amount": -3}),
        json!({"customer_id": ANN, "amount": 10, "coupon": "FREE"}),
    ] {
        refused(&app, "POST", path, Some(&bad), 422).await;
    }

    // Forecasts: a fresh shop has no complete day of sales, and says so; the stock projected
    // from the inventory's events is the inventory's own.
    let inventory = app.get(Service::Inventory, "/products").await;
    let stock_of = |pid: &str| {
        inventory
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == pid)
            .unwrap()["available_quantity"]
            .as_i64()
            .unwrap()
    };
    for (product, sold) in [
        (&laptop, 3),
        (&mouse, 4),
        (&webcam, 0),
        (&vinyl, 0),
        (&hub, 1),
    ] {
        let pid = id(product);
        let f = app
            .eventually(Service::Ai, &format!("/forecast/{pid}"), |f| {
                f["history"]["today_units_sold"] == sold
                    && f["stock"]["available"] == stock_of(&pid)
            })
            .await;
        assert_eq!(f["product_name"], product["name"]);
        assert_eq!(f["status"], "insufficient_history", "{f}");
        assert_eq!(f["method"], Value::Null);
        assert_eq!(f["history"]["days"], 0);
        assert_eq!(f["horizon_days"], 14);
        assert_eq!(f["daily"], json!([]));
        assert_eq!(f["stock"]["reorder_quantity"], Value::Null);
        assert!(f["explanation"].as_str().unwrap().contains("no forecast"));
    }
    assert_eq!(
        stock_of(&id(&webcam)),
        100_000,
        "the cancelled order gave it back"
    );
    let (status, _, f) = call(
        &app,
        "GET",
        &format!("/forecast/{}?horizon=30", id(&laptop)),
        None,
    )
    .await;
    assert_eq!((status, f["horizon_days"].clone()), (200, json!(30)));
    refused(&app, "GET", "/forecast/no-such-product", None, 404).await;
    for query in [
        "horizon=0",
        "horizon=91",
        "horizon=-1",
        "horizon=soon",
        "days=3",
    ] {
        refused(
            &app,
            "GET",
            &format!("/forecast/{}?{query}", id(&laptop)),
            None,
            400,
        )
        .await;
    }

    // Recommendations: what others bought, never what the customer has; strangers get the
    // popular products. (The model refits once the service has recorded the orders' ends.)
    // Both sides are read models that fill as the orders' ends arrive: wait until the
    // recommendations and the customer's own purchases are complete (CI once read them
    // while the last of Ann's three orders was still on its way).
    let others: BTreeSet<String> = [id(&hub), id(&headphones)].into();
    let bought: BTreeSet<String> = [&laptop, &mouse, &keyboard].iter().map(|p| id(p)).collect();
    let excluded = |r: &serde_json::Value| -> BTreeSet<String> {
        r["excluded_purchased"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let r = app
        .eventually(Service::Ai, &format!("/recommendations/{ANN}"), |r| {
            ids(&r["items"], "product_id")
                .into_iter()
                .collect::<BTreeSet<_>>()
                == others
                && excluded(r) == bought
        })
        .await;
    assert_eq!(r["strategy"], "personalized", "{r}");
    assert_eq!(excluded(&r), bought);
    // Everything bought by anyone (failed and cancelled orders left out) but Ann's own, the
    // hub first: Bob bought it with the laptop Ann has.
    let recommended = ids(&r["items"], "product_id");
    assert_eq!(recommended[0], id(&hub), "{r}");
    assert_eq!(r["items"][0]["name"], "USB-C Hub");
    let r = app
        .get(Service::Ai, &format!("/recommendations/{STRANGER}?limit=2"))
        .await;
    assert_eq!(r["strategy"], "popularity", "{r}");
    assert_eq!(r["excluded_purchased"], json!([]));
    let top: BTreeSet<String> = ids(&r["items"], "product_id").into_iter().collect();
    assert_eq!(
        top,
        [id(&laptop), id(&mouse)].into(),
        "two customers each: {r}"
    );
    assert!(r["items"][0]["score"].as_f64().unwrap() >= 2.0);
    let r = app
        .get(Service::Ai, &format!("/recommendations/{STRANGER}"))
        .await;
    assert_eq!(r["items"].as_array().unwrap().len(), 5);
    refused(&app, "GET", "/recommendations/not-a-uuid", None, 400).await;
    for query in ["limit=0", "limit=101", "limit=many", "k=3"] {
        refused(
            &app,
            "GET",
            &format!("/recommendations/{ANN}?{query}"),
            None,
            400,
        )
        .await;
    }

    // Anomalies: every saga was recorded and scored. The seed's scenarios take no sequence a
    // normal saga would not (once every event of theirs is recorded); only their timing may
    // stand out, on a machine loaded enough to slow a step far beyond the generated sagas'.
    let only_slow = |a: &Value| {
        a["anomalies"].as_array().is_some_and(|l| {
            l.iter().all(|s| {
                s["findings"]
                    .as_array()
                    .is_some_and(|f| f.iter().all(|f| f["kind"] == "slow_step"))
            })
        })
    };
    let a = app
        .eventually(Service::Ai, "/anomalies", |a| {
            a["sagas_scored"] == orders.len() && only_slow(a)
        })
        .await;
    assert_eq!(a["detector"]["source"], "generated", "{a}");
    assert_eq!(a["detector"]["kind"], "anomaly.saga");
    assert!(a["detector"]["trained_on"].as_u64().unwrap() >= 20);
    assert!(a["window_start"].is_string());
    for query in ["limit=0", "limit=500", "since=yesterday"] {
        refused(&app, "GET", &format!("/anomalies?{query}"), None, 400).await;
    }

    // Models: the three files and the two fitted from the shop's data.
    let models = app.get(Service::Ai, "/models").await;
    let names = ids(&models, "name");
    assert_eq!(
        names,
        [
            "fraud",
            "payment_success",
            "saga_anomaly",
            "recommendations",
            "demand_forecast"
        ]
    );
    let m = |name: &str| {
        models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()
            .clone()
    };
    for name in ["fraud", "payment_success", "saga_anomaly"] {
        let model = m(name);
        assert!(
            model["file"].as_str().unwrap().ends_with(".json"),
            "{model}"
        );
        assert!(!model["metrics"].as_object().unwrap().is_empty(), "{model}");
        assert!(model["trained_at"].is_string() && model["format_version"].is_u64());
    }
    assert!(
        m("saga_anomaly")["metrics"]["average_precision"]
            .as_f64()
            .unwrap()
            > 0.5
    );
    assert_eq!(ann_prediction["kind"], m("payment_success")["kind"]);
    let rec = m("recommendations");
    assert_eq!(rec["training_rows"], 7, "Ann 3, Bob 2, Cy 1, Dee 1: {rec}");
    assert_eq!(rec["file"], Value::Null);
    assert!(
        rec["evaluation"]
            .as_str()
            .unwrap()
            .starts_with("not measured")
    );
    let demand = m("demand_forecast");
    assert_eq!(demand["training_rows"], 0, "no complete day yet: {demand}");
    assert_eq!(demand["trained_at"], Value::Null);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_past_its_deadline_shows_as_an_anomaly_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    // The gateway answers after 3 s; a step may take 0.5 s (then one retry, then undo): the
    // saga refunds a payment it never saw complete.
    let app = App::start_with(
        dir.path(),
        0.0,
        std::time::Duration::from_millis(3000),
        std::time::Duration::from_millis(500),
    )
    .await;
    let products = app.products().await;
    let (status, placed) = app
        .place(&order(ANN, &[(&products["Webcam HD"], 1)], "94102"), None)
        .await;
    assert_eq!(status, 201, "{placed}");
    let id = placed["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait(&id).await["order"]["status"], "cancelled");
    let a = app
        .eventually(Service::Ai, "/anomalies", |a| {
            a["anomalies"]
                .as_array()
                .is_some_and(|l| l.iter().any(|s| s["order_id"] == id.as_str()))
        })
        .await;
    let flagged = &a["anomalies"][0];
    assert_eq!(flagged["order_id"], id.as_str(), "{a}");
    assert!(flagged["score"].as_f64().unwrap() > 1.0);
    let findings = flagged["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        assert!(f["score"].as_f64().unwrap() > 1.0, "{f}");
        assert!(!f["explanation"].as_str().unwrap().is_empty());
    }
    // Refunding a payment that never completed is a sequence normal sagas never take.
    let sequence = findings
        .iter()
        .find(|f| f["kind"] == "impossible_sequence")
        .unwrap_or_else(|| panic!("no sequence finding: {a}"));
    assert_eq!(sequence["step"], "process_payment", "{a}");
    assert!(
        sequence["explanation"]
            .as_str()
            .unwrap()
            .contains("payment.refund.requested"),
        "{a}"
    );
    app.stop().await;
}
