//! The HTTP routes the dashboard stands on, against the running embedded system:
//!
//! 1. `GET /orders/{id}/events` streams an order's saga log as server-sent events: the lines
//!    so far, each line appended later, then `end` once the saga has ended (or the stream's
//!    time is up), directly and through the web front's `/api` proxy;
//! 2. `/dead-letters` lists, replays and discards dead letters as `reference-app dlq` does;
//! 3. `/metrics/timeseries` adds up to the orders placed and their outcomes.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use reference_app::topology::Service;
use saga_core::Envelope;
use serde_json::{Value, json};
use support::{App, order_body};

/// One server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    name: String,
    data: Value,
}

/// An open event stream.
struct EventStream {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buffer: String,
}

impl EventStream {
    async fn open(app: &App, service: Service, path: &str) -> (reqwest::header::HeaderMap, Self) {
        let url = format!("{}{path}", app.system.url(service));
        let response = app
            .client
            .get(&url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(response.status(), 200, "{url}");
        let headers = response.headers().clone();
        (
            headers,
            Self {
                body: Box::pin(response.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
                buffer: String::new(),
            },
        )
    }

    /// The next event, or `None` once the server has closed the stream. Comments
    /// (keep-alives) are skipped.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event {name}: data is not JSON ({e}): {data}"));
                return Some(Sse { name, data });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.body.next())
                .await
                .expect("the stream sends something (an event or a keep-alive) within a minute")?;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk.expect("the stream reads")));
        }
    }

    /// Every event until the server closes the stream.
    async fn all(mut self) -> Vec<Sse> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}

fn ids(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.name == "log")
        .map(|e| e.data["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The stream's `log` events then one `end`, no line twice, and every line of the saga log
/// as it stands (delivery lines aside, which come after the saga's end) among them.
async fn check_stream(app: &App, id: &str, events: &[Sse]) -> Value {
    let (end, lines) = events.split_last().expect("at least the end");
    assert_eq!(end.name, "end", "{events:?}");
    assert!(lines.iter().all(|e| e.name == "log"), "{events:?}");
    let streamed = ids(events);
    let unique: HashSet<&String> = streamed.iter().collect();
    assert_eq!(
        unique.len(),
        streamed.len(),
        "a line sent twice: {streamed:?}"
    );
    assert!(
        lines.iter().any(|l| l.data["event_type"] == "order.placed"),
        "{events:?}"
    );
    for line in lines {
        assert_eq!(line.data["order_id"], id);
    }
    let log = app
        .get(Service::Order, &format!("/orders/{id}/saga-logs"))
        .await;
    for line in log.as_array().unwrap() {
        if line["step"] != "delivery" {
            assert!(
                unique.contains(&line["id"].as_str().unwrap().to_owned()),
                "{line} is in the log but was not streamed"
            );
        }
    }
    end.data.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_deliver_the_saga_until_it_ends_directly_and_through_the_web_front() {
    let app = App::start(0.0).await;
    let products = app.products().await;
    let cases = [
        (
            order_body(&products["Laptop Pro 14"], 1, "94102"),
            "completed",
            "confirmed",
        ),
        // The carrier cannot deliver: paid, then refunded and released.
        (
            order_body(&products["Wireless Mouse"], 1, "00000"),
            "compensated",
            "cancelled",
        ),
        (
            order_body(&products["Limited Edition Vinyl"], 6, "94102"),
            "",
            "failed",
        ),
    ];
    for (body, saga_status, order_status) in cases {
        let (status, order) = app.place(&body, None).await;
        assert_eq!(status, 201, "{order}");
        let id = order["id"].as_str().unwrap().to_owned();
        // Opened at once: the saga is (most likely) still running.
        let (headers, stream) =
            EventStream::open(&app, Service::Order, &format!("/orders/{id}/events")).await;
        assert_eq!(headers["content-type"], "text/event-stream");
        let events = stream.all().await;
        let end = check_stream(&app, &id, &events).await;
        assert_eq!(end["terminal"], true, "{end}");
        assert_eq!(end["order"]["id"], id.as_str());
        assert_eq!(end["order"]["status"], order_status, "{end}");
        if !saga_status.is_empty() {
            assert_eq!(end["saga_status"], saga_status, "{end}");
        }
        let kinds: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.data["status"].as_str().filter(|_| e.name == "log"))
            .collect();
        match order_status {
            "cancelled" => assert!(
                kinds.contains("compensating") && kinds.contains("compensated"),
                "a compensated saga streams its compensations: {kinds:?}"
            ),
            "confirmed" => assert!(!kinds.contains("compensating"), "{kinds:?}"),
            _ => assert!(kinds.contains("failed"), "{kinds:?}"),
        }

        // The same through the web front, passed on as a stream.
        let (headers, stream) =
            EventStream::open(&app, Service::Web, &format!("/api/orders/{id}/events")).await;
        assert_eq!(headers["content-type"], "text/event-stream");
        let proxied = stream.all().await;
        let again = check_stream(&app, &id, &proxied).await;
        assert_eq!(again["terminal"], true);
        // The saga had ended: the same lines in the same order.
        let direct_after: Vec<String> = app
            .get(Service::Order, &format!("/orders/{id}/saga-logs"))
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["step"] != "delivery")
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect();
        let proxied_ids: Vec<String> = ids(&proxied)
            .into_iter()
            .filter(|i| direct_after.contains(i))
            .collect();
        assert_eq!(proxied_ids, direct_after);
    }

    // Errors are problem documents, not streams.
    for (path, expect) in [
        (format!("/orders/{}/events", uuid::Uuid::now_v7()), 404),
        ("/orders/not-a-uuid/events".to_owned(), 400),
    ] {
        assert_problem(&app, reqwest::Method::GET, Service::Order, &path, expect).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_a_running_saga_delivers_appended_lines_and_ends_when_its_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    // The gateway takes an hour and no step times out: the saga waits at the payment.
    let hour = Duration::from_secs(3600);
    let app = App::start_with(dir.path(), 0.0, hour, hour).await;
    let products = app.products().await;
    let (status, order) = app
        .place(&order_body(&products["Laptop Pro 14"], 1, "94102"), None)
        .await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();

    // Through the web front: its proxy must pass each event on as it comes, as the stream
    // does not end.
    let (_, mut stream) =
        EventStream::open(&app, Service::Web, &format!("/api/orders/{id}/events")).await;
    let mut seen = Vec::new();
    while !seen.contains(&"payment.requested".to_owned()) {
        let e = stream.next().await.expect("the stream stays open");
        assert_eq!(e.name, "log", "{e:?}");
        seen.push(e.data["event_type"].as_str().unwrap().to_owned());
    }
    assert!(seen.contains(&"order.placed".to_owned()), "{seen:?}");
    // A line appended now (a carrier's event, as the shipping service would publish it)
    // reaches the open stream.
    let dispatched = Envelope::new(
        "shipping.dispatched",
        id.clone(),
        json!({"order_id": id, "tracking_number": "SIM-TEST"}),
    );
    app.system
        .broker()
        .unwrap()
        .publisher
        .publish(std::slice::from_ref(&dispatched))
        .await
        .unwrap();
    let e = stream.next().await.expect("the stream stays open");
    assert_eq!(e.name, "log");
    assert_eq!(e.data["id"], dispatched.event_id.to_string());
    assert_eq!(e.data["status"], "dispatched");
    drop(stream);

    // A stream whose time is up sends the lines and an end that says the saga runs on.
    let (_, stream) = EventStream::open(
        &app,
        Service::Order,
        &format!("/orders/{id}/events?timeout_ms=0"),
    )
    .await;
    let events = stream.all().await;
    let end = check_stream(&app, &id, &events).await;
    assert_eq!(end["terminal"], false, "{end}");
    assert_eq!(end["saga_status"], "running");
    assert_eq!(end["order"]["status"], "payment_processing");
    // Not stopped: the payment handler would be waited for, an hour. The runtime ends
    // with the test.
    drop(app);
}

async fn pending_ids(app: &App, n: usize) -> Vec<String> {
    let list = app
        .eventually(Service::Order, "/dead-letters", |v| {
            v.as_array().is_some_and(|a| a.len() >= n)
        })
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `method` on `path` answers a problem document of status `expect`.
async fn assert_problem(
    app: &App,
    method: reqwest::Method,
    service: Service,
    path: &str,
    expect: u16,
) {
    let (status, media, body) = app.call(method, service, path).await;
    assert_eq!(
        (status, media.as_str()),
        (expect, "application/problem+json"),
        "{path}: {body}"
    );
}

async fn post(app: &App, service: Service, path: &str) -> (u16, String, Value) {
    app.call(reqwest::Method::POST, service, path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_replay_and_discard_dead_letters_over_http() {
    let app = App::start(0.0).await;
    let poison = app.publish_poison(&["o-poison"]).await.remove(0);
    let listed = pending_ids(&app, 1).await;
    assert_eq!(listed.len(), 1);
    let first = listed[0].clone();
    let letter = app
        .get(Service::Order, &format!("/dead-letters/{first}"))
        .await;
    assert_eq!(letter["event_id"], poison.event_id.to_string());
    assert_eq!(letter["event_type"], "fraud.check.requested");
    assert_eq!(letter["subscription"], "ai");
    assert_eq!(letter["aggregate_id"], "o-poison");
    assert_eq!(letter["status"], "pending");
    assert_eq!(letter["payload"], json!({"nope": 1}));
    assert!(letter["attempts"].as_u64().unwrap() >= 1);
    assert!(!letter["reason"].as_str().unwrap().is_empty());
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("order payload"),
        "{letter}"
    );
    // The web front passes the list on.
    let through_web = app.get(Service::Web, "/api/dead-letters").await;
    assert_eq!(through_web[0]["id"], first.as_str());

    // Replayed through the web front: delivered again, dead-lettered again; the first is
    // no longer pending and cannot be replayed twice.
    let (status, _, replayed) = post(
        &app,
        Service::Web,
        &format!("/api/dead-letters/{first}/replay"),
    )
    .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["status"], "replayed");
    let (status, media, problem) = post(
        &app,
        Service::Order,
        &format!("/dead-letters/{first}/replay"),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(media, "application/problem+json");
    let second = app
        .eventually(Service::Order, "/dead-letters", |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["id"] != first.as_str())
        })
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, _, discarded) = post(
        &app,
        Service::Order,
        &format!("/dead-letters/{second}/discard"),
    )
    .await;
    assert_eq!(status, 200, "{discarded}");
    assert_eq!(discarded["status"], "discarded");
    let (status, _, _) = post(
        &app,
        Service::Order,
        &format!("/dead-letters/{second}/discard"),
    )
    .await;
    assert_eq!(status, 409);
    let pending = app.get(Service::Order, "/dead-letters").await;
    assert_eq!(pending, json!([]), "nothing pending");
    let all = app.get(Service::Order, "/dead-letters?status=all").await;
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["replayed", "discarded"], "oldest first");
    let only = app
        .get(Service::Order, "/dead-letters?status=discarded&limit=5")
        .await;
    assert_eq!(only.as_array().unwrap().len(), 1);

    // Unknown and malformed ids, and bad queries.
    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/dead-letters/{unknown}/replay"),
        format!("/dead-letters/{unknown}/discard"),
    ] {
        assert_problem(&app, reqwest::Method::POST, Service::Order, &path, 404).await;
    }
    let (status, _, _) = post(&app, Service::Order, "/dead-letters/nope/replay").await;
    assert_eq!(status, 400);
    for (path, expect) in [
        (format!("/dead-letters/{unknown}"), 404),
        ("/dead-letters?status=lost".to_owned(), 400),
    ] {
        assert_problem(&app, reqwest::Method::GET, Service::Order, &path, expect).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_series_adds_up_to_the_orders_placed_and_their_outcomes() {
    let app = App::start(0.0).await;
    let products = app.products().await;
    let bodies = [
        order_body(&products["Laptop Pro 14"], 1, "94102"),
        order_body(&products["Wireless Mouse"], 2, "94102"),
        order_body(&products["Wireless Mouse"], 1, "00000"),
        order_body(&products["Limited Edition Vinyl"], 6, "94102"),
    ];
    let mut ends = Vec::new();
    for body in &bodies {
        let (status, order) = app.place(body, None).await;
        assert_eq!(status, 201, "{order}");
        let done = app.wait(order["id"].as_str().unwrap()).await;
        ends.push(done["order"]["status"].as_str().unwrap().to_owned());
    }
    let confirmed = ends.iter().filter(|s| *s == "confirmed").count() as i64;
    let ended_badly = ends.len() as i64 - confirmed;
    assert_eq!(ended_badly, 2, "{ends:?}");

    let sum = |series: &Value, field: &str| -> i64 {
        series["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[field].as_i64().unwrap())
            .sum()
    };
    // Analytics hears of the events a moment later.
    let series = app
        .eventually(Service::Analytics, "/metrics/timeseries?minutes=30", |s| {
            sum(s, "orders_placed") == bodies.len() as i64
                && sum(s, "sagas_completed") + sum(s, "orders_failed") == ends.len() as i64
        })
        .await;
    assert_eq!(series["minutes"], 30);
    assert_eq!(series["buckets"].as_array().unwrap().len(), 30);
    assert_eq!(sum(&series, "sagas_completed"), confirmed);
    assert_eq!(sum(&series, "orders_failed"), ended_badly);
    // Paid: the good ones and the one whose shipping then failed.
    assert_eq!(sum(&series, "orders_confirmed"), confirmed + 1);
    let metrics = app.get(Service::Analytics, "/metrics").await;
    let revenue: f64 = series["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["revenue"].as_f64().unwrap())
        .sum();
    assert!(
        (revenue - metrics["total_revenue"].as_f64().unwrap()).abs() < 0.005,
        "{revenue} vs {metrics}"
    );
    let ended: Vec<&Value> = series["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| {
            b["sagas_completed"].as_i64().unwrap() + b["orders_failed"].as_i64().unwrap() > 0
        })
        .collect();
    assert!(!ended.is_empty());
    for b in ended {
        assert!(b["p95_saga_ms"].as_i64().is_some_and(|ms| ms >= 0), "{b}");
        assert!(b["success_rate"].as_f64().is_some(), "{b}");
    }
    // Minutes are 1 to 1440.
    for bad in ["0", "1441", "soon"] {
        let path = format!("/metrics/timeseries?minutes={bad}");
        let (status, _, _) = app
            .call(reqwest::Method::GET, Service::Analytics, &path)
            .await;
        assert_eq!(status, 400, "minutes={bad}");
    }
    app.stop().await;
}
