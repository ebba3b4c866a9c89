//! Deterministic simulation of the saga engine under faults.
//!
//! The real [`Orchestrator`] and in-memory saga store run against simulated participants and a
//! simulated network, all driven by one seeded random generator and a [`ManualClock`]. The
//! network delays, duplicates and reorders messages (across sagas and within one); deliveries
//! are dropped before their ack, the consumer crashing before it commits (the message comes
//! again), and consumers crash between effect and ack, after committing (it comes again, and
//! the inbox absorbs it); participants' relays crash between publishing and
//! marking (the reply goes out twice); the orchestrator's saves fail at random, before its
//! commands are published (the input comes again) or after (the unsent commands kept in the
//! instance are published again, with the same ids). Participants
//! are slow enough to miss deadlines, so late replies and compensations of uncertain steps
//! happen too.
//!
//! After every run: every saga has ended; a completed saga's steps each took effect exactly
//! once; a compensated saga left no effect behind (each effect undone exactly once, or never
//! made); no effect was applied twice.
//!
//! `SIM_SEEDS=10000 cargo test -p saga-core --test simulation` runs the long version
//! (`scripts/simulate.sh`); `SIM_SEED=n` replays one seed. CI runs 1,000 seeds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use saga_core::memory::MemorySagaStore;
use saga_core::saga::{
    Orchestrator, SagaDefinition, SagaFilter, SagaInstance, SagaStatus, SagaStore, StepDefinition,
};
use saga_core::{Clock, Envelope, Error, ManualClock, Publisher, Result};
use uuid::Uuid;

const SAGAS: usize = 6;
const STEP_LIMIT: usize = 20_000;

fn definition() -> SagaDefinition {
    let step = |name: &str, base: &str| {
        StepDefinition::new(
            name,
            format!("{base}.requested"),
            format!("{base}.done"),
            format!("{base}.failed"),
        )
        .compensate_with(
            format!("{base}.undo.requested"),
            Some(&format!("{base}.undone")),
        )
        .deadline(Duration::from_secs(30))
        .retries_on_deadline(1)
    };
    SagaDefinition::new(
        "sim",
        vec![
            step("reserve", "inventory"),
            step("charge", "payment"),
            step("ship", "shipping"),
        ],
    )
    .expect("valid definition")
}

/// How often each fault happens, per opportunity.
#[derive(Debug, Clone, Copy)]
struct Faults {
    duplicate: f64,
    crash_before_commit: f64,
    crash_before_ack: f64,
    relay_crash_before_mark: f64,
    orchestrator_save_fails: f64,
    business_failure: f64,
    max_delay_secs: i64,
}

impl Faults {
    fn from_rng(rng: &mut fastrand::Rng) -> Self {
        Self {
            duplicate: rng.f64() * 0.2,
            crash_before_commit: rng.f64() * 0.2,
            crash_before_ack: rng.f64() * 0.2,
            relay_crash_before_mark: rng.f64() * 0.3,
            orchestrator_save_fails: rng.f64() * 0.2,
            business_failure: rng.f64() * 0.4,
            // Up to 70 s: beyond a 30 s deadline and its one retry.
            max_delay_secs: rng.i64(0..=70),
        }
    }
}

type SharedRng = Arc<Mutex<fastrand::Rng>>;

fn chance(rng: &SharedRng, p: f64) -> bool {
    rng.lock().unwrap().f64() < p
}

/// The saga store, failing `save` at random as a crash or a lost connection would.
struct FailingStore {
    inner: MemorySagaStore,
    rng: SharedRng,
    p: f64,
}

#[async_trait]
impl SagaStore for FailingStore {
    async fn create(&self, instance: &SagaInstance) -> Result<()> {
        self.inner.create(instance).await
    }
    async fn load(&self, id: Uuid) -> Result<SagaInstance> {
        self.inner.load(id).await
    }
    async fn save(&self, instance: &SagaInstance, expected_version: u64) -> Result<()> {
        if chance(&self.rng, self.p) {
            return Err(Error::transient("simulated failure of save"));
        }
        self.inner.save(instance, expected_version).await
    }
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaInstance>> {
        self.inner.due(now, limit).await
    }
    async fn list(&self, filter: &SagaFilter) -> Result<Vec<SagaInstance>> {
        self.inner.list(filter).await
    }
}

/// The network's entry point: a publish is durable once it returns, like a confirmed publish.
#[derive(Clone, Default)]
struct Outgoing(Arc<Mutex<Vec<Envelope>>>);

#[async_trait]
impl Publisher for Outgoing {
    async fn publish(&self, batch: &[Envelope]) -> Result<()> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

struct InFlight {
    envelope: Envelope,
    due: DateTime<Utc>,
}

/// What a participant did for one saga.
#[derive(Debug, Default, Clone, Copy)]
struct Effects {
    applied: u32,
    undone: u32,
    /// The undo came first (or the effect was undone): a later command is refused.
    tombstone: bool,
}

/// A participant: inbox, effects and outbox committed together, replies published by a relay.
struct Participant {
    base: &'static str,
    inbox: HashSet<Uuid>,
    effects: HashMap<String, Effects>,
    outbox: Vec<Envelope>,
}

impl Participant {
    fn new(base: &'static str) -> Self {
        Self {
            base,
            inbox: HashSet::new(),
            effects: HashMap::new(),
            outbox: Vec::new(),
        }
    }

    /// One committed transaction: inbox mark, the effect, the reply in the outbox.
    fn commit(&mut self, cmd: &Envelope, fails: bool) {
        if !self.inbox.insert(cmd.event_id) {
            return; // duplicate: its reply is already in the outbox (or was published)
        }
        let base = self.base;
        let fx = self.effects.entry(cmd.aggregate_id.clone()).or_default();
        let reply = if cmd.event_type == format!("{base}.requested") {
            // Business idempotency: a retried command (new id) for the same saga is the same
            // operation: once applied it answers `done` again without applying it twice.
            if fx.applied > 0 && !fx.tombstone {
                format!("{base}.done")
            } else if fx.tombstone || fails {
                format!("{base}.failed")
            } else {
                fx.applied = 1;
                format!("{base}.done")
            }
        } else {
            if fx.applied > fx.undone {
                fx.undone += 1;
            }
            fx.tombstone = true;
            format!("{base}.undone")
        };
        self.outbox.push(
            Envelope::new(
                reply,
                cmd.aggregate_id.clone(),
                serde_json::json!({"reason": "simulated"}),
            )
            .caused_by(cmd),
        );
    }
}

struct World {
    seed: u64,
    rng: SharedRng,
    faults: Faults,
    clock: ManualClock,
    sagas: MemorySagaStore,
    orchestrator: Orchestrator,
    outgoing: Outgoing,
    network: Vec<InFlight>,
    participants: Vec<Participant>,
}

/// Runs a future that cannot wait: every store and publisher here answers at once.
fn now<T>(f: impl std::future::Future<Output = T>) -> T {
    f.now_or_never().expect("in-memory stores never wait")
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let faults = Faults::from_rng(&mut rng);
        let rng = Arc::new(Mutex::new(rng));
        let clock = ManualClock::at_epoch();
        let sagas = MemorySagaStore::new();
        let outgoing = Outgoing::default();
        let store = FailingStore {
            inner: sagas.clone(),
            rng: rng.clone(),
            p: faults.orchestrator_save_fails,
        };
        let orchestrator = Orchestrator::new(
            definition(),
            Arc::new(store),
            Arc::new(sagas.clone()),
            Arc::new(outgoing.clone()),
            Arc::new(clock.clone()),
        );
        Self {
            seed,
            rng,
            faults,
            clock,
            sagas,
            orchestrator,
            outgoing,
            network: Vec::new(),
            participants: ["inventory", "payment", "shipping"]
                .map(Participant::new)
                .into(),
        }
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "seed {} failed: {what}\nfaults: {:?}\nreplay with: SIM_SEED={} cargo test -p saga-core --test simulation",
            self.seed, self.faults, self.seed
        );
    }

    /// Moves published messages onto the network, each with its own delay (and maybe a twin).
    fn transmit(&mut self) {
        let sent: Vec<Envelope> = std::mem::take(&mut *self.outgoing.0.lock().unwrap());
        for envelope in sent {
            let copies = if chance(&self.rng, self.faults.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = self.rng.lock().unwrap().i64(0..=self.faults.max_delay_secs);
                self.network.push(InFlight {
                    envelope: envelope.clone(),
                    due: self.clock.now() + chrono::Duration::seconds(delay),
                });
            }
        }
    }

    /// Delivers one due message, picked at random (so order across and within sagas varies).
    fn deliver_one(&mut self) -> bool {
        let at = self.clock.now();
        let due: Vec<usize> = (0..self.network.len())
            .filter(|&i| self.network[i].due <= at)
            .collect();
        if due.is_empty() {
            return false;
        }
        let pick = due[self.rng.lock().unwrap().usize(..due.len())];
        let msg = self.network.swap_remove(pick);
        if chance(&self.rng, self.faults.crash_before_commit) {
            self.network.push(msg); // the consumer died before committing: redelivered
            return true;
        }
        let acked = match self.participants.iter().position(|p| {
            msg.envelope.event_type.starts_with(p.base)
                && msg.envelope.event_type.ends_with("requested")
        }) {
            Some(p) => {
                let fails = chance(&self.rng, self.faults.business_failure);
                self.participants[p].commit(&msg.envelope, fails);
                true
            }
            None => match now(self.orchestrator.handle_reply(&msg.envelope)) {
                Ok(_) => true,
                Err(e) if e.kind() == saga_core::ErrorKind::Transient => false,
                Err(e) => self.fail(format!("orchestrator error: {e}")),
            },
        };
        if !acked || chance(&self.rng, self.faults.crash_before_ack) {
            self.network.push(msg); // not acked: delivered again
        }
        true
    }

    /// Each participant's relay publishes its oldest reply; a crash before marking repeats it.
    fn relay(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.participants.len() {
            if self.participants[i].outbox.is_empty() {
                continue;
            }
            any = true;
            let reply = self.participants[i].outbox[0].clone();
            now(self.outgoing.publish(&[reply])).expect("publish");
            if !chance(&self.rng, self.faults.relay_crash_before_mark) {
                self.participants[i].outbox.remove(0);
            }
        }
        any
    }

    /// The orchestrator's background work: flush unsent commands, apply passed deadlines.
    fn sweep(&mut self) {
        let flushed = now(self.orchestrator.flush_unsent()).map(|_| ());
        let expired = now(self.orchestrator.expire_due(100)).map(|_| ());
        for result in [flushed, expired] {
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == saga_core::ErrorKind::Transient => {}
                Err(e) => self.fail(format!("sweep failed: {e}")),
            }
        }
    }

    fn unsent_left(&self) -> bool {
        now(self.sagas.list(&SagaFilter::default()))
            .expect("list")
            .iter()
            .any(|s| !s.unsent.is_empty())
    }

    fn all_ended(&self) -> bool {
        now(self.sagas.list(&SagaFilter::default()))
            .expect("list")
            .iter()
            .all(SagaInstance::is_terminal)
    }

    /// Moves the clock to the next message or deadline.
    fn advance(&mut self) {
        let next_msg = self.network.iter().map(|m| m.due).min();
        let next_deadline = now(self.sagas.list(&SagaFilter::default()))
            .expect("list")
            .iter()
            .filter_map(|s| s.deadline)
            .min();
        let next = [next_msg, next_deadline].into_iter().flatten().min();
        match next {
            Some(t) if t > self.clock.now() => self.clock.set(t),
            _ => self.clock.advance(chrono::Duration::seconds(1)),
        }
    }

    fn run(mut self) {
        let mut ids = Vec::new();
        for i in 0..SAGAS {
            let id = Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("{}:{i}", self.seed).as_bytes(),
            );
            match now(self
                .orchestrator
                .start(id, &id.to_string(), serde_json::json!({"n": i})))
            {
                Ok(_) => {}
                // Created, and maybe published, but not marked sent: the sweep flushes it.
                Err(e) if e.kind() == saga_core::ErrorKind::Transient => {}
                Err(e) => self.fail(format!("start: {e}")),
            }
            ids.push(id);
        }
        for _ in 0..STEP_LIMIT {
            self.transmit();
            let delivered = self.deliver_one();
            let relayed = self.relay();
            self.sweep();
            self.transmit();
            if !delivered && !relayed {
                if self.network.is_empty() && self.all_ended() && !self.unsent_left() {
                    return self.check(&ids);
                }
                self.advance();
            }
        }
        let open: Vec<String> = now(self.sagas.list(&SagaFilter::default()))
            .expect("list")
            .iter()
            .filter(|s| !s.is_terminal())
            .map(|s| {
                format!(
                    "{} {:?} deadline {:?} steps {:?}",
                    s.id,
                    s.status,
                    s.deadline,
                    s.steps.iter().map(|x| x.status).collect::<Vec<_>>()
                )
            })
            .collect();
        self.fail(format!(
            "no quiescence after {STEP_LIMIT} steps: {} messages in flight, outboxes {:?}, open sagas {open:#?}",
            self.network.len(),
            self.participants.iter().map(|p| p.outbox.len()).collect::<Vec<_>>()
        ));
    }

    fn check(&self, ids: &[Uuid]) {
        for id in ids {
            let saga = now(self.sagas.load(*id)).expect("saga exists");
            let key = id.to_string();
            for p in &self.participants {
                let fx = p.effects.get(&key).copied().unwrap_or_default();
                if fx.applied > 1 || fx.undone > 1 {
                    self.fail(format!("{} applied {fx:?} for saga {id}", p.base));
                }
                let net = fx.applied - fx.undone;
                let expected = match saga.status {
                    SagaStatus::Completed => 1,
                    SagaStatus::Compensated => 0,
                    other => self.fail(format!("saga {id} ended {other:?}")),
                };
                if net != expected {
                    use saga_core::saga::SagaLogStore;
                    for e in now(self.sagas.entries(*id)).expect("log") {
                        eprintln!(
                            "  {} {:<8} {:<28} {:?} {}",
                            e.at.format("%M:%S"),
                            e.step,
                            e.event_type,
                            e.status,
                            e.detail.unwrap_or_default()
                        );
                    }
                    self.fail(format!(
                        "saga {id} {:?}: {} left net effect {net} ({fx:?})",
                        saga.status, p.base
                    ));
                }
            }
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.parse().expect("SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    (0..n).collect()
}

#[test]
fn every_saga_ends_and_every_effect_happens_once_under_faults() {
    let seeds = seeds();
    for &seed in &seeds {
        World::new(seed).run();
    }
    println!(
        "{} seeds, {} sagas each: all ended, every effect once",
        seeds.len(),
        SAGAS
    );
}
