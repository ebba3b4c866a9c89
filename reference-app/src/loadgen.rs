//! The load generator: places orders through the order service's HTTP API and measures how
//! fast sagas finish.
//!
//! [`run`] reads the product list once from the inventory service, then places
//! [`LoadgenArgs::orders`] orders with [`LoadgenArgs::concurrency`] of them in flight at once.
//! Each order is `POST /orders` with a fresh `Idempotency-Key`, then `GET
//! /orders/{id}/wait?timeout_ms=N` long-polls until the order's saga is terminal or the order's
//! time ([`LoadgenArgs::timeout_secs`]) is up.
//!
//! A client of a real shop survives a server that crashes or restarts: a `POST` that fails on
//! the way (no connection, a timeout, a broken connection, a 5xx answer) is sent again with
//! the *same* `Idempotency-Key` until the order's time is up, so an order the server committed
//! before its answer was lost comes back as the same order instead of a second one. With
//! several order URLs (replicas), order `i` goes to URL `i mod n` first and every retry, of the
//! `POST` or of the long-poll, goes to the next URL. The orders are generated from the seed alone:
//! order `i` of a seed has the same customer, items, address and payment method whatever the
//! concurrency; only the idempotency keys are new on every run, so that running the same seed
//! twice against one system places new orders rather than replaying the first run's answers.
//!
//! Nothing in here panics on what a server answers: every failed request is counted in
//! [`Summary::errors`] under `<operation>:<kind>`, the kind being the HTTP status code or
//! `timeout`, `connect`, `decode` or `request`, retried or not.
//!
//! [`run_observed`] is [`run`] for harnesses: it shows the counts while the run goes on
//! ([`LiveCounts`]) and returns the ids of the accepted orders with the summary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::api::Money;
use crate::api::order::{Address, OrderResponse, OrderStatus, PAYMENT_METHODS, PaymentMethod};
use crate::cli::LoadgenArgs;

/// Products with less stock than this are left out of the generated orders (the demo catalog
/// keeps one scarce product for the insufficient-inventory scenario).
pub const MIN_AVAILABLE: i64 = 1000;
/// How many customers the orders are spread over, so that customers order more than once.
pub const CUSTOMERS: usize = 500;
/// The longest single long-poll, in milliseconds.
pub const WAIT_CAP_MS: u64 = 10_000;
/// How long a long-poll request may take beyond the `timeout_ms` it asked for.
const WAIT_GRACE: Duration = Duration::from_secs(2);
/// Pause before the first retry of a failed request; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest pause between retries of a failed request.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// The longest one `POST /orders` may take before it is abandoned and sent again.
const POST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to open a TCP connection before the attempt counts as `connect`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a load run could not start. Failures of single orders are not errors: they are counted
/// in the [`Summary`].
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The arguments cannot describe a run.
    #[error("invalid loadgen arguments: {0}")]
    InvalidArgs(String),
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The product list could not be fetched or read.
    #[error("could not read the product list from {url}: {source}")]
    Products {
        /// The URL asked.
        url: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
    /// The inventory service answered the product list with an error status.
    #[error("the product list at {url} answered {status}: {body}")]
    ProductsStatus {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// No product has enough stock to be ordered many times.
    #[error(
        "none of the {listed} products has at least {MIN_AVAILABLE} units available; \
         the load generator only orders well-stocked products (is the catalog seeded?)"
    )]
    NoUsableProducts {
        /// How many products the inventory service listed.
        listed: usize,
    },
}

/// What a load run measured; the binary prints it as pretty JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Orders attempted.
    pub orders: u64,
    /// Orders in flight at once.
    pub concurrency: usize,
    /// The seed the orders were generated from.
    pub seed: u64,
    /// How many well-stocked products the orders were drawn from.
    pub products: usize,
    /// Wall time from the first `POST` to the last order's end, in seconds.
    pub elapsed_secs: f64,
    /// Orders the order service accepted (201 or 200).
    pub accepted: u64,
    /// `accepted / elapsed_secs`.
    pub accepted_per_sec: f64,
    /// Accepted orders whose saga reached a terminal status in time.
    pub terminal: u64,
    /// `terminal / elapsed_secs`.
    pub terminal_per_sec: f64,
    /// Terminal orders whose saga completed (the order is confirmed).
    pub completed_sagas: u64,
    /// `completed_sagas / elapsed_secs`.
    pub completed_sagas_per_sec: f64,
    /// From just before the `POST` to the terminal answer, over the terminal orders; `null`
    /// when no order became terminal.
    pub latency_ms: Option<LatencyMs>,
    /// Terminal orders by order status (`confirmed`, `cancelled`, `failed`, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// Failed requests by `<operation>:<kind>`: operation `post` or `wait`, kind the HTTP
    /// status code or `timeout`, `connect`, `decode`, `request`. Both are retried until the
    /// order's time is up (a `post` with the same `Idempotency-Key`), except on a 4xx answer
    /// (other than 408 and 429); an order whose `post` never succeeded is not accepted.
    pub errors: BTreeMap<String, u64>,
    /// Accepted orders with no terminal answer: the order's time ran out, or the long-poll
    /// answered a client error (4xx) that asking again would not change.
    pub not_terminal: u64,
}

/// Latency percentiles in milliseconds (nearest-rank, exact).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

/// The counts of a run while it goes on (for a harness that acts at some point of the run).
#[derive(Debug, Default)]
pub struct LiveCounts {
    accepted: AtomicU64,
    ended: AtomicU64,
}

impl LiveCounts {
    /// Orders accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Orders that ended so far: terminal, not accepted, or out of time.
    pub fn ended(&self) -> u64 {
        self.ended.load(Ordering::Relaxed)
    }
}

/// What [`run_observed`] returns: the summary and which orders were accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The summary [`run`] returns.
    pub summary: Summary,
    /// The ids of the accepted orders (as many as [`Summary::accepted`]), in the order they
    /// ended.
    pub accepted_orders: Vec<Uuid>,
}

/// Places the orders `args` describes and reports what happened.
///
/// Must run inside a Tokio runtime (the orders are spawned as tasks; a multi-threaded runtime
/// lets them use every core). Fails only when the run cannot start: bad arguments, or no
/// well-stocked product to order.
pub async fn run(args: &LoadgenArgs) -> Result<Summary, LoadgenError> {
    Ok(run_observed(args, Arc::new(LiveCounts::default()))
        .await?
        .summary)
}

/// [`run`], counting into `live` as it goes and returning the accepted orders' ids too.
pub async fn run_observed(
    args: &LoadgenArgs,
    live: Arc<LiveCounts>,
) -> Result<Outcome, LoadgenError> {
    if args.concurrency == 0 {
        return Err(LoadgenError::InvalidArgs(
            "concurrency must be at least 1".into(),
        ));
    }
    if args.timeout_secs == 0 {
        return Err(LoadgenError::InvalidArgs(
            "timeout-secs must be at least 1".into(),
        ));
    }
    let order_urls: Vec<String> = args
        .order_url
        .iter()
        .map(|u| base(u.trim()).to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if order_urls.is_empty() {
        return Err(LoadgenError::InvalidArgs(
            "at least one order URL is needed".into(),
        ));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .pool_idle_timeout(crate::http::CLIENT_IDLE_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .map_err(LoadgenError::Client)?;
    let products = fetch_products(&client, base(&args.inventory_url)).await?;
    let plan = Arc::new(Plan::new(args.seed, products));
    let ctx = Arc::new(OrderCtx {
        client,
        order_urls,
        timeout: Duration::from_secs(args.timeout_secs),
        live: Arc::clone(&live),
    });

    let start = Instant::now();
    let progress = Progress::new(args, start);
    let mut tally = Tally::default();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        while next < args.orders && tasks.len() < args.concurrency {
            let (plan, ctx) = (Arc::clone(&plan), Arc::clone(&ctx));
            tasks.spawn(async move { ctx.place(next, plan.order(next)).await });
            next += 1;
        }
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(joined) => {
                    match joined {
                        Ok(report) => tally.add(report),
                        Err(e) => tally.count_error(if e.is_panic() { "task:panic" } else { "task:cancelled" }),
                    }
                    live.ended.fetch_add(1, Ordering::Relaxed);
                }
            },
            _ = tick.tick() => {}
        }
        progress.show(&tally, live.accepted());
    }
    progress.finish();
    let accepted_orders = std::mem::take(&mut tally.accepted_orders);
    Ok(Outcome {
        summary: tally.summary(args, plan.products.len(), start.elapsed()),
        accepted_orders,
    })
}

/// A base URL without its trailing slashes.
fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// A product as the inventory service lists it (only the fields the generator uses).
#[derive(Debug, Clone, Deserialize)]
struct Product {
    id: String,
    price: Money,
    available_quantity: i64,
}

/// `GET {inventory}/products`, keeping the well-stocked products, sorted by id so that the
/// generated orders do not depend on the order of the list.
async fn fetch_products(
    client: &reqwest::Client,
    inventory_url: &str,
) -> Result<Vec<Product>, LoadgenError> {
    let url = format!("{inventory_url}/products");
    let failed = |source| LoadgenError::Products {
        url: url.clone(),
        source,
    };
    let res = client
        .get(&url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(failed)?;
    let status = res.status();
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        return Err(LoadgenError::ProductsStatus {
            url,
            status: status.as_u16(),
            body: body.chars().take(500).collect(),
        });
    }
    let listed: Vec<Product> = res.json().await.map_err(failed)?;
    let listed_len = listed.len();
    let mut usable: Vec<Product> = listed
        .into_iter()
        .filter(|p| p.available_quantity >= MIN_AVAILABLE)
        .collect();
    if usable.is_empty() {
        return Err(LoadgenError::NoUsableProducts { listed: listed_len });
    }
    usable.sort_by(|a, b| a.id.cmp(&b.id));
    usable.dedup_by(|a, b| a.id == b.id);
    Ok(usable)
}

/// What the orders of a seed are drawn from.
struct Plan {
    seed: u64,
    products: Vec<Product>,
    customers: Vec<Customer>,
}

/// A customer of the pool: an id and the address they ship to.
struct Customer {
    id: Uuid,
    address: Address,
}

/// The body of `POST /orders`.
#[derive(Debug, Clone, Serialize)]
struct OrderBody {
    customer_id: Uuid,
    items: Vec<ItemBody>,
    shipping_address: Address,
    payment_method: PaymentMethod,
}

/// One line of [`OrderBody`].
#[derive(Debug, Clone, Serialize)]
struct ItemBody {
    product_id: String,
    quantity: i64,
    price: Money,
}

const STREETS: [&str; 12] = [
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Lake",
    "Hill",
    "Park",
    "Washington",
    "Market",
    "Mission",
];
const STREET_KINDS: [&str; 4] = ["St", "Ave", "Blvd", "Rd"];
const CITIES: [(&str, &str, u32); 10] = [
    ("San Francisco", "CA", 94102),
    ("Los Angeles", "CA", 90012),
    ("Seattle", "WA", 98101),
    ("Portland", "OR", 97201),
    ("Austin", "TX", 78701),
    ("Denver", "CO", 80202),
    ("Chicago", "IL", 60601),
    ("Boston", "MA", 2108),
    ("New York", "NY", 10001),
    ("Miami", "FL", 33101),
];

/// SplitMix64's finaliser: spreads a seed and an index over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random (version 4) UUID drawn from `rng`.
fn uuid_from(rng: &mut fastrand::Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes()).into_uuid()
}

fn address_from(rng: &mut fastrand::Rng) -> Address {
    let (city, state, zip) = CITIES[rng.usize(..CITIES.len())];
    Address {
        street: format!(
            "{} {} {}",
            rng.u32(1..10_000),
            STREETS[rng.usize(..STREETS.len())],
            STREET_KINDS[rng.usize(..STREET_KINDS.len())]
        ),
        city: city.to_owned(),
        state: state.to_owned(),
        zip: format!("{:05}", zip + rng.u32(0..20)),
    }
}

impl Plan {
    /// The customer pool of `seed` over the well-stocked `products` (not empty).
    fn new(seed: u64, products: Vec<Product>) -> Self {
        let mut rng = fastrand::Rng::with_seed(mix(seed));
        let customers = (0..CUSTOMERS)
            .map(|_| Customer {
                id: uuid_from(&mut rng),
                address: address_from(&mut rng),
            })
            .collect();
        Self {
            seed,
            products,
            customers,
        }
    }

    /// Order `index` of the seed: a customer of the pool with their address, 1 to 3 distinct
    /// products at their listed price, 1 to 3 units each, and a payment method.
    fn order(&self, index: u64) -> OrderBody {
        let mut rng = fastrand::Rng::with_seed(mix(mix(self.seed) ^ index));
        let customer = &self.customers[rng.usize(..self.customers.len())];
        let lines = rng.usize(1..=3).min(self.products.len());
        // A partial Fisher-Yates shuffle of the product indices: `lines` distinct products.
        let mut picks: Vec<usize> = (0..self.products.len()).collect();
        for i in 0..lines {
            let j = rng.usize(i..picks.len());
            picks.swap(i, j);
        }
        let items = picks[..lines]
            .iter()
            .map(|&p| ItemBody {
                product_id: self.products[p].id.clone(),
                quantity: rng.i64(1..=3),
                price: self.products[p].price,
            })
            .collect();
        OrderBody {
            customer_id: customer.id,
            items,
            shipping_address: customer.address.clone(),
            payment_method: PaymentMethod {
                kind: PAYMENT_METHODS[rng.usize(..PAYMENT_METHODS.len())].to_owned(),
            },
        }
    }
}

/// The saga status the long-poll reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SagaStatus {
    Running,
    Compensating,
    Completed,
    Compensated,
    Failed,
}

/// The answer of `GET /orders/{id}/wait`.
#[derive(Debug, Deserialize)]
struct WaitAnswer {
    terminal: bool,
    saga_status: SagaStatus,
    order: OrderResponse,
}

/// How one order ended, seen from the client.
#[derive(Debug)]
enum End {
    /// The `POST` failed; the order was not accepted.
    Rejected,
    /// The saga is terminal.
    Terminal {
        status: OrderStatus,
        saga_status: SagaStatus,
        latency: Duration,
    },
    /// Accepted, but no terminal answer came.
    NotTerminal,
}

/// One order's end and the errors on its way.
#[derive(Debug)]
struct Report {
    /// The order's id, once accepted.
    order: Option<Uuid>,
    end: End,
    errors: Vec<String>,
}

/// What every order task shares.
struct OrderCtx {
    client: reqwest::Client,
    /// The order service's replicas (at least one).
    order_urls: Vec<String>,
    timeout: Duration,
    /// The counts so far (for the progress bar and the caller).
    live: Arc<LiveCounts>,
}

/// Why one `POST /orders` failed.
enum PostFailure {
    /// Sending it again may work: no connection, a timeout, a 5xx, 408 or 429, an answer cut
    /// short.
    Retry(String),
    /// The server refused the order (another 4xx); asking again would not change that.
    Refused(String),
}

/// The error kind of a failed request.
fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_decode() {
        "decode"
    } else {
        "request"
    }
}

impl OrderCtx {
    /// The order URL of attempt `n` (counting over all URLs from the order's first).
    fn url(&self, n: usize) -> &str {
        &self.order_urls[n % self.order_urls.len()]
    }

    /// Places order `index` and follows it to a terminal status or its deadline.
    async fn place(&self, index: u64, body: OrderBody) -> Report {
        let mut errors = Vec::new();
        let start = Instant::now();
        let deadline = start + self.timeout;
        // Order `index` starts on replica `index mod n`; each retry moves to the next one.
        let mut attempt = usize::try_from(index % self.order_urls.len() as u64).unwrap_or(0);
        let Some(order) = self.post(&body, &mut attempt, deadline, &mut errors).await else {
            return Report {
                order: None,
                end: End::Rejected,
                errors,
            };
        };
        self.live.accepted.fetch_add(1, Ordering::Relaxed);
        let end = self
            .wait(order.id, attempt, start, deadline, &mut errors)
            .await;
        Report {
            order: Some(order.id),
            end,
            errors,
        }
    }

    /// `POST /orders` with one `Idempotency-Key`, sent again after each failure that may pass
    /// (each counted in `errors`) until `deadline`; the accepted order, or `None`. `attempt`
    /// ends on the URL that accepted it.
    async fn post(
        &self,
        body: &OrderBody,
        attempt: &mut usize,
        deadline: Instant,
        errors: &mut Vec<String>,
    ) -> Option<OrderResponse> {
        let key = Uuid::now_v7().to_string();
        let mut pause = RETRY_FIRST;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            let timeout = remaining.min(POST_ATTEMPT_TIMEOUT);
            match self
                .post_once(self.url(*attempt), &key, body, timeout)
                .await
            {
                Ok(order) => return Some(order),
                Err(PostFailure::Refused(kind)) => {
                    errors.push(format!("post:{kind}"));
                    return None;
                }
                Err(PostFailure::Retry(kind)) => errors.push(format!("post:{kind}")),
            }
            *attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause.min(remaining)).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// One `POST {url}/orders`.
    async fn post_once(
        &self,
        url: &str,
        key: &str,
        body: &OrderBody,
        timeout: Duration,
    ) -> Result<OrderResponse, PostFailure> {
        let res = self
            .client
            .post(format!("{url}/orders"))
            .header("Idempotency-Key", key)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| PostFailure::Retry(kind(&e).to_owned()))?;
        let status = res.status();
        if status.as_u16() != 200 && status.as_u16() != 201 {
            // Read the body so that the connection goes back to the pool.
            let _ = res.bytes().await;
            let code = status.as_u16().to_string();
            let passing = status.is_server_error()
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
            return Err(if passing {
                PostFailure::Retry(code)
            } else {
                PostFailure::Refused(code)
            });
        }
        // An answer cut short: the order may be placed; the same key will tell.
        res.json()
            .await
            .map_err(|e| PostFailure::Retry(kind(&e).to_owned()))
    }

    /// Long-polls `GET /orders/{id}/wait` until the saga is terminal or `deadline` passes,
    /// starting on the URL of attempt `attempt`. Server errors and transport failures are
    /// retried on the next URL with a growing pause; a 4xx ends it.
    async fn wait(
        &self,
        id: Uuid,
        mut attempt: usize,
        start: Instant,
        deadline: Instant,
        errors: &mut Vec<String>,
    ) -> End {
        let mut pause = RETRY_FIRST;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout_ms = u64::try_from(remaining.as_millis())
                .unwrap_or(u64::MAX)
                .min(WAIT_CAP_MS);
            if timeout_ms == 0 {
                return End::NotTerminal;
            }
            let url = format!(
                "{}/orders/{id}/wait?timeout_ms={timeout_ms}",
                self.url(attempt)
            );
            let asked = Instant::now();
            let sent = self
                .client
                .get(url)
                .timeout(Duration::from_millis(timeout_ms) + WAIT_GRACE)
                .send()
                .await;
            let failure = match sent {
                Ok(res) if res.status().as_u16() == 200 => match res.json::<WaitAnswer>().await {
                    Ok(answer) if answer.terminal => {
                        return End::Terminal {
                            status: answer.order.status,
                            saga_status: answer.saga_status,
                            latency: start.elapsed(),
                        };
                    }
                    Ok(_) => {
                        pause = RETRY_FIRST;
                        // Not terminal before `timeout_ms`: a server that does not hold the
                        // request is polled, not hammered.
                        let held = asked.elapsed();
                        if held < Duration::from_millis(timeout_ms) {
                            let remaining = deadline.saturating_duration_since(Instant::now());
                            tokio::time::sleep(RETRY_FIRST.min(remaining)).await;
                        }
                        continue;
                    }
                    Err(e) => kind(&e).to_owned(),
                },
                Ok(res) => {
                    let status = res.status();
                    let _ = res.bytes().await;
                    if status.is_client_error() {
                        errors.push(format!("wait:{}", status.as_u16()));
                        return End::NotTerminal;
                    }
                    status.as_u16().to_string()
                }
                Err(e) => kind(&e).to_owned(),
            };
            errors.push(format!("wait:{failure}"));
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause.min(remaining)).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }
}

/// The counts so far.
#[derive(Debug, Default)]
struct Tally {
    ended: u64,
    terminal: u64,
    completed: u64,
    not_terminal: u64,
    latencies_us: Vec<u64>,
    outcomes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    accepted_orders: Vec<Uuid>,
}

/// The name of an order status as the API spells it.
fn status_name(status: OrderStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status:?}"))
}

impl Tally {
    fn count_error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
    }

    fn add(&mut self, report: Report) {
        self.ended += 1;
        for e in &report.errors {
            self.count_error(e);
        }
        self.accepted_orders.extend(report.order);
        match report.end {
            End::Rejected => {}
            End::NotTerminal => self.not_terminal += 1,
            End::Terminal {
                status,
                saga_status,
                latency,
            } => {
                self.terminal += 1;
                if saga_status == SagaStatus::Completed {
                    self.completed += 1;
                }
                *self.outcomes.entry(status_name(status)).or_default() += 1;
                self.latencies_us
                    .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            }
        }
    }

    fn summary(mut self, args: &LoadgenArgs, products: usize, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64();
        let rate = |n: u64| {
            if secs > 0.0 {
                round3(n as f64 / secs)
            } else {
                0.0
            }
        };
        let accepted = self.terminal + self.not_terminal;
        Summary {
            orders: args.orders,
            concurrency: args.concurrency,
            seed: args.seed,
            products,
            elapsed_secs: round3(secs),
            accepted,
            accepted_per_sec: rate(accepted),
            terminal: self.terminal,
            terminal_per_sec: rate(self.terminal),
            completed_sagas: self.completed,
            completed_sagas_per_sec: rate(self.completed),
            latency_ms: percentiles(&mut self.latencies_us).map(|p| LatencyMs {
                p50: micros_to_ms(p.p50),
                p95: micros_to_ms(p.p95),
                p99: micros_to_ms(p.p99),
                max: micros_to_ms(p.max),
            }),
            outcomes: self.outcomes,
            errors: self.errors,
            not_terminal: self.not_terminal,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn micros_to_ms(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

/// Percentiles of a set of samples, in the samples' unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Percentiles {
    p50: u64,
    p95: u64,
    p99: u64,
    max: u64,
}

/// The nearest-rank percentiles of `samples` (sorted in place); `None` when there are none.
fn percentiles(samples: &mut [u64]) -> Option<Percentiles> {
    samples.sort_unstable();
    let max = *samples.last()?;
    Some(Percentiles {
        p50: nearest_rank(samples, 50),
        p95: nearest_rank(samples, 95),
        p99: nearest_rank(samples, 99),
        max,
    })
}

/// The `pct`th percentile of non-empty sorted `sorted`: the smallest sample with at least
/// `pct`% of the samples at or below it (rank `ceil(pct * n / 100)`).
fn nearest_rank(sorted: &[u64], pct: usize) -> u64 {
    let rank = (pct * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

const PROGRESS_TEMPLATE: &str = "{elapsed_precise} [{bar:40}] {pos}/{len} terminal  {msg}";

/// The progress bar: position is the orders that ended, the message the rates.
struct Progress {
    bar: ProgressBar,
    start: Instant,
}

impl Progress {
    fn new(args: &LoadgenArgs, start: Instant) -> Self {
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(args.orders)
        };
        if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar, start }
    }

    fn show(&self, tally: &Tally, accepted: u64) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_position(tally.terminal);
        self.bar.set_message(format!(
            "accepted {:.1}/s  completed {:.1}/s  errors {}  not terminal {}",
            accepted as f64 / secs,
            tally.completed as f64 / secs,
            tally.errors.values().sum::<u64>(),
            tally.not_terminal
        ));
    }

    fn finish(&self) {
        self.bar.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_hundred() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        let p = percentiles(&mut samples).unwrap();
        assert_eq!(
            p,
            Percentiles {
                p50: 50,
                p95: 95,
                p99: 99,
                max: 100
            }
        );
        assert_eq!(
            percentiles(&mut [7]).unwrap(),
            Percentiles {
                p50: 7,
                p95: 7,
                p99: 7,
                max: 7
            }
        );
        let mut ten: Vec<u64> = (1..=10).collect();
        let p = percentiles(&mut ten).unwrap();
        assert_eq!((p.p50, p.p95, p.p99), (5, 10, 10));
        assert_eq!(percentiles(&mut []), None);
    }

    #[test]
    fn the_progress_template_parses() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
    }

    #[test]
    fn orders_are_a_function_of_seed_and_index() {
        let products = || {
            (0..5)
                .map(|i| Product {
                    id: format!("p-{i}"),
                    price: Money::from_cents(100 * (i + 1)),
                    available_quantity: 5000,
                })
                .collect::<Vec<_>>()
        };
        let a = Plan::new(3, products());
        let b = Plan::new(3, products());
        let c = Plan::new(4, products());
        let json = |p: &Plan, i| serde_json::to_string(&p.order(i)).unwrap();
        assert_eq!(json(&a, 17), json(&b, 17));
        assert_ne!(json(&a, 17), json(&a, 18));
        assert_ne!(json(&a, 17), json(&c, 17));
        for i in 0..200 {
            let o = a.order(i);
            assert!((1..=3).contains(&o.items.len()));
            let mut ids: Vec<_> = o.items.iter().map(|i| &i.product_id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), o.items.len(), "items are distinct");
            for item in &o.items {
                assert!((1..=3).contains(&item.quantity));
                let n: i64 = item.product_id[2..].parse().unwrap();
                assert_eq!(item.price.cents(), 100 * (n + 1));
            }
        }
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered_and_within_the_samples(
            mut samples in proptest::collection::vec(any::<u64>(), 1..500)
        ) {
            let min = *samples.iter().min().unwrap();
            let max = *samples.iter().max().unwrap();
            let p = percentiles(&mut samples).unwrap();
            prop_assert!(min <= p.p50);
            prop_assert!(p.p50 <= p.p95);
            prop_assert!(p.p95 <= p.p99);
            prop_assert!(p.p99 <= p.max);
            prop_assert_eq!(p.max, max);
            for v in [p.p50, p.p95, p.p99] {
                prop_assert!(samples.contains(&v));
            }
        }
    }
}
