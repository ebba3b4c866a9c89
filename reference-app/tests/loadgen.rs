//! The load generator against a fake order and inventory service written here.
//!
//! The fake implements the three routes the load generator drives, with the real request
//! and response types, over an in-memory map: orders become terminal a short sleep after they
//! are placed, every fifth accepted order is cancelled, one product is scarce. It can also
//! answer 500 to some posts (before or after placing the order, as a server that crashes
//! before or after its commit), 503 to some long-polls, or never finish some orders. It keeps
//! its own counts, which the load generator's summary must agree with.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reference_app::api::order::{CreateOrderRequest, OrderResponse, OrderStatus};
use reference_app::api::{ApiJson, Problem};
use reference_app::cli::LoadgenArgs;
use reference_app::loadgen::{self, LoadgenError, Summary};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

const SCARCE: &str = "p-scarce";

/// How the fake behaves.
#[derive(Clone)]
struct Config {
    /// `(id, price, available)` of each product.
    products: Vec<(&'static str, f64, i64)>,
    /// How long after placing an order its saga is terminal.
    terminal_after: Duration,
    /// Every n-th accepted order is cancelled (the saga compensated).
    cancel_every: u64,
    /// Every n-th post (by arrival) answers 500 and places nothing.
    fail_post_every: Option<u64>,
    /// Every n-th new order is placed, but its post answers 500 (the answer is lost).
    lose_reply_every: Option<u64>,
    /// The first long-poll of every order answers 503.
    fail_first_wait: bool,
    /// Every n-th accepted order never becomes terminal.
    stuck_every: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            products: vec![
                ("p-1", 25.0, 5000),
                ("p-2", 9.99, 1000),
                ("p-3", 120.5, 20000),
                (SCARCE, 499.0, 5),
            ],
            terminal_after: Duration::from_millis(20),
            cancel_every: 5,
            fail_post_every: None,
            lose_reply_every: None,
            fail_first_wait: false,
            stuck_every: None,
        }
    }
}

struct Placed {
    order: OrderResponse,
    /// `None`: never terminal.
    ready_at: Option<Instant>,
    final_status: OrderStatus,
    saga_status: &'static str,
    waits: u64,
}

#[derive(Default)]
struct Books {
    posts: u64,
    accepted: u64,
    /// Idempotency key -> (body, order id).
    keys: HashMap<String, (Value, Uuid)>,
    replays: u64,
    orders: HashMap<Uuid, Placed>,
    /// Every accepted body, as JSON text.
    bodies: Vec<String>,
    /// Units ordered per product.
    units: BTreeMap<String, i64>,
    /// Requests refused as invalid (bad key, bad body, unknown product, wrong price).
    invalid: Vec<String>,
    /// The largest `timeout_ms` a long-poll asked for.
    max_timeout_ms: u64,
}

struct Fake {
    config: Config,
    books: Mutex<Books>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Fake);

impl<'a> InFlight<'a> {
    fn new(fake: &'a Fake) -> Self {
        let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        fake.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(fake)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn invalid(books: &mut Books, problem: Problem) -> Response {
    books.invalid.push(problem.detail.clone());
    problem.into_response()
}

async fn products(State(fake): State<Arc<Fake>>) -> Response {
    let list: Vec<Value> = fake
        .config
        .products
        .iter()
        .map(|(id, price, available)| {
            json!({
                "id": id,
                "name": format!("Product {id}"),
                "description": "a product of the fake catalog",
                "price": price,
                "available_quantity": available,
                "reserved_quantity": 0,
            })
        })
        .collect();
    axum::Json(list).into_response()
}

async fn create_order(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Response {
    let _guard = InFlight::new(&fake);
    let mut books = fake.books.lock().unwrap();
    books.posts += 1;
    let posts = books.posts;
    if fake.config.fail_post_every.is_some_and(|n| posts % n == 0) {
        return Problem::internal().into_response();
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| Uuid::parse_str(k).is_ok())
        .map(str::to_owned)
    else {
        return invalid(
            &mut books,
            Problem::malformed("Idempotency-Key: not a UUID"),
        );
    };
    if let Some((first_body, id)) = books.keys.get(&key).cloned() {
        if first_body != body {
            return invalid(
                &mut books,
                Problem::conflict("key reused with another body"),
            );
        }
        books.replays += 1;
        let order = books.orders[&id].order.clone();
        return (StatusCode::OK, axum::Json(order)).into_response();
    }
    let valid = match serde_json::from_value::<CreateOrderRequest>(body.clone())
        .map_err(|e| Problem::malformed(e.to_string()))
        .and_then(CreateOrderRequest::validate)
    {
        Ok(valid) => valid,
        Err(problem) => return invalid(&mut books, problem),
    };
    for item in &valid.items {
        let listed = fake
            .config
            .products
            .iter()
            .find(|(id, _, _)| *id == item.product_id);
        match listed {
            Some((_, price, _)) if (price * 100.0).round() as i64 == item.price.cents() => {}
            _ => {
                let detail = format!("{} at {}", item.product_id, item.price);
                return invalid(&mut books, Problem::conflict(detail));
            }
        }
    }
    books.accepted += 1;
    let n = books.accepted;
    let stuck = fake.config.stuck_every.is_some_and(|k| n % k == 0);
    let (final_status, saga_status) = if n % fake.config.cancel_every == 0 {
        (OrderStatus::Cancelled, "compensated")
    } else {
        (OrderStatus::Confirmed, "completed")
    };
    let order = OrderResponse {
        id: Uuid::now_v7(),
        customer_id: valid.customer_id,
        status: OrderStatus::Pending,
        total_amount: valid.total_amount,
        items: valid.items.clone(),
        shipping_address: valid.shipping_address.clone(),
        correlation_id: Uuid::now_v7(),
        created_at: chrono::Utc::now(),
    };
    for item in &valid.items {
        *books.units.entry(item.product_id.clone()).or_default() += item.quantity;
    }
    books.bodies.push(body.to_string());
    books.keys.insert(key, (body, order.id));
    let lost = fake.config.lose_reply_every.is_some_and(|k| n % k == 0);
    books.orders.insert(
        order.id,
        Placed {
            order: order.clone(),
            ready_at: (!stuck).then(|| Instant::now() + fake.config.terminal_after),
            final_status,
            saga_status,
            waits: 0,
        },
    );
    if lost {
        return Problem::internal().into_response();
    }
    (StatusCode::CREATED, axum::Json(order)).into_response()
}

#[derive(Deserialize)]
struct WaitQuery {
    timeout_ms: u64,
}

async fn wait_order(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<Uuid>,
    Query(q): Query<WaitQuery>,
) -> Response {
    let _guard = InFlight::new(&fake);
    let asked = Instant::now();
    let ready_at = {
        let mut books = fake.books.lock().unwrap();
        books.max_timeout_ms = books.max_timeout_ms.max(q.timeout_ms);
        let Some(placed) = books.orders.get_mut(&id) else {
            return Problem::not_found("order", id).into_response();
        };
        placed.waits += 1;
        if fake.config.fail_first_wait && placed.waits == 1 {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Unavailable",
                "try again",
            )
            .into_response();
        }
        placed.ready_at
    };
    let give_up = asked + Duration::from_millis(q.timeout_ms);
    let until = ready_at.map_or(give_up, |r| r.min(give_up));
    tokio::time::sleep_until(until.into()).await;
    let books = fake.books.lock().unwrap();
    let placed = &books.orders[&id];
    let terminal = placed.ready_at.is_some_and(|r| Instant::now() >= r);
    let mut order = placed.order.clone();
    let saga_status = if terminal {
        order.status = placed.final_status;
        placed.saga_status
    } else {
        "running"
    };
    axum::Json(json!({"terminal": terminal, "saga_status": saga_status, "order": order}))
        .into_response()
}

/// Starts the fake on a free loopback port; its base URL and its state.
async fn start(config: Config) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        config,
        books: Mutex::new(Books::default()),
        in_flight: AtomicU64::new(0),
        max_in_flight: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/products", get(products))
        .route("/orders", post(create_order))
        .route("/orders/{id}/wait", get(wait_order))
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

fn args(url: &str, orders: u64, concurrency: usize, seed: u64) -> LoadgenArgs {
    LoadgenArgs {
        orders,
        concurrency,
        order_url: vec![url.to_owned()],
        inventory_url: format!("{url}/"),
        seed,
        timeout_secs: 30,
        quiet: true,
    }
}

fn count(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

fn final_counts(fake: &Fake) -> (u64, u64) {
    let books = fake.books.lock().unwrap();
    let with = |s| {
        books
            .orders
            .values()
            .filter(|p| p.ready_at.is_some() && p.final_status == s)
            .count() as u64
    };
    (with(OrderStatus::Confirmed), with(OrderStatus::Cancelled))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_is_accepted_and_followed_to_its_end() {
    let (url, fake) = start(Config::default()).await;
    let s: Summary = loadgen::run(&args(&url, 300, 16, 7)).await.unwrap();

    let (confirmed, cancelled) = final_counts(&fake);
    assert_eq!((confirmed, cancelled), (240, 60), "the fake's own books");
    assert_eq!(s.orders, 300);
    assert_eq!(s.products, 3, "the scarce product is left out");
    assert_eq!(s.accepted, 300);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.not_terminal, 0);
    assert_eq!(s.terminal, 300);
    assert_eq!(s.outcomes.values().sum::<u64>(), s.terminal);
    assert_eq!(count(&s.outcomes, "confirmed"), confirmed);
    assert_eq!(count(&s.outcomes, "cancelled"), cancelled);
    assert_eq!(s.completed_sagas, confirmed);
    assert!(s.elapsed_secs > 0.0);
    let rate = s.accepted as f64 / s.elapsed_secs;
    assert!((s.accepted_per_sec - rate).abs() < 0.01 * rate + 0.01);

    let latency = s.latency_ms.expect("terminal orders have a latency");
    assert!(
        latency.p50 >= 20.0,
        "POST to terminal spans the saga: {latency:?}"
    );
    assert!(latency.p50 <= latency.p95 && latency.p95 <= latency.p99);
    assert!(latency.p99 <= latency.max);

    let books = fake.books.lock().unwrap();
    assert!(books.invalid.is_empty(), "{:?}", books.invalid);
    assert_eq!(books.replays, 0, "every order has its own key");
    assert_eq!(books.keys.len(), 300);
    assert!(!books.units.contains_key(SCARCE));
    assert_eq!(
        books.units.keys().map(String::as_str).collect::<Vec<_>>(),
        ["p-1", "p-2", "p-3"]
    );
    assert!(books.max_timeout_ms <= loadgen::WAIT_CAP_MS);
    let customers: BTreeSet<_> = books.orders.values().map(|p| p.order.customer_id).collect();
    assert!(customers.len() < 300, "customers come back");
    assert!(customers.len() > 100, "from a pool of hundreds");
    let methods: BTreeSet<String> = books
        .bodies
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap()["payment_method"]["type"].to_string())
        .collect();
    assert_eq!(methods.len(), 5, "{methods:?}");
    let in_flight = fake.max_in_flight.load(Ordering::SeqCst);
    assert!(in_flight <= 16, "at most `concurrency` requests at once");
    assert!(in_flight > 1, "orders run concurrently");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_posts_are_counted_and_sent_again_until_accepted() {
    let config = Config {
        fail_post_every: Some(4),
        ..Config::default()
    };
    let (url, fake) = start(config).await;
    let s = loadgen::run(&args(&url, 100, 8, 1)).await.unwrap();

    let books = fake.books.lock().unwrap();
    // Every fourth post failed, retries included; each failure is counted once.
    assert_eq!(books.posts / 4, books.posts - 100);
    assert!(
        books.posts > 125,
        "the retries were posts too: {}",
        books.posts
    );
    assert_eq!(
        s.errors,
        BTreeMap::from([("post:500".to_owned(), books.posts - 100)])
    );
    assert_eq!(s.accepted, 100);
    assert_eq!(s.terminal, 100);
    assert_eq!(s.outcomes.values().sum::<u64>(), 100);
    assert_eq!(books.accepted, 100);
    drop(books);
    assert_eq!(s.completed_sagas, final_counts(&fake).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_answer_was_lost_is_sent_again_with_the_same_key() {
    let config = Config {
        lose_reply_every: Some(3),
        ..Config::default()
    };
    let (url, fake) = start(config).await;
    let o = loadgen::run_observed(
        &args(&url, 60, 6, 5),
        Arc::new(loadgen::LiveCounts::default()),
    )
    .await
    .unwrap();
    let s = &o.summary;

    let books = fake.books.lock().unwrap();
    // Placed once each: the second post of an order whose answer was lost found its key.
    assert_eq!(books.accepted, 60, "no order placed twice");
    assert_eq!(books.keys.len(), 60);
    assert_eq!(
        books.replays, 20,
        "every lost answer was asked again with its key"
    );
    assert_eq!(s.errors, BTreeMap::from([("post:500".to_owned(), 20)]));
    assert_eq!(s.accepted, 60);
    assert_eq!(s.terminal, 60);
    let mut ids = o.accepted_orders.clone();
    ids.sort();
    let mut placed: Vec<Uuid> = books.orders.keys().copied().collect();
    placed.sort();
    assert_eq!(ids, placed, "the accepted ids are the fake's orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_spread_over_replicas_and_fail_over_from_a_dead_one() {
    let (url, fake) = start(Config::default()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut a = args(&url, 40, 4, 9);
    a.order_url = vec![closed, format!("{url}/")];
    let live = Arc::new(loadgen::LiveCounts::default());
    let o = loadgen::run_observed(&a, Arc::clone(&live)).await.unwrap();
    let s = &o.summary;

    // The even orders went to the dead replica first, then to the live one; the long-polls
    // went where the order was accepted.
    assert_eq!(s.errors, BTreeMap::from([("post:connect".to_owned(), 20)]));
    assert_eq!(s.accepted, 40);
    assert_eq!(s.terminal, 40);
    assert_eq!(fake.books.lock().unwrap().accepted, 40);
    assert_eq!(o.accepted_orders.len(), 40);
    assert_eq!((live.accepted(), live.ended()), (40, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_long_polls_are_counted_and_retried() {
    let config = Config {
        fail_first_wait: true,
        ..Config::default()
    };
    let (url, fake) = start(config).await;
    let s = loadgen::run(&args(&url, 40, 4, 2)).await.unwrap();

    assert_eq!(s.errors, BTreeMap::from([("wait:503".to_owned(), 40)]));
    assert_eq!(s.accepted, 40);
    assert_eq!(s.terminal, 40);
    assert_eq!(s.completed_sagas, final_counts(&fake).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_that_never_end_are_not_terminal_after_the_timeout() {
    let config = Config {
        stuck_every: Some(10),
        ..Config::default()
    };
    let (url, fake) = start(config).await;
    let mut a = args(&url, 40, 8, 3);
    a.timeout_secs = 1;
    let s = loadgen::run(&a).await.unwrap();

    assert_eq!(s.accepted, 40);
    assert_eq!(s.not_terminal, 4);
    assert_eq!(s.terminal, 36);
    assert_eq!(s.outcomes.values().sum::<u64>(), 36);
    assert_eq!(s.completed_sagas, final_counts(&fake).0);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(s.elapsed_secs >= 1.0);
    assert!(fake.books.lock().unwrap().max_timeout_ms <= 1000);
}

async fn bodies(seed: u64, concurrency: usize) -> Vec<String> {
    let (url, fake) = start(Config::default()).await;
    loadgen::run(&args(&url, 50, concurrency, seed))
        .await
        .unwrap();
    let mut bodies = fake.books.lock().unwrap().bodies.clone();
    bodies.sort();
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_alone_decides_the_orders() {
    let one_by_one = bodies(11, 1).await;
    assert_eq!(one_by_one.len(), 50);
    assert_eq!(one_by_one, bodies(11, 8).await);
    assert_ne!(one_by_one, bodies(12, 8).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_without_stock_is_a_clear_error() {
    let config = Config {
        products: vec![("p-1", 1.0, 999), (SCARCE, 2.0, 5)],
        ..Config::default()
    };
    let (url, fake) = start(config).await;
    let err = loadgen::run(&args(&url, 10, 2, 1)).await.unwrap_err();
    assert!(
        matches!(err, LoadgenError::NoUsableProducts { listed: 2 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("at least 1000 units"));
    assert_eq!(fake.books.lock().unwrap().posts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_order_service_is_counted_not_fatal() {
    let (inventory, _fake) = start(Config::default()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut a = args(&inventory, 8, 4, 1);
    a.order_url = vec![closed];
    a.timeout_secs = 1;
    let s = loadgen::run(&a).await.unwrap();

    // Each order was tried until its second was up, every attempt counted.
    assert_eq!(s.accepted, 0);
    assert_eq!(s.errors.keys().collect::<Vec<_>>(), ["post:connect"]);
    assert!(count(&s.errors, "post:connect") > 8, "{:?}", s.errors);
    assert_eq!(s.latency_ms, None);
    assert!(s.outcomes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_concurrency_is_refused() {
    let a = args("http://127.0.0.1:9", 10, 0, 1);
    assert!(matches!(
        loadgen::run(&a).await,
        Err(LoadgenError::InvalidArgs(_))
    ));
}
