//! `POST /chat` on the embedded system: the assistant answers from the live orders, stock and
//! dead letters, and replays a dead letter only after "yes".

mod support;

use reference_app::topology::Service;
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
