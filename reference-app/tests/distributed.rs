//! The distributed mode: every service its own `reference-app serve` process on Postgres (a
//! schema each) and RabbitMQ or NATS, two replicas of the order and payment services, the web
//! front in front; the seed's scenarios against it, an order's event stream read from the
//! replica that did not take the order, and a dead letter replayed and discarded through the
//! order replicas' operator routes.
//!
//! Needs `DATABASE_URL` and `AMQP_URL` / `NATS_URL`; without them each test prints `SKIP` and
//! passes (with `CI=true` it fails). Each run uses its own schema and broker prefix and removes
//! them afterwards.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reference_app::topology::Service;
use serde_json::Value;
use support::{model_dir, order_body, stock_of};

fn env_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {var} not set but CI=true");
            }
            eprintln!("SKIP {test}: {var} not set");
            None
        }
    }
}

/// A `reference-app serve` process, killed when dropped.
struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Stack {
    procs: Vec<(Service, Proc)>,
    database_url: String,
    broker_url: String,
    redis_url: Option<String>,
    prefix: String,
}

impl Stack {
    fn url(&self, svc: Service) -> String {
        self.procs
            .iter()
            .find(|(s, _)| *s == svc)
            .map(|(_, p)| p.url.clone())
            .unwrap_or_default()
    }

    fn urls(&self, svc: Service) -> Vec<String> {
        self.procs
            .iter()
            .filter(|(s, _)| *s == svc)
            .map(|(_, p)| p.url.clone())
            .collect()
    }

    fn spawn(&self, svc: Service, extra: &[String]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reference-app"));
        cmd.args(["serve", svc.name(), "--port", "0"])
            .args(["--database-url", &self.database_url])
            .args(["--broker-url", &self.broker_url])
            .args(["--schema-prefix", &format!("{}_", self.prefix)])
            .args(["--broker-prefix", &self.prefix])
            .arg("--broker-ephemeral")
            .args(["--payment-failure-rate", "0.5", "--payment-latency-ms", "1"])
            .args(["--delivery-step-ms", "200", "--db-max-connections", "4"])
            .arg("--model-dir")
            .arg(model_dir())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn reference-app");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(at) = line.find("http://") {
                url = Some(
                    line[at..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                );
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let url = url.unwrap_or_else(|| panic!("{svc} did not start"));
        Proc { child, url }
    }

    fn cleanup(&self) {
        let schemas: Vec<String> = Service::ALL
            .into_iter()
            .filter(|s| s.has_database())
            .map(|s| s.schema(&format!("{}_", self.prefix)))
            .collect();
        let url = self.database_url.clone();
        let broker = self.broker_url.clone();
        let redis_url = self.redis_url.clone();
        let prefix = self.prefix.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                    for schema in schemas {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS {schema} CASCADE"
                        )))
                        .execute(&pool)
                        .await;
                    }
                }
                if let Some(redis_url) = redis_url
                    && let Ok(client) = redis::Client::open(redis_url.as_str())
                    && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                {
                    let keys = [
                        format!("{prefix}:analytics:events"),
                        format!("{prefix}:analytics:orders"),
                    ];
                    let _: Result<(), _> = redis::AsyncCommands::del(&mut conn, &keys[..]).await;
                }
                if broker.starts_with("nats://") {
                    let dlq =
                        std::sync::Arc::new(saga_core::memory::MemoryDeadLetterStore::default());
                    let stream = format!("{}_EVENTS", prefix.to_uppercase());
                    let config = saga_brokers::nats::NatsConfig::new(&broker)
                        .with_stream(stream, format!("{prefix}.events"));
                    if let Ok(b) = saga_brokers::nats::NatsBroker::connect(config, dlq).await {
                        let _ = b.delete_stream().await;
                    }
                }
            });
        })
        .join()
        .ok();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Stop the processes first, then remove what they created.
        self.procs.clear();
        self.cleanup();
    }
}

fn start_stack(database_url: String, broker_url: String, redis_url: Option<String>) -> Stack {
    let prefix = format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let mut stack = Stack {
        procs: Vec::new(),
        database_url,
        broker_url,
        redis_url,
        prefix,
    };
    for svc in [
        Service::Inventory,
        Service::Order,
        Service::Order,
        Service::Payment,
        Service::Payment,
        Service::Shipping,
        Service::Notification,
        Service::Analytics,
        Service::Ai,
    ] {
        let extra = match (&stack.redis_url, svc) {
            (Some(url), Service::Analytics) => vec!["--redis-url".to_owned(), url.clone()],
            _ => Vec::new(),
        };
        let p = stack.spawn(svc, &extra);
        stack.procs.push((svc, p));
    }
    let upstreams = vec![
        "--order-url".to_owned(),
        stack.url(Service::Order),
        "--inventory-url".into(),
        stack.url(Service::Inventory),
        "--payment-url".into(),
        stack.url(Service::Payment),
        "--shipping-url".into(),
        stack.url(Service::Shipping),
        "--notification-url".into(),
        stack.url(Service::Notification),
        "--analytics-url".into(),
        stack.url(Service::Analytics),
        "--ai-url".into(),
        stack.url(Service::Ai),
    ];
    let web = stack.spawn(Service::Web, &upstreams);
    stack.procs.push((Service::Web, web));
    stack
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    let r = client.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap()
}

async fn eventually(client: &reqwest::Client, url: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
            && let Ok(v) = r.json::<Value>().await
            && ok(&v)
        {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {url} never satisfied the condition"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs an order through the given order replica, retrying while the catalog is not known
/// yet.
async fn place(client: &reqwest::Client, order_url: &str, body: &Value, key: &str) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .post(format!("{order_url}/orders"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if status == 422
            && v.to_string().contains("unknown product")
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return (status, v);
    }
}

async fn scenarios(stack: &Stack) {
    let client = reqwest::Client::new();
    let inventory = stack.url(Service::Inventory);
    let products = eventually(&client, &format!("{inventory}/products"), |v| {
        v.as_array().is_some_and(|a| a.len() >= 9)
    })
    .await;
    let find = |name: &str| -> Value {
        products
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    let laptop = find("Laptop Pro 14");
    let vinyl = find("Limited Edition Vinyl");
    let orders = stack.urls(Service::Order);
    let web = stack.url(Service::Web);

    // Eight orders through both order replicas; the gateway declines about half.
    let mut ids = Vec::new();
    for i in 0..8 {
        let (status, order) = place(
            &client,
            &orders[i % 2],
            &order_body(&laptop, 1, "94102"),
            &format!("d-{i}"),
        )
        .await;
        assert_eq!(status, 201, "{order}");
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    let (mut confirmed, mut cancelled) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        let done: Value = client
            .get(format!(
                "{}/orders/{id}/wait?timeout_ms=30000",
                orders[(i + 1) % 2]
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(done["terminal"], true, "{done}");
        let tx = get(
            &client,
            &format!("{}/transactions/{id}", stack.url(Service::Payment)),
        )
        .await;
        let reservation = get(&client, &format!("{inventory}/reservations/{id}")).await;
        match done["order"]["status"].as_str().unwrap() {
            "confirmed" => {
                confirmed += 1;
                assert_eq!(tx["status"], "processed");
                assert_eq!(reservation["status"], "committed");
            }
            "cancelled" => {
                cancelled += 1;
                assert_eq!(tx["status"], "failed");
                assert_eq!(reservation["status"], "released");
            }
            other => panic!("order {id} ended {other}: {done}"),
        }
    }
    assert!(
        confirmed > 0 && cancelled > 0,
        "confirmed {confirmed}, cancelled {cancelled}"
    );

    // The same key again, through the other replica: the same order.
    let (status, again) = place(&client, &orders[1], &order_body(&laptop, 1, "94102"), "d-0").await;
    assert_eq!(status, 201);
    assert_eq!(again["id"], ids[0]);

    // Stock is conserved: exactly the confirmed orders' units are gone.
    let laptop_now = eventually(
        &client,
        &format!("{inventory}/products/{}", laptop["id"].as_str().unwrap()),
        |p| p["reserved_quantity"] == 0,
    )
    .await;
    assert_eq!(stock_of(&laptop_now).0, stock_of(&laptop).0 - confirmed);

    // No stock, and bad input.
    let (_, order) = place(
        &client,
        &orders[0],
        &order_body(&vinyl, 6, "94102"),
        "d-vinyl",
    )
    .await;
    let id = order["id"].as_str().unwrap();
    let done: Value = client
        .get(format!("{}/orders/{id}/wait?timeout_ms=30000", orders[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["order"]["status"], "failed", "{done}");
    let (status, problem) = place(
        &client,
        &orders[0],
        &order_body(&laptop, 0, "94102"),
        "d-bad",
    )
    .await;
    assert_eq!(status, 422, "{problem}");

    // Analytics counted each order once; the web front sees every service and proxies.
    let metrics = eventually(
        &client,
        &format!("{}/metrics", stack.url(Service::Analytics)),
        |m| {
            m["total_orders"] == 9
                && m["confirmed_orders"] == confirmed
                && m["failed_orders"] == cancelled + 1
        },
    )
    .await;
    assert_eq!(metrics["confirmed_orders"], confirmed, "{metrics}");
    assert_eq!(metrics["failed_orders"], cancelled + 1, "{metrics}");
    let health = get(&client, &format!("{web}/api/health")).await;
    assert_eq!(health["status"], "healthy", "{health}");
    let via_web = get(&client, &format!("{web}/api/orders/{}", ids[0])).await;
    assert_eq!(via_web["id"], ids[0]);

    // Once quiet, every invariant holds across the services' schemas.
    let dbs = reference_app::check::Databases::connect_postgres(
        &stack.database_url,
        &format!("{}_", stack.prefix),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report = reference_app::check::check(&dbs).await.unwrap();
        if report.ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "invariants violated:\n{report}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    dbs.close().await;

    // With Redis, the figures above came from it; it holds what the database holds.
    if let Some(url) = &stack.redis_url {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let orders: std::collections::BTreeMap<String, i64> =
            redis::AsyncCommands::hgetall(&mut conn, format!("{}:analytics:orders", stack.prefix))
                .await
                .unwrap();
        assert_eq!(orders.get("orders"), Some(&9), "{orders:?}");
        assert_eq!(
            orders.get("confirmed").copied(),
            Some(confirmed),
            "{orders:?}"
        );
    }

    event_stream_across_replicas(stack, &client, &laptop).await;
    dead_letters_over_http(stack, &client).await;
}

/// An order placed on one order replica, its saga log streamed from the other: the lines the
/// first wrote reach the second's stream by its reading the log again.
async fn event_stream_across_replicas(stack: &Stack, client: &reqwest::Client, laptop: &Value) {
    let orders = stack.urls(Service::Order);
    let (status, order) = place(
        client,
        &orders[0],
        &order_body(laptop, 1, "94102"),
        "d-stream",
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap();
    let response = client
        .get(format!("{}/orders/{id}/events", orders[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // The stream closes once the saga has ended.
    let text = response.text().await.unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event:"))?.trim();
            let data = block.lines().find_map(|l| l.strip_prefix("data:"))?.trim();
            Some((name.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let (end, lines) = events.split_last().expect("events");
    assert_eq!(end.0, "end", "{text}");
    assert_eq!(end.1["terminal"], true, "{text}");
    let types: Vec<&str> = lines
        .iter()
        .map(|(_, l)| l["event_type"].as_str().unwrap())
        .collect();
    for expected in [
        "order.placed",
        "fraud.check.passed",
        "inventory.reserved",
        "payment.requested",
    ] {
        assert!(types.contains(&expected), "{expected}: {types:?}");
    }
}

/// A dead letter of the AI service's schema, listed and replayed through one order replica
/// and discarded through the other (each reaches every service's schema).
async fn dead_letters_over_http(stack: &Stack, client: &reqwest::Client) {
    let schema = Service::Ai.schema(&format!("{}_", stack.prefix));
    let db = reference_app::db::Db::connect_postgres(&stack.database_url, &schema, 2)
        .await
        .unwrap();
    let broker = reference_app::system::Broker::connect(
        &stack.broker_url,
        &stack.prefix,
        "dead-letter-test",
        true,
        db.dead_letters(),
    )
    .await
    .unwrap();
    // A screening request that is no order: the AI service dead-letters it at once.
    let poison = saga_core::Envelope::new(
        "fraud.check.requested",
        "o-poison",
        serde_json::json!({"nope": 1}),
    );
    broker
        .publisher
        .publish(std::slice::from_ref(&poison))
        .await
        .unwrap();
    let orders = stack.urls(Service::Order);
    let list = eventually(client, &format!("{}/dead-letters", orders[0]), |v| {
        v.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    assert_eq!(list[0]["event_id"], poison.event_id.to_string(), "{list}");
    assert_eq!(list[0]["subscription"], "ai");
    let first = list[0]["id"].as_str().unwrap().to_owned();
    let post = |url: String| async move {
        let r = client.post(url).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let (status, replayed) = post(format!("{}/dead-letters/{first}/replay", orders[0])).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["status"], "replayed");
    // Delivered again, it fails again: a new pending letter, discarded through the other
    // replica.
    let list = eventually(client, &format!("{}/dead-letters", orders[1]), |v| {
        v.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["id"] != first.as_str())
    })
    .await;
    let second = list[0]["id"].as_str().unwrap().to_owned();
    let (status, discarded) = post(format!("{}/dead-letters/{second}/discard", orders[1])).await;
    assert_eq!(status, 200, "{discarded}");
    assert_eq!(discarded["status"], "discarded");
    let (status, _) = post(format!("{}/dead-letters/{second}/discard", orders[0])).await;
    assert_eq!(status, 409);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_on_postgres_and_rabbitmq() {
    let (Some(db), Some(amqp)) = (
        env_url("DATABASE_URL", "distributed_on_postgres_and_rabbitmq"),
        env_url("AMQP_URL", "distributed_on_postgres_and_rabbitmq"),
    ) else {
        return;
    };
    let redis = env_url(
        "REDIS_URL",
        "distributed_on_postgres_and_rabbitmq (analytics on redis)",
    );
    let stack = start_stack(db, amqp, redis);
    scenarios(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_on_postgres_and_nats() {
    let (Some(db), Some(nats)) = (
        env_url("DATABASE_URL", "distributed_on_postgres_and_nats"),
        env_url("NATS_URL", "distributed_on_postgres_and_nats"),
    ) else {
        return;
    };
    let stack = start_stack(db, nats, None);
    scenarios(&stack).await;
}
