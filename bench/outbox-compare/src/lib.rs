//! What the comparison binaries share: the event, the producers, the counting of published
//! events and the printed lines, so that every crate is measured the same way.
//!
//! - `outbox-compare` (src/main.rs): outbox-core + outbox-postgres.
//! - `ruststream-compare` (src/bin/ruststream-compare.rs): ruststream-sqlx.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Producer tasks writing at once.
pub const PRODUCERS: usize = 8;
/// Events per second, all producers together, of the latency run, unless
/// `OUTBOX_COMPARE_RATE` names another (a relay slower than 2,000/s only shows its backlog there).
const LATENCY_RATE: usize = 2_000;
/// Events of the latency run.
pub const LATENCY_EVENTS: usize = 10_000;
/// How long a phase waits for the relay before it reports what was published: a relay of a
/// few hundred events a second (ruststream-sqlx's keyed lease table on a loaded machine) needs
/// minutes for 50,000.
const PATIENCE: Duration = Duration::from_secs(600);

/// The error of a comparison binary.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The event every producer writes: its index and its aggregate (1,000 aggregates).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Happened {
    /// The event's index, unique in the run.
    pub i: usize,
    /// The aggregate the event belongs to.
    pub aggregate: String,
}

impl Happened {
    /// Event `i`, of aggregate `agg-{i % 1000}`.
    pub fn new(i: usize) -> Self {
        Self {
            i,
            aggregate: format!("agg-{}", i % 1000),
        }
    }
}

/// The first three fields of `/proc/loadavg`.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The instant each event reached the counting publisher.
#[derive(Default)]
pub struct Stamps {
    at: Mutex<HashMap<usize, Instant>>,
    n: AtomicUsize,
    changed: Notify,
}

impl Stamps {
    /// Event `i` was published now.
    pub fn stamp(&self, i: usize) {
        let now = Instant::now();
        self.at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(i, now);
        self.n.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Events published so far (a republished event counts again).
    pub fn count(&self) -> usize {
        self.n.load(Ordering::Relaxed)
    }

    /// Waits until `n` events were published, or [`PATIENCE`] passed.
    pub async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.count() < n && Instant::now() < deadline {
            let notified = self.changed.notified();
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// Commit-to-publish latency of each committed event that was published, sorted.
    pub fn latencies(&self, committed: &HashMap<usize, Instant>) -> Vec<Duration> {
        let at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        let mut lat: Vec<Duration> = committed
            .iter()
            .filter_map(|(i, done)| at.get(i).map(|p| p.saturating_duration_since(*done)))
            .collect();
        lat.sort_unstable();
        lat
    }
}

/// The latency run's rate: `OUTBOX_COMPARE_RATE`, or [`LATENCY_RATE`].
fn latency_rate() -> usize {
    std::env::var("OUTBOX_COMPARE_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(LATENCY_RATE)
}

/// Writes events `from..from + per * PRODUCERS` from [`PRODUCERS`] tasks, paced at
/// [`latency_rate`] in total when `paced`; `write(i)` is one unit of work (business row and
/// event in one transaction, committed when it returns). Returns the commit instants by index.
async fn produce<W, F>(
    from: usize,
    per: usize,
    paced: bool,
    write: W,
) -> Result<HashMap<usize, Instant>, Error>
where
    W: Fn(usize) -> F + Clone + Send + 'static,
    F: Future<Output = Result<(), Error>> + Send,
{
    let period = Duration::from_secs_f64(PRODUCERS as f64 / latency_rate() as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let write = write.clone();
        let first = start + period.mul_f64(p as f64 / PRODUCERS as f64);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval_at(first, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut done = Vec::with_capacity(per);
            for k in 0..per {
                if paced {
                    tick.tick().await;
                }
                let i = from + p * per + k;
                write(i).await?;
                done.push((i, Instant::now()));
            }
            Ok::<_, Error>(done)
        });
    }
    let mut committed = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        committed.extend(r??);
    }
    Ok(committed)
}

/// Runs the three measurements of one crate and prints their lines: `n` events produced by
/// `unit` with no relay running; the relay started by `start` (its clock includes the start)
/// draining them into `stamps`; then [`LATENCY_EVENTS`] paced at [`latency_rate`] with the relay
/// running, after which `stop` stops it.
pub async fn measure<W, F, S, SF, R, T, TF>(
    stamps: &Stamps,
    n: usize,
    unit: W,
    start: S,
    stop: T,
) -> Result<(), Error>
where
    W: Fn(usize) -> F + Clone + Send + 'static,
    F: Future<Output = Result<(), Error>> + Send,
    S: FnOnce() -> SF,
    SF: Future<Output = Result<R, Error>>,
    T: FnOnce(R) -> TF,
    TF: Future<Output = Result<(), Error>>,
{
    let per = n / PRODUCERS;

    // Producing, no relay running.
    let clock = Instant::now();
    produce(0, per, false, unit.clone()).await?;
    let produced = per * PRODUCERS;
    let produce_rate = produced as f64 / clock.elapsed().as_secs_f64();

    // Relay: drain the filled outbox.
    let clock = Instant::now();
    let relay = start().await?;
    stamps.wait_for(produced).await;
    let drained = stamps.count();
    let relay_rate = drained as f64 / clock.elapsed().as_secs_f64();
    println!(
        "produce {produce_rate:.0}/s | relay {relay_rate:.0}/s ({drained} of {produced} published) | load {}",
        load()
    );

    // Latency at a steady rate, relay running.
    let lat_per = (LATENCY_EVENTS / PRODUCERS).max(1);
    let before = stamps.count();
    let committed = produce(produced, lat_per, true, unit).await?;
    stamps.wait_for(before + committed.len()).await;
    stop(relay).await?;
    print_latency(&stamps.latencies(&committed), committed.len());
    Ok(())
}

/// Prints the latency line of `lat` (sorted) for `committed` events.
fn print_latency(lat: &[Duration], committed: usize) {
    let Some(max) = lat.last() else {
        println!("latency: nothing published");
        return;
    };
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "latency at {}/s: p50 {:.2} ms p99 {:.2} ms max {:.2} ms ({} of {committed} published) | load {}",
        latency_rate(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        lat.len(),
        load()
    );
}
