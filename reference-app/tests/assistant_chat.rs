//! `POST /chat` on the embedded system: the assistant answers from the live orders, stock and
//! dead letters, and replays a dead letter only after "yes".

mod support;

use std::time::Duration;

use reference_app::topology::Service;
use saga_core::Envelope;
use serde_json::{Value, json};
use support::{App, order_body, stock_of};

/// Sends `message` in `conversation`; the answer (200 expected).
async fn ask(app: &App, conversation: &str, message: &str) -> Value {
    let url = format!("{}/chat", app.system.url(Service::Ai));
    let r = app
        .client
        .post(&url)
        .json(&json!({"message": message, "conversation_id": conversation}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{message}: {v}");
    assert_eq!(v["conversation_id"], conversation, "{v}");
    v
}

fn intent(reply: &Value) -> &str {
    reply["intent"]["intent"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_assistant_answers_from_live_orders_stock_and_dead_letters() {
    let app = App::start(0.0).await;
    let products = app.products().await;
    let laptop = &products["Laptop Pro 14"];

    // One order that completes, one whose shipping fails (paid, then undone).
    let (status, ok) = app.place(&order_body(laptop, 1, "94102"), None).await;
    assert_eq!(status, 201, "{ok}");
    let ok_id = ok["id"].as_str().unwrap().to_owned();
    let done = app.wait(&ok_id).await;
    let ok_status = done["order"]["status"].as_str().unwrap().to_owned();
    let mouse = &products["Wireless Mouse"];
    let (status, bad) = app.place(&order_body(mouse, 1, "00000"), None).await;
    assert_eq!(status, 201, "{bad}");
    let bad_id = bad["id"].as_str().unwrap().to_owned();
    let done = app.wait(&bad_id).await;
    assert_eq!(done["order"]["status"], "cancelled", "{done}");

    // Status of the first, by its whole id.
    let r = ask(&app, "c1", &format!("what's the status of order {ok_id}")).await;
    assert_eq!(intent(&r), "order_status", "{r}");
    assert_eq!(r["data"]["kind"], "order", "{r}");
    assert_eq!(r["data"]["value"]["id"], ok_id.as_str(), "{r}");
    assert_eq!(r["data"]["value"]["status"], ok_status.as_str(), "{r}");
    let text = r["text"].as_str().unwrap();
    assert!(text.contains(&ok_id), "{text}");
    // No language model configured: the offline parser understood it.
    assert_eq!(r["via"], "parser", "{r}");

    // Why the second failed, by the start of its id. UUIDv7 ids start with their time in
    // milliseconds: the first 8 characters are the same for both orders, so the assistant
    // offers both; 13 (to the millisecond) single the order out.
    let r = ask(&app, "c1", &format!("why did order {} fail", &bad_id[..8])).await;
    assert_eq!(intent(&r), "why_failed", "{r}");
    if ok_id[..8] == bad_id[..8] {
        assert_eq!(r["data"]["kind"], "candidates", "{r}");
        let candidates = r["data"]["value"].to_string();
        assert!(
            candidates.contains(&bad_id) && candidates.contains(&ok_id),
            "{r}"
        );
    }
    let prefix = &bad_id[..13];
    let r = ask(&app, "c1", &format!("why did order {prefix} fail")).await;
    assert_eq!(intent(&r), "why_failed", "{r}");
    let order = &r["data"]["value"];
    assert_eq!(order["id"], bad_id.as_str(), "{r}");
    assert_eq!(order["outcome"], "failed", "{r}");
    assert_eq!(order["failure"]["step"], "schedule_shipping", "{r}");
    let compensations = order["failure"]["compensations"].to_string();
    assert!(compensations.contains("refund_payment"), "{r}");
    let text = r["text"].as_str().unwrap();
    assert!(text.contains("schedule_shipping"), "{text}");

    // Today's orders: the two placed.
    let r = ask(&app, "c1", "how many orders today").await;
    assert_eq!(intent(&r), "order_count", "{r}");
    let stats = &r["data"]["value"]["stats"];
    assert_eq!(stats["orders"], 2, "{r}");
    assert_eq!(stats["succeeded"], 1, "{r}");
    assert_eq!(stats["failed"], 1, "{r}");
    assert!(r["text"].as_str().unwrap().contains('2'), "{r}");

    // Stock, with a typo, as the AI service projects it (it trails the inventory's events).
    let (available, _) = stock_of(&app.products().await["Laptop Pro 14"]);
    let r = app
        .eventually_reply("c1", "how much stock of laptop pr", |r| {
            r["data"]["value"]["available"] == available
        })
        .await;
    assert_eq!(intent(&r), "stock", "{r}");
    assert_eq!(
        r["data"]["value"]["product"]["name"], "Laptop Pro 14",
        "{r}"
    );
    assert!(
        r["text"].as_str().unwrap().contains(&available.to_string()),
        "{r}"
    );

    // Dead letters: none, then one made on purpose, replayed after "yes".
    let r = ask(&app, "c2", "list dead letters").await;
    assert_eq!(intent(&r), "list_dead_letters", "{r}");
    assert_eq!(r["data"]["value"], json!([]), "{r}");
    app.publish_poison(&["chat-poison"]).await;
    let letters = app
        .eventually(Service::Order, "/dead-letters", |v| {
            v.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    let letter = letters[0]["id"].as_str().unwrap().to_owned();
    let r = ask(&app, "c2", "list dead letters").await;
    assert_eq!(r["data"]["value"][0]["id"], letter.as_str(), "{r}");
    assert!(r["text"].as_str().unwrap().contains(&letter[..8]), "{r}");

    let r = ask(&app, "c2", &format!("replay dead letter {}", &letter[..8])).await;
    assert_eq!(intent(&r), "replay_dead_letter", "{r}");
    assert_eq!(r["pending"]["action"], "replay_dead_letter", "{r}");
    // Nothing ran yet.
    let still = app
        .get(Service::Order, &format!("/dead-letters/{letter}"))
        .await;
    assert_eq!(still["status"], "pending", "{still}");
    // "yes" in another conversation does nothing here.
    let r = ask(&app, "c3", "yes").await;
    assert_eq!(intent(&r), "confirm", "{r}");
    assert!(r["data"].is_null(), "{r}");
    let r = ask(&app, "c2", "yes").await;
    assert_eq!(intent(&r), "confirm", "{r}");
    assert_eq!(r["data"]["kind"], "action_done", "{r}");
    assert_eq!(r["data"]["value"]["done"], true, "{r}");
    let after = app
        .get(Service::Order, &format!("/dead-letters/{letter}"))
        .await;
    assert_eq!(after["status"], "replayed", "{after}");

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_bodies_are_problems() {
    let app = App::start(0.0).await;
    let url = format!("{}/chat", app.system.url(Service::Ai));
    for (body, expect) in [
        (json!({"message": ""}), 422),
        (json!({"message": "x".repeat(2001)}), 422),
        (json!({"message": "hi", "extra": 1}), 422),
        (json!({"message": "hi", "conversation_id": ""}), 422),
    ] {
        let r = app.client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), expect, "{body}");
        let media = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(media, "application/problem+json", "{body}");
    }
    // Without a conversation id, a new one is given.
    let r: Value = app
        .client
        .post(&url)
        .json(&json!({"message": "help"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        r["conversation_id"].as_str().is_some_and(|c| !c.is_empty()),
        "{r}"
    );
    app.stop().await;
}

trait Eventually {
    /// Asks `message` until the reply satisfies `ok` (10 s at most): the AI service's
    /// projections trail the saga's events.
    async fn eventually_reply(
        &self,
        conversation: &str,
        message: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value;
}

impl Eventually for App {
    async fn eventually_reply(
        &self,
        conversation: &str,
        message: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let r = ask(self, conversation, message).await;
            if ok(&r) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{message}: never satisfied; last: {r}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// `order.placed` and `order.confirmed` of an order of `units` of `product` placed at `at`:
/// sales history the AI service's forecast reads, published as the order service would.
fn past_sale(product: &Value, units: i64, at: chrono::DateTime<chrono::Utc>) -> [Envelope; 2] {
    let order = uuid::Uuid::now_v7();
    let customer = uuid::Uuid::now_v7();
    let placed = Envelope::new(
        "order.placed",
        order.to_string(),
        json!({
            "order_id": order,
            "customer_id": customer,
            "items": [{"product_id": product["id"], "quantity": units, "price": product["price"]}],
            "total_amount": product["price"],
            "shipping_address": {"street": "1 Elm St", "city": "X", "state": "CA", "zip": "94102"},
            "payment_method": "credit_card",
            "created_at": at,
        }),
    )
    .with_timestamp(at);
    let confirmed = Envelope::new(
        "order.confirmed",
        order.to_string(),
        json!({"order_id": order, "customer_id": customer, "status": "confirmed",
               "total_amount": product["price"], "reason": null}),
    )
    .with_timestamp(at + chrono::TimeDelta::milliseconds(50));
    [placed, confirmed]
}

/// An order of `lines` (product, quantity) for `customer`.
fn order_of(customer: &str, lines: &[(&Value, i64)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(p, q)| json!({"product_id": p["id"], "quantity": q, "price": p["price"]}))
        .collect();
    json!({
        "customer_id": customer,
        "items": items,
        "shipping_address": {"street": "123 Main St", "city": "San Francisco", "state": "CA", "zip": "94102"},
        "payment_method": {"type": "credit_card"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_assistant_answers_forecasts_recommendations_and_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_custom(dir.path(), |s| {
        s.step_deadline = Duration::from_millis(1000);
    })
    .await;
    let products = app.products().await;
    let (laptop, mouse, hub) = (
        &products["Laptop Pro 14"],
        &products["Wireless Mouse"],
        &products["USB-C Hub"],
    );

    // Forecast: without history the assistant says why there is none. (The AI service's
    // catalog is a read model of the inventory's events: right after start it may not know
    // every product yet.)
    let r = app
        .eventually_reply(
            "f",
            "what's the demand forecast for the laptop pro 14",
            |r| r["intent"]["product"]["name"] == "Laptop Pro 14",
        )
        .await;
    assert_eq!(intent(&r), "forecast", "{r}");
    assert_eq!(r["intent"]["product"]["name"], "Laptop Pro 14", "{r}");
    assert!(
        r["error"].as_str().unwrap_or("").contains("no forecast"),
        "{r}"
    );
    // Two weeks of daily sales of the hub, then a forecast with its interval.
    let today = chrono::Utc::now().date_naive();
    let mut history = Vec::new();
    for d in 1..=14u64 {
        let day = today.checked_sub_days(chrono::Days::new(d)).unwrap();
        let at = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
        history.extend(past_sale(hub, 2 + (d % 3) as i64, at));
    }
    let broker = app.system.broker().unwrap();
    broker.publisher.publish(&history).await.unwrap();
    let r = app
        .eventually_reply("f", "forecast usb-c hub for the next 7 days", |r| {
            r["data"]["kind"] == "forecast"
        })
        .await;
    assert_eq!(intent(&r), "forecast", "{r}");
    let outlook = &r["data"]["value"];
    assert_eq!(outlook["product"]["name"], "USB-C Hub", "{r}");
    assert_eq!(outlook["days"], 7, "{r}");
    let (lower, expected, upper) = (
        outlook["lower"].as_f64().unwrap(),
        outlook["expected"].as_f64().unwrap(),
        outlook["upper"].as_f64().unwrap(),
    );
    // About 3 a day for 7 days, inside its interval.
    assert!(lower <= expected && expected <= upper, "{r}");
    assert!((10.0..=35.0).contains(&expected), "{r}");
    assert!(r["text"].as_str().unwrap().contains("USB-C Hub"), "{r}");

    // Recommendations: Ann bought the laptop and the mouse; Bob the laptop.
    let (ann, bob) = (
        "aaaaaaaa-0000-4000-8000-000000000001",
        "bbbbbbbb-0000-4000-8000-000000000002",
    );
    for (customer, lines) in [
        (ann, vec![(laptop, 1), (mouse, 1)]),
        (bob, vec![(laptop, 1)]),
    ] {
        let (code, o) = app.place(&order_of(customer, &lines), None).await;
        assert_eq!(code, 201, "{o}");
        app.wait(o["id"].as_str().unwrap()).await;
    }
    let r = app
        .eventually_reply(
            "r",
            &format!("what should we recommend to customer {bob}"),
            |r| r["data"]["value"]["personalised"] == true,
        )
        .await;
    assert_eq!(intent(&r), "recommendations", "{r}");
    assert_eq!(r["data"]["kind"], "recommendations", "{r}");
    let names: Vec<&str> = r["data"]["value"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["product"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Wireless Mouse"), "{r}");
    assert!(!names.contains(&"Laptop Pro 14"), "bought already: {r}");

    // Anomalies: a payment slower than its deadline, refunded before it was seen completing.
    app.set_gateway_latency(3000).await;
    let (code, o) = app.place(&order_body(mouse, 1, "94102"), None).await;
    assert_eq!(code, 201, "{o}");
    let stuck = o["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait(&stuck).await["order"]["status"], "cancelled");
    let r = app
        .eventually_reply("a", "any anomalies in the sagas right now?", |r| {
            r["data"]["value"].to_string().contains(&stuck)
        })
        .await;
    assert_eq!(intent(&r), "anomalies", "{r}");
    assert_eq!(r["data"]["kind"], "anomalies", "{r}");
    let report = r["data"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["saga_id"] == stuck.as_str())
        .cloned()
        .unwrap();
    assert!(report["score"].as_f64().unwrap() > 1.0, "{report}");
    assert!(r["text"].as_str().unwrap().contains(&stuck[..8]), "{r}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_and_revenue_cover_every_order_of_the_period() {
    let app = App::start(0.0).await;
    let products = app.products().await;
    let mouse = &products["Wireless Mouse"];
    // More orders than any page of the order list (500).
    let n = 520;
    let body = order_body(mouse, 1, "94102");
    let mut placed = 0;
    for chunk in 0..(n / 20) {
        let batch = futures_util::future::join_all((0..20).map(|i| {
            let body = body.clone();
            let app = &app;
            async move { app.place(&body, Some(&format!("count-{chunk}-{i}"))).await }
        }))
        .await;
        for (code, o) in batch {
            assert_eq!(code, 201, "{o}");
            placed += 1;
        }
    }
    assert_eq!(placed, n);
    let r = ask(&app, "n", "how many orders were placed today").await;
    assert_eq!(intent(&r), "order_count", "{r}");
    let stats = &r["data"]["value"]["stats"];
    assert_eq!(stats["orders"], n, "{r}");
    let sum = stats["succeeded"].as_u64().unwrap()
        + stats["failed"].as_u64().unwrap()
        + stats["in_progress"].as_u64().unwrap();
    assert_eq!(sum, n as u64, "{r}");
    assert!(r["text"].as_str().unwrap().contains(&n.to_string()), "{r}");
    // Revenue is the confirmed orders' totals, as the order service's own count says.
    let from = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let to = from + chrono::TimeDelta::days(1);
    let path = format!(
        "/orders/stats?from={}&to={}",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        to.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let counted = app.get(Service::Order, &path).await;
    assert_eq!(counted["orders"], n, "{counted}");
    let price_cents = (mouse["price"].as_f64().unwrap() * 100.0).round() as i64;
    let confirmed = counted["succeeded"].as_i64().unwrap();
    let revenue_cents = (counted["revenue"].as_f64().unwrap() * 100.0).round() as i64;
    assert_eq!(revenue_cents, confirmed * price_cents, "{counted}");
    let r = ask(&app, "n", "revenue today").await;
    assert_eq!(intent(&r), "revenue", "{r}");
    assert!(
        r["data"]["value"]["stats"]["orders"].as_u64().unwrap() >= n as u64,
        "{r}"
    );
    app.stop().await;
}

/// A test double of an OpenAI-compatible chat-completions API on loopback: asked with
/// functions, it calls `order_status` for a message naming an order id and `stock` for one
/// naming a product; asked to phrase, it answers the draft with a prefix. It keeps every
/// request it received, with its `Authorization` header.
mod fake_llm {
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use serde_json::{Value, json};

    pub(crate) type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

    fn call(name: &str, arguments: Value) -> Value {
        json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}}]}}]})
    }

    fn say(text: &str) -> Value {
        json!({"choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": text}}]})
    }

    async fn complete(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        seen.lock().unwrap().push((auth, body.clone()));
        let user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        if body.get("tools").is_none() {
            // Phrasing: the draft answer, marked as ours.
            let draft = user
                .lines()
                .find_map(|l| l.strip_prefix("Draft answer: "))
                .unwrap_or_default();
            return Json(say(&format!("(fake model) {draft}")));
        }
        let id = user
            .split(|c: char| c.is_whitespace() || c == '?' || c == ',')
            .find(|t| uuid::Uuid::parse_str(t).is_ok());
        Json(match id {
            Some(id) => call("order_status", json!({"order_id": id})),
            None if user.contains("mice") => call("stock", json!({"product": "wireless mouse"})),
            None => say("I have no function for that."),
        })
    }

    /// Serves until the test ends; its base URL and what it received.
    pub(crate) async fn start() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_language_model_it_picks_the_tool_and_the_same_functions_answer() {
    let (url, seen) = fake_llm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_custom(dir.path(), |s| {
        let mut config = saga_ai::assistant::llm::LlmConfig::new(&url, "fake-model-1");
        config.api_key = Some("sk-test-not-logged".to_owned());
        s.llm = Some(config);
    })
    .await;
    let products = app.products().await;
    let (code, o) = app
        .place(&order_body(&products["Laptop Pro 14"], 1, "94102"), None)
        .await;
    assert_eq!(code, 201, "{o}");
    let id = o["id"].as_str().unwrap().to_owned();
    let status = app.wait(&id).await["order"]["status"].clone();

    // A question the model routes: it calls `order_status`, the order service answers.
    let r = ask(&app, "l", &format!("hey, anything new on {id}?")).await;
    assert_eq!(r["via"], "llm", "{r}");
    assert_eq!(intent(&r), "order_status", "{r}");
    assert_eq!(r["data"]["kind"], "order", "{r}");
    assert_eq!(r["data"]["value"]["id"], id.as_str(), "{r}");
    assert_eq!(r["data"]["value"]["status"], status, "{r}");
    let text = r["text"].as_str().unwrap();
    assert!(
        text.starts_with("(fake model) "),
        "phrased by the model: {text}"
    );
    assert!(text.contains(status.as_str().unwrap()), "{text}");
    assert!(r["error"].is_null(), "{r}");

    // Its arguments are checked like a typed message: "wireless mouse" is the catalog's.
    let r = ask(&app, "l", "how are we doing on mice").await;
    assert_eq!(intent(&r), "stock", "{r}");
    assert_eq!(
        r["data"]["value"]["product"]["name"], "Wireless Mouse",
        "{r}"
    );

    // What the model received: the functions, the model's name, the key as a bearer token.
    let requests = seen.lock().unwrap().clone();
    assert!(requests.len() >= 3, "{requests:?}");
    let (auth, first) = &requests[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-not-logged"));
    assert_eq!(first["model"], "fake-model-1");
    let functions: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    for f in [
        "order_status",
        "stock",
        "forecast",
        "anomalies",
        "replay_dead_letter",
    ] {
        assert!(functions.contains(&f), "{functions:?}");
    }
    // "yes" never goes to the model.
    let before = seen.lock().unwrap().len();
    let r = ask(&app, "l", "yes").await;
    assert_eq!(intent(&r), "confirm", "{r}");
    assert_eq!(seen.lock().unwrap().len(), before);
    app.stop().await;
}
