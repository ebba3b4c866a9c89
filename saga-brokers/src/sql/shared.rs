//! State shared by a broker's handles, consumers and deliveries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use saga_core::dead_letter::DeadLetterStore;
use saga_core::{Result, TopicPattern};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::db::{Db, Statements};
use super::options::SqlOptions;
use super::settle::Settler;

/// One broker's connection, statements and wake-ups.
pub(crate) struct Shared {
    pub(crate) db: Db,
    pub(crate) sql: Statements,
    pub(crate) options: SqlOptions,
    pub(crate) dead_letters: Arc<dyn DeadLetterStore>,
    closed: AtomicBool,
    /// Woken (all waiters) when the broker closes.
    pub(crate) close_notify: Notify,
    /// Per subscription: woken on publish, settle, replay, `NOTIFY`.
    notifies: Mutex<HashMap<String, Arc<Wake>>>,
    /// Parsed patterns by their stored JSON text.
    patterns: Mutex<HashMap<String, Arc<Vec<TopicPattern>>>>,
    /// Stops the Postgres listener (a stored permit, so it is never missed).
    pub(crate) stop_listener: Arc<Notify>,
    pub(crate) listener: Mutex<Option<JoinHandle<()>>>,
    /// The group commit of acks and retries; its task ends when this is dropped.
    pub(crate) settler: Settler,
}

impl Shared {
    /// Must run inside a tokio runtime: it spawns the settlement task there.
    pub(crate) fn new(
        db: Db,
        options: SqlOptions,
        dead_letters: Arc<dyn DeadLetterStore>,
    ) -> Result<Self> {
        let sql = Statements::new(&db, &options);
        let settler = Settler::start(
            db.clone(),
            sql.ack_many.clone(),
            sql.retry.clone(),
            options.max_settle_batch,
        )?;
        Ok(Self {
            db,
            sql,
            options,
            dead_letters,
            closed: AtomicBool::new(false),
            close_notify: Notify::new(),
            notifies: Mutex::new(HashMap::new()),
            patterns: Mutex::new(HashMap::new()),
            stop_listener: Arc::new(Notify::new()),
            listener: Mutex::new(None),
            settler,
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        self.close_notify.notify_waiters();
        self.stop_listener.notify_one();
    }

    /// Now, in microseconds since the epoch, from the configured clock.
    pub(crate) fn now_us(&self) -> i64 {
        self.options.clock.now().timestamp_micros()
    }

    /// The wake-up of one subscription.
    pub(crate) fn notify_for(&self, subscription: &str) -> Arc<Wake> {
        let mut map = self.notifies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(subscription) {
            return n.clone();
        }
        let n = Arc::new(Wake::default());
        map.insert(subscription.to_owned(), n.clone());
        n
    }

    /// Wakes the consumers of `subscription` in this process, if any.
    pub(crate) fn wake(&self, subscription: &str) {
        let n = self
            .notifies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(subscription)
            .cloned();
        if let Some(n) = n {
            n.wake();
        }
    }

    /// Wakes every consumer in this process (after a lost `LISTEN` connection).
    pub(crate) fn wake_all(&self) {
        let all: Vec<Arc<Wake>> = self
            .notifies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.iter().for_each(|n| n.wake());
    }

    /// The parsed patterns of a stored pattern list (JSON array), cached.
    pub(crate) fn patterns(&self, json: &str) -> Result<Arc<Vec<TopicPattern>>> {
        let mut cache = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(json) {
            return Ok(p.clone());
        }
        let raw: Vec<String> = serde_json::from_str(json).map_err(|e| {
            saga_core::Error::permanent(format!("stored topic patterns `{json}`: {e}"))
        })?;
        let parsed = Arc::new(
            raw.iter()
                .map(|p| TopicPattern::parse(p))
                .collect::<Result<Vec<_>>>()?,
        );
        cache.insert(json.to_owned(), parsed.clone());
        Ok(parsed)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop_listener.notify_one();
    }
}

/// A duration in microseconds, saturating.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

/// One subscription's wake-up in this process, and a count of them: a consumer whose last
/// claim found fewer rows than it asked for claims again only once something happened since
/// (a publish, a settlement that may free a key or a slot, a replay, a `NOTIFY`), or when its
/// timer runs out.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    pub(crate) notify: Notify,
    generation: AtomicU64,
}

impl Wake {
    /// Counts a change, then wakes every waiting consumer.
    pub(crate) fn wake(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// How many changes so far.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
