//! The crash-and-restart harness (issue 9): the load generator places orders while, at seeded
//! moments, a process is killed with SIGKILL and started again on the same port and the same
//! data; on the distributed stacks the broker connections are also dropped and the services'
//! Postgres backends terminated. Once the load has ended and the system is quiet, the
//! invariant checker must find nothing.
//!
//! | test | what is killed | connection faults |
//! |------|----------------|-------------------|
//! | `embedded` | the whole embedded app (every service, every outbox relay, the `sql` broker) | - |
//! | `postgres_rabbitmq` | one of the ten service processes (two order and two payment replicas) | `pg_terminate_backend`, `rabbitmqctl close_all_connections` |
//! | `postgres_nats` | the same | `pg_terminate_backend`, NATS connections cut |
//!
//! The outbox relays run inside the service processes, so killing a process kills its relay
//! wherever it is: between publishing a batch and marking it, holding a partition lease.
//!
//! Each round, at a seeded share of the orders accepted so far: on the distributed stacks one
//! connection fault (alternating), then `kill -9` of a seeded process, a seeded pause (up to
//! 2 s), the same command again, and the next round once it answers `/health`. The load
//! generator, in this process, retries a failed `POST /orders` with the same
//! `Idempotency-Key` and spreads orders over both order replicas, as a client of a real shop
//! would.
//!
//! How the connection faults reach only this test's connections (other suites share the
//! servers): the services' Postgres URL carries `application_name=<prefix>` and only backends
//! with that name are terminated; on RabbitMQ the stack runs in a vhost of its own, closed with
//! `rabbitmqctl close_all_connections --vhost` (a TCP proxy, as for NATS, where `rabbitmqctl`
//! cannot manage the server); NATS has no command that closes one client's connection, so the
//! services reach it through a TCP proxy in this process, and a fault closes every connection
//! through it (the clients reconnect through it).
//!
//! Parameters (environment): `CHAOS_ROUNDS` (3), `CHAOS_ORDERS` (500), `CHAOS_SEED` (fixed;
//! printed), `CHAOS_CONCURRENCY` (12), `CHAOS_QUIESCE_SECS` (180: how long the system may take
//! to become quiet after the load). `scripts/chaos.sh` runs the long version. A run also fails
//! when fewer than 95% of the orders were accepted or no saga completed (a run in which
//! everything failed proves nothing), when a process panicked or exited by itself, or when the
//! load ended before every round was played.
//!
//! The distributed tests need `DATABASE_URL` and `AMQP_URL` / `NATS_URL`; without them they
//! print `SKIP` and pass (with `CI=true` or `SAGA_SERVICES_STRICT=1` they fail).

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reference_app::check::{self, CheckOptions, Databases, Report};
use reference_app::cli::LoadgenArgs;
use reference_app::loadgen::{self, LiveCounts};
use reference_app::topology::Service;
use reference_app::with_db;
use serde_json::Value;
use support::{model_dir, order_body};
use tokio::task::AbortHandle;

/// The effect invariants: a charge, refund, shipment or notification that is not exactly one.
const EFFECT_INVARIANTS: [&str; 4] = [
    "single_charge",
    "refunds_match_outcome",
    "shipments_match_outcome",
    "one_notification_per_event",
];

/// How long a started process may take to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(90);

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v} is not a valid value")),
        _ => default,
    }
}

/// The parameters of a run.
#[derive(Debug, Clone, Copy)]
struct Params {
    rounds: usize,
    orders: u64,
    seed: u64,
    concurrency: usize,
    quiesce: Duration,
}

impl Params {
    fn from_env() -> Self {
        Self {
            rounds: env_or("CHAOS_ROUNDS", 3),
            orders: env_or("CHAOS_ORDERS", 500),
            seed: env_or("CHAOS_SEED", 20_261_125),
            concurrency: env_or("CHAOS_CONCURRENCY", 12),
            quiesce: Duration::from_secs(env_or("CHAOS_QUIESCE_SECS", 180)),
        }
    }
}

fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("SAGA_SERVICES_STRICT").is_ok_and(|v| v == "1")
}

fn env_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(!strict(), "{test}: {var} not set but CI/strict mode is on");
            eprintln!("SKIP {test}: {var} not set");
            None
        }
    }
}

/// A free loopback port (bound and released; the process started on it binds it again).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `n` consecutive free loopback ports (the embedded app takes its base port and the next
/// seven).
fn free_ports(n: u16) -> u16 {
    let mut rng = fastrand::Rng::new();
    for _ in 0..200 {
        let base = rng.u16(20_000..60_000);
        let held: Vec<TcpListener> = (0..n)
            .map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A process of the stack: its command line, where it logs, how to tell it is up.
struct Proc {
    name: String,
    args: Vec<String>,
    log: PathBuf,
    /// `/health` URLs that must answer before the process counts as up.
    health: Vec<String>,
    child: Option<Child>,
    /// Exits nobody asked for (the process crashed, panicked or gave up).
    unexpected_exits: Vec<String>,
}

impl Proc {
    fn new(name: &str, args: Vec<String>, logs: &Path, health: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            args,
            log: logs.join(format!("{name}.log")),
            health,
            child: None,
            unexpected_exits: Vec::new(),
        }
    }

    fn note(&self, line: &str) {
        if let Ok(mut f) = File::options().create(true).append(true).open(&self.log) {
            let _ = writeln!(f, "=== chaos: {line} ===");
        }
    }

    fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the log");
        let err = log.try_clone().expect("clone the log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_reference-app"))
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn reference-app");
        self.child = Some(child);
    }

    /// SIGKILL (std's `Child::kill` on Unix), and reap it.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it exited by itself; records how (once).
    fn exited(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.unexpected_exits
                    .push(format!("{}: {status}", self.name));
                self.note(&format!("exited by itself: {status}"));
                self.child = None;
                true
            }
            _ => false,
        }
    }

    /// Waits until every health URL answers 200.
    async fn wait_up(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + START_TIMEOUT;
        for url in self.health.clone() {
            loop {
                let ok = client
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                assert!(
                    !self.exited(),
                    "{} exited while starting; its log ends:\n{}",
                    self.name,
                    tail(&self.log, 40)
                );
                assert!(
                    Instant::now() < deadline,
                    "{} did not answer {url} within {START_TIMEOUT:?}; its log ends:\n{}",
                    self.name,
                    tail(&self.log, 40)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// How many times the log says a thread panicked.
    fn panics(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("panicked at")
            .count()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A TCP proxy: cutting it closes every connection through it, as a broker restart or a
/// network failure would; new connections go through again.
struct Proxy {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let list = Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = up.set_nodelay(true);
                        let _ = down.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
                list.retain(|h| !h.is_finished());
                list.push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            conns,
            accept,
        }
    }

    /// Closes every open connection; how many there were.
    fn cut(&self) -> usize {
        let mut list = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let open = list.iter().filter(|h| !h.is_finished()).count();
        for h in list.drain(..) {
            h.abort();
        }
        open
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// `host:port` of a URL such as `scheme://user:pass@host:port/path`.
fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    }
}

/// Runs `rabbitmqctl` (blocking; call it off the async threads).
fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let program = if Path::new("/usr/sbin/rabbitmqctl").exists() {
        "/usr/sbin/rabbitmqctl"
    } else {
        "rabbitmqctl"
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

async fn rabbitmqctl_async(args: Vec<String>) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rabbitmqctl(&args)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()))
}

/// How the broker connections of a stack are dropped.
enum BrokerCut {
    /// `rabbitmqctl close_all_connections --vhost <vhost>`.
    Vhost(String),
    /// Every connection through the proxy.
    Proxy(Proxy),
}

/// Where the stack keeps its data, for the checker and the clean-up.
enum Storage {
    Embedded(tempfile::TempDir),
    Postgres {
        /// Without `application_name`: the checker's and the clean-up's connections.
        admin_url: String,
        /// The `application_name` of the services' connections.
        app_name: String,
        prefix: String,
        /// The broker URL without the proxy (to delete the NATS stream).
        nats_url: Option<String>,
        /// The vhost to delete.
        vhost: Option<String>,
    },
}

/// A stack under test.
struct Stack {
    name: &'static str,
    procs: Vec<Proc>,
    storage: Storage,
    broker_cut: Option<BrokerCut>,
    order_urls: Vec<String>,
    inventory_url: String,
    logs: tempfile::TempDir,
}

/// The figures of one run.
#[derive(Debug, Default)]
struct Figures {
    rounds: usize,
    kills: BTreeMap<String, u32>,
    pg_backends_terminated: u64,
    broker_drops: u32,
    sent: u64,
    accepted: u64,
    terminal: u64,
    completed: u64,
    lost: u64,
    double_effects: u64,
    stuck: u64,
    panics: usize,
    unexpected_exits: Vec<String>,
    violations: u64,
    load_secs: f64,
    quiesce_secs: f64,
    post_errors: u64,
    /// Long-poll answers "terminal" whose order status was not a final one.
    inconsistent_answers: u64,
}

impl Stack {
    async fn start_all(&mut self, client: &reqwest::Client) {
        for p in &mut self.procs {
            p.start();
        }
        for p in &mut self.procs {
            p.wait_up(client).await;
        }
    }

    async fn databases(&self) -> Databases {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let dbs = match &self.storage {
                Storage::Embedded(dir) => Databases::open_embedded(dir.path()).await,
                Storage::Postgres {
                    admin_url, prefix, ..
                } => Databases::connect_postgres(admin_url, &format!("{prefix}_")).await,
            };
            match dbs {
                Ok(dbs) => return dbs,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("chaos: the checker cannot open the databases yet: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("the checker cannot open the databases: {e}"),
            }
        }
    }

    /// `pg_terminate_backend` on every backend of the services; how many.
    async fn terminate_backends(&self) -> u64 {
        let Storage::Postgres {
            admin_url,
            app_name,
            ..
        } = &self.storage
        else {
            return 0;
        };
        let Ok(pool) = sqlx::PgPool::connect(admin_url).await else {
            eprintln!("chaos: cannot connect to terminate backends");
            return 0;
        };
        let killed: Result<(i64,), _> = sqlx::query_as(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()) AS t",
        )
        .bind(app_name)
        .fetch_one(&pool)
        .await;
        pool.close().await;
        killed.map_or(0, |(n,)| u64::try_from(n).unwrap_or(0))
    }

    /// Drops the broker connections; how many were dropped, if that can be told.
    async fn drop_broker_connections(&self) -> String {
        match &self.broker_cut {
            None => "none".into(),
            Some(BrokerCut::Proxy(p)) => format!("{} connections cut", p.cut()),
            Some(BrokerCut::Vhost(vhost)) => {
                let args = [
                    "close_all_connections",
                    "--vhost",
                    vhost.as_str(),
                    "chaos harness",
                ];
                match rabbitmqctl_async(args.iter().map(|s| (*s).to_owned()).collect()).await {
                    Ok(_) => format!("rabbitmqctl closed vhost {vhost}'s connections"),
                    Err(e) => panic!("rabbitmqctl close_all_connections failed: {e}"),
                }
            }
        }
    }

    /// Restarts every process that exited by itself (recorded as a failure of the run).
    async fn revive(&mut self, client: &reqwest::Client) {
        for p in &mut self.procs {
            if p.exited() {
                eprintln!("chaos: {} exited by itself; restarting it", p.name);
                p.start();
                p.wait_up(client).await;
            }
        }
    }

    /// Places one order through each order URL, retrying while the order service does not
    /// know the catalog yet; waits until each is terminal.
    async fn probe(&self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let products: Value = loop {
            let listed = client
                .get(format!("{}/products", self.inventory_url))
                .send()
                .await;
            if let Ok(r) = listed
                && let Ok(v) = r.json::<Value>().await
                && v.as_array().is_some_and(|a| a.len() >= 9)
            {
                break v;
            }
            assert!(Instant::now() < deadline, "the catalog never appeared");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let product = products
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == "Wireless Mouse"))
            .cloned()
            .expect("the demo catalog");
        for (i, url) in self.order_urls.iter().enumerate() {
            let id = loop {
                let r = client
                    .post(format!("{url}/orders"))
                    .header("Idempotency-Key", format!("chaos-probe-{i}"))
                    .json(&order_body(&product, 1, "94102"))
                    .send()
                    .await;
                if let Ok(r) = r
                    && r.status().as_u16() == 201
                    && let Ok(v) = r.json::<Value>().await
                {
                    break v["id"].as_str().unwrap_or_default().to_owned();
                }
                assert!(
                    Instant::now() < deadline,
                    "the order service at {url} never took the probe order"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let done: Value = client
                .get(format!("{url}/orders/{id}/wait?timeout_ms=60000"))
                .send()
                .await
                .expect("wait for the probe")
                .json()
                .await
                .expect("the probe's answer");
            assert_eq!(
                done["terminal"], true,
                "the probe order did not end: {done}"
            );
        }
    }

    /// The accepted orders that are not in the order service's table.
    async fn missing_orders(dbs: &Databases, accepted: &[uuid::Uuid]) -> u64 {
        let db = dbs.db(Service::Order).expect("the order database");
        let sql = db.qualify("SELECT id FROM {t}orders");
        let ids: Vec<(String,)> = with_db!(db, store => {
            sqlx::query_as(sql.clone())
                .fetch_all(store.read_pool())
                .await
                .expect("read the order ids")
        });
        let stored: std::collections::HashSet<String> = ids.into_iter().map(|(id,)| id).collect();
        accepted
            .iter()
            .filter(|id| !stored.contains(&id.to_string()))
            .count() as u64
    }

    fn print_logs(&self) {
        for p in &self.procs {
            eprintln!(
                "---- {} ({}), last lines ----\n{}",
                p.name,
                p.log.display(),
                tail(&p.log, 30)
            );
        }
    }

    /// The run: load, rounds of faults meanwhile, quiescence, the checker.
    async fn run(&mut self, params: Params) -> (Figures, Report) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client");
        let started = Instant::now();
        self.start_all(&client).await;
        self.probe(&client).await;
        eprintln!(
            "chaos {}: stack up in {:.1} s; {} orders, {} rounds, seed {} (CHAOS_SEED={} \
             plays the same rounds: thresholds, targets, pauses), concurrency {}; logs in {}",
            self.name,
            started.elapsed().as_secs_f64(),
            params.orders,
            params.rounds,
            params.seed,
            params.seed,
            params.concurrency,
            self.logs.path().display()
        );

        // The stack's name is mixed in so that the stacks of one seed play different rounds.
        let salt = self.name.bytes().fold(0u64, |h, b| {
            h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b))
        });
        let mut rng = fastrand::Rng::with_seed(params.seed ^ salt);
        let mut thresholds: Vec<u64> = (0..params.rounds)
            .map(|_| (params.orders as f64 * (0.08 + 0.77 * rng.f64())) as u64)
            .collect();
        thresholds.sort_unstable();
        let pg_first = rng.bool();
        eprintln!(
            "chaos {}: rounds at {thresholds:?} accepted orders",
            self.name
        );

        let args = LoadgenArgs {
            orders: params.orders,
            concurrency: params.concurrency,
            order_url: self.order_urls.clone(),
            inventory_url: self.inventory_url.clone(),
            seed: params.seed,
            timeout_secs: 180,
            quiet: true,
        };
        let live = Arc::new(LiveCounts::default());
        let load_start = Instant::now();
        let load = tokio::spawn({
            let live = Arc::clone(&live);
            async move { loadgen::run_observed(&args, live).await }
        });

        let mut figures = Figures::default();
        let killable = self.procs.len();
        for (round, &threshold) in thresholds.iter().enumerate() {
            while live.accepted() < threshold && !load.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                !load.is_finished() && live.ended() < params.orders,
                "the load ended before round {round} (at {threshold} accepted orders): the \
                 rounds must fall within the run (fewer rounds, more orders or less concurrency)"
            );
            let target = rng.usize(..killable);
            let pause = Duration::from_millis(rng.u64(0..=2000));
            let pg = (round % 2 == 0) == pg_first;
            let mut fault = format!("at {:.1} s: ", load_start.elapsed().as_secs_f64());
            if let Storage::Postgres { .. } = self.storage {
                if pg {
                    let n = self.terminate_backends().await;
                    figures.pg_backends_terminated += n;
                    fault = format!("pg_terminate_backend on {n} backends, ");
                } else {
                    let what = self.drop_broker_connections().await;
                    figures.broker_drops += 1;
                    fault = format!("broker: {what}, ");
                }
            }
            let p = &mut self.procs[target];
            p.note(&format!("round {round}: kill -9"));
            p.kill9();
            *figures.kills.entry(p.name.clone()).or_default() += 1;
            eprintln!(
                "chaos {}: round {round} at {:.1} s, {} accepted / {} ended: {fault}kill -9 {}, \
                 restart after {} ms",
                self.name,
                load_start.elapsed().as_secs_f64(),
                live.accepted(),
                live.ended(),
                p.name,
                pause.as_millis()
            );
            tokio::time::sleep(pause).await;
            p.note(&format!("round {round}: restart"));
            let restart = Instant::now();
            p.start();
            p.wait_up(&client).await;
            eprintln!(
                "chaos {}: round {round}: {} up again after {:.1} s",
                self.name,
                p.name,
                restart.elapsed().as_secs_f64()
            );
            self.revive(&client).await;
            figures.rounds += 1;
        }

        let outcome = load
            .await
            .expect("the load generator task")
            .expect("the load generator ran");
        figures.load_secs = load_start.elapsed().as_secs_f64();
        self.revive(&client).await;
        let s = &outcome.summary;
        eprintln!(
            "chaos {}: load done in {:.1} s: {}",
            self.name,
            figures.load_secs,
            serde_json::to_string(s).unwrap_or_default()
        );

        // Quiescence: the checker, until it finds nothing or the time is up.
        let quiet_start = Instant::now();
        let dbs = self.databases().await;
        let options = CheckOptions::default();
        let report = loop {
            let report = check::check_with(&dbs, &options).await;
            match report {
                Ok(r) if r.ok() => break r,
                Ok(r) if quiet_start.elapsed() >= params.quiesce => break r,
                Err(e) if quiet_start.elapsed() >= params.quiesce => {
                    panic!("the checker failed: {e}")
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
            self.revive(&client).await;
        };
        figures.quiesce_secs = quiet_start.elapsed().as_secs_f64();
        figures.lost = Self::missing_orders(&dbs, &outcome.accepted_orders).await;
        dbs.close().await;

        for p in &mut self.procs {
            p.exited();
        }
        figures.sent = s.orders;
        figures.accepted = s.accepted;
        figures.terminal = s.terminal;
        figures.completed = s.completed_sagas;
        figures.inconsistent_answers = s
            .outcomes
            .iter()
            .filter(|(status, _)| !["confirmed", "cancelled", "failed"].contains(&status.as_str()))
            .map(|(_, n)| n)
            .sum();
        figures.post_errors = s
            .errors
            .iter()
            .filter(|(k, _)| k.starts_with("post:"))
            .map(|(_, n)| n)
            .sum();
        let violations = |name: &str| report.get(name).map_or(0, |i| i.violations);
        figures.stuck = violations("orders_terminal");
        figures.double_effects = EFFECT_INVARIANTS.iter().map(|n| violations(n)).sum();
        figures.violations = report.violations();
        figures.panics = self.procs.iter().map(Proc::panics).sum();
        figures.unexpected_exits = self
            .procs
            .iter()
            .flat_map(|p| p.unexpected_exits.clone())
            .collect();
        (figures, report)
    }

    fn cleanup(&mut self) {
        for p in &mut self.procs {
            p.kill9();
        }
        let Storage::Postgres {
            admin_url,
            prefix,
            nats_url,
            vhost,
            ..
        } = &self.storage
        else {
            return;
        };
        let schemas: Vec<String> = Service::ALL
            .into_iter()
            .filter(|s| s.has_database())
            .map(|s| s.schema(&format!("{prefix}_")))
            .collect();
        let (url, prefix, nats_url) = (admin_url.clone(), prefix.clone(), nats_url.clone());
        if let Some(vhost) = vhost
            && let Err(e) = rabbitmqctl(&["delete_vhost", vhost])
        {
            eprintln!("chaos: could not delete vhost {vhost}: {e}");
        }
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                    for schema in schemas {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS {schema} CASCADE"
                        )))
                        .execute(&pool)
                        .await;
                    }
                    pool.close().await;
                }
                if let Some(nats) = nats_url {
                    let dlq = Arc::new(saga_core::memory::MemoryDeadLetterStore::default());
                    let config = saga_brokers::nats::NatsConfig::new(&nats).with_stream(
                        format!("{}_EVENTS", prefix.to_uppercase()),
                        format!("{prefix}.events"),
                    );
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
        if std::thread::panicking() {
            self.print_logs();
        }
        self.cleanup();
    }
}

/// The business settings every process of a stack gets.
fn business_args() -> Vec<String> {
    [
        "--payment-failure-rate",
        "0.2",
        "--payment-latency-ms",
        "1",
        "--delivery-step-ms",
        "200",
        "--model-dir",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([model_dir().display().to_string()])
    .collect()
}

fn embedded_stack() -> Stack {
    let data = tempfile::tempdir().expect("a data dir");
    let logs = tempfile::tempdir().expect("a log dir");
    let base = free_ports(8);
    let url = |svc: Service| {
        let i = Service::ALL
            .iter()
            .position(|s| *s == svc)
            .expect("a service") as u16;
        format!("http://127.0.0.1:{}", base + i)
    };
    let mut args = vec![
        "--data-dir".to_owned(),
        data.path().display().to_string(),
        "--base-port".into(),
        base.to_string(),
    ];
    args.extend(business_args());
    let health = Service::ALL
        .iter()
        .map(|s| format!("{}/health", url(*s)))
        .collect();
    Stack {
        name: "embedded",
        procs: vec![Proc::new("app", args, logs.path(), health)],
        storage: Storage::Embedded(data),
        broker_cut: None,
        order_urls: vec![url(Service::Order)],
        inventory_url: url(Service::Inventory),
        logs,
    }
}

/// `url` with `application_name=<name>` added to its query.
fn with_application_name(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

/// The AMQP URL `url` with another vhost.
fn amqp_with_vhost(url: &str, vhost: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}/{vhost}")
}

/// The AMQP URL `url` pointed at `addr` instead of its host.
fn with_host(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}{path}")
}

/// The user of an AMQP URL (`guest` when none is given).
fn amqp_user(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map(|(u, _)| u.split(':').next().unwrap_or("guest").to_owned())
        .unwrap_or_else(|| "guest".into())
}

async fn distributed_stack(database_url: String, broker_url: String) -> Stack {
    let logs = tempfile::tempdir().expect("a log dir");
    let prefix = format!("c{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let app_url = with_application_name(&database_url, &prefix);
    let local = host_port(&broker_url, 5672).starts_with("127.0.0.1")
        || host_port(&broker_url, 5672).starts_with("localhost");
    let (service_broker_url, broker_cut, nats_url, vhost) = if broker_url.starts_with("nats://") {
        let proxy = Proxy::start(host_port(&broker_url, 4222)).await;
        let url = format!("nats://{}", proxy.addr);
        (url, BrokerCut::Proxy(proxy), Some(broker_url.clone()), None)
    } else {
        let user = amqp_user(&broker_url);
        let vhost_made = local
            && rabbitmqctl_async(vec!["add_vhost".into(), prefix.clone()])
                .await
                .and(
                    rabbitmqctl_async(vec![
                        "set_permissions".into(),
                        "-p".into(),
                        prefix.clone(),
                        user,
                        ".*".into(),
                        ".*".into(),
                        ".*".into(),
                    ])
                    .await,
                )
                .map_err(|e| eprintln!("chaos: no vhost of its own ({e}); using a TCP proxy"))
                .is_ok();
        if vhost_made {
            (
                amqp_with_vhost(&broker_url, &prefix),
                BrokerCut::Vhost(prefix.clone()),
                None,
                Some(prefix.clone()),
            )
        } else {
            let proxy = Proxy::start(host_port(&broker_url, 5672)).await;
            (
                with_host(&broker_url, proxy.addr),
                BrokerCut::Proxy(proxy),
                None,
                None,
            )
        }
    };
    let services = [
        (Service::Inventory, "inventory"),
        (Service::Order, "order-1"),
        (Service::Order, "order-2"),
        (Service::Payment, "payment-1"),
        (Service::Payment, "payment-2"),
        (Service::Shipping, "shipping"),
        (Service::Notification, "notification"),
        (Service::Analytics, "analytics"),
        (Service::Ai, "ai"),
    ];
    let ports: Vec<u16> = services.iter().map(|_| free_port()).collect();
    let url_of = |name: &str| {
        let i = services
            .iter()
            .position(|(_, n)| *n == name)
            .expect("a process name");
        format!("http://127.0.0.1:{}", ports[i])
    };
    let mut procs = Vec::new();
    for ((svc, name), port) in services.iter().zip(&ports) {
        let mut args = vec![
            "serve".to_owned(),
            svc.name().to_owned(),
            "--port".into(),
            port.to_string(),
            "--database-url".into(),
            app_url.clone(),
            "--broker-url".into(),
            service_broker_url.clone(),
            "--schema-prefix".into(),
            format!("{prefix}_"),
            "--broker-prefix".into(),
            prefix.clone(),
            "--db-max-connections".into(),
            "4".into(),
        ];
        if vhost.is_none() {
            args.push("--broker-ephemeral".into());
        }
        args.extend(business_args());
        let health = vec![format!("http://127.0.0.1:{port}/health")];
        procs.push(Proc::new(name, args, logs.path(), health));
    }
    let web_port = free_port();
    let mut web_args = vec![
        "serve".to_owned(),
        "web".into(),
        "--port".into(),
        web_port.to_string(),
    ];
    for (flag, name) in [
        ("--order-url", "order-1"),
        ("--inventory-url", "inventory"),
        ("--payment-url", "payment-1"),
        ("--shipping-url", "shipping"),
        ("--notification-url", "notification"),
        ("--analytics-url", "analytics"),
        ("--ai-url", "ai"),
    ] {
        web_args.push(flag.into());
        web_args.push(url_of(name));
    }
    procs.push(Proc::new(
        "web",
        web_args,
        logs.path(),
        vec![format!("http://127.0.0.1:{web_port}/health")],
    ));
    let order_urls = vec![url_of("order-1"), url_of("order-2")];
    let inventory_url = url_of("inventory");
    Stack {
        name: if broker_url.starts_with("nats://") {
            "postgres_nats"
        } else {
            "postgres_rabbitmq"
        },
        procs,
        storage: Storage::Postgres {
            admin_url: database_url,
            app_name: prefix.clone(),
            prefix,
            nats_url,
            vhost,
        },
        broker_cut: Some(broker_cut),
        order_urls,
        inventory_url,
        logs,
    }
}

/// Runs the stack, prints its row and asserts what the issue asks.
async fn play(mut stack: Stack) {
    let params = Params::from_env();
    let started = Instant::now();
    let (f, report) = stack.run(params).await;
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("chaos {}: checker after the run:\n{report}", stack.name);
    eprintln!(
        "chaos {}: kills {:?}, {} Postgres backends terminated, {} broker drops, {} post \
         errors retried, load {:.1} s, quiet after {:.1} s, {:.1} s in all",
        stack.name,
        f.kills,
        f.pg_backends_terminated,
        f.broker_drops,
        f.post_errors,
        f.load_secs,
        f.quiesce_secs,
        started.elapsed().as_secs_f64()
    );
    // One line per run for scripts/chaos.sh: stack | rounds | sent | accepted | terminal |
    // completed | lost | double effects | stuck | panics | violations | seconds | load average
    println!(
        "CHAOS-ROW | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} |",
        stack.name,
        f.rounds,
        f.sent,
        f.accepted,
        f.terminal,
        f.completed,
        f.lost,
        f.double_effects,
        f.stuck,
        f.panics + f.unexpected_exits.len(),
        f.violations,
        started.elapsed().as_secs_f64(),
        loadavg
    );
    assert_eq!(f.rounds, params.rounds, "every round was played");
    assert!(report.ok(), "invariants violated after the run:\n{report}");
    assert_eq!(f.lost, 0, "accepted orders missing from the order table");
    assert_eq!(
        f.inconsistent_answers, 0,
        "the long-poll answered terminal with an order status that is not final"
    );
    assert_eq!(f.panics, 0, "a process panicked (see the logs above)");
    assert!(
        f.unexpected_exits.is_empty(),
        "processes exited by themselves: {:?}",
        f.unexpected_exits
    );
    assert!(
        f.accepted * 100 >= f.sent * 95,
        "only {} of {} orders accepted",
        f.accepted,
        f.sent
    );
    assert!(f.completed > 0, "no saga completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded() {
    play(embedded_stack()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rabbitmq() {
    let (Some(db), Some(amqp)) = (
        env_url("DATABASE_URL", "chaos postgres_rabbitmq"),
        env_url("AMQP_URL", "chaos postgres_rabbitmq"),
    ) else {
        return;
    };
    play(distributed_stack(db, amqp).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nats() {
    let (Some(db), Some(nats)) = (
        env_url("DATABASE_URL", "chaos postgres_nats"),
        env_url("NATS_URL", "chaos postgres_nats"),
    ) else {
        return;
    };
    play(distributed_stack(db, nats).await).await;
}
