//! In-memory [`OutboxStore`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::{SharedClock, SystemClock};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::outbox::{OutboxRecord, OutboxStore};

/// The rows and the counters, behind one lock.
#[derive(Debug, Default)]
struct State {
    records: BTreeMap<i64, OutboxRecord>,
    /// The last sequence number handed out (0 before the first append).
    last_seq: i64,
    /// How many events were ever appended (never goes down, pruning included).
    appended: u64,
}

/// Outbox rows in a map ordered by sequence number. Clones share the same rows.
///
/// A relay in the same process learns about new rows without polling: it compares
/// [`MemoryOutbox::appended_count`] with the value it saw last, and with the `tokio` feature
/// it can wait on [`MemoryOutbox::append_signal`].
///
/// ```
/// # futures_util::FutureExt::now_or_never(async {
/// use saga_core::{Envelope, OutboxStore};
/// use saga_core::memory::outbox::MemoryOutbox;
///
/// let outbox = MemoryOutbox::default();
/// let seqs = outbox.append(&[Envelope::new("order.placed", "order-1", serde_json::json!({}))])
///     .await?;
/// assert_eq!(outbox.pending_count().await?, 1);
/// assert_eq!(outbox.appended_count(), 1);
/// outbox.mark_published(&seqs, chrono::Utc::now()).await?;
/// assert_eq!(outbox.pending_count().await?, 0);
/// # Ok::<(), saga_core::Error>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryOutbox {
    state: Arc<Mutex<State>>,
    clock: SharedClock,
    #[cfg(feature = "tokio")]
    signal: Arc<tokio::sync::Notify>,
}

impl Default for MemoryOutbox {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryOutbox {
    /// An empty outbox stamping `created_at` from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            state: Arc::default(),
            clock,
            #[cfg(feature = "tokio")]
            signal: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// How many events were ever appended: a generation counter that grows with every
    /// non-empty append. A relay that remembers the last value it saw knows whether anything
    /// was written since, without reading the rows.
    pub fn appended_count(&self) -> u64 {
        self.lock().appended
    }

    /// A signal notified (with `notify_waiters`) after every non-empty append.
    ///
    /// To wait without missing an append that happens between checking and waiting, create
    /// and enable the `Notified` future first, then check [`MemoryOutbox::appended_count`],
    /// then await it:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use saga_core::memory::outbox::MemoryOutbox;
    /// let outbox = MemoryOutbox::default();
    /// let signal = outbox.append_signal();
    /// let seen = outbox.appended_count();
    /// let notified = signal.notified();
    /// tokio::pin!(notified);
    /// notified.as_mut().enable();
    /// if outbox.appended_count() == seen {
    /// #   let o = outbox.clone();
    /// #   tokio::spawn(async move {
    /// #       use saga_core::OutboxStore;
    /// #       o.append(&[saga_core::Envelope::new("a.b", "k", serde_json::json!({}))]).await
    /// #   });
    ///     notified.await; // woken by the next append
    /// }
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    pub fn append_signal(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.signal)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl OutboxStore for MemoryOutbox {
    async fn append(&self, events: &[Envelope]) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let seqs = {
            let mut state = self.lock();
            let mut seqs = Vec::with_capacity(events.len());
            for envelope in events {
                state.last_seq += 1;
                let seq = state.last_seq;
                state.records.insert(
                    seq,
                    OutboxRecord {
                        seq,
                        envelope: envelope.clone(),
                        created_at: now,
                        published_at: None,
                    },
                );
                seqs.push(seq);
            }
            state.appended += events.len() as u64;
            seqs
        };
        #[cfg(feature = "tokio")]
        self.signal.notify_waiters();
        Ok(seqs)
    }

    async fn unpublished(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        Ok(self
            .lock()
            .records
            .values()
            .filter(|r| r.published_at.is_none())
            .take(limit)
            .cloned()
            .collect())
    }

    async fn mark_published(&self, seqs: &[i64], at: DateTime<Utc>) -> Result<()> {
        let mut state = self.lock();
        for seq in seqs {
            // Unknown seqs (pruned already) and records marked before are left as they are.
            if let Some(record) = state.records.get_mut(seq) {
                record.published_at.get_or_insert(at);
            }
        }
        Ok(())
    }

    async fn prune_published(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut state = self.lock();
        let len = state.records.len();
        state
            .records
            .retain(|_, r| r.published_at.is_none_or(|at| at >= before));
        Ok((len - state.records.len()) as u64)
    }

    async fn pending_count(&self) -> Result<u64> {
        Ok(self
            .lock()
            .records
            .values()
            .filter(|r| r.published_at.is_none())
            .count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use futures_util::FutureExt;

    fn envelope(aggregate: &str) -> Envelope {
        Envelope::new("test.happened", aggregate, serde_json::json!({}))
    }

    #[test]
    fn created_at_comes_from_the_clock() {
        let clock = ManualClock::at_epoch();
        let outbox = MemoryOutbox::new(Arc::new(clock.clone()));
        let result = async {
            outbox.append(&[envelope("a")]).await?;
            outbox.unpublished(10).await
        }
        .now_or_never();
        let records = match result {
            Some(Ok(records)) => records,
            other => panic!("in-memory outbox did not answer at once: {other:?}"),
        };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].created_at, clock.now());
    }

    #[test]
    fn appended_count_grows_and_ignores_empty_appends() {
        let outbox = MemoryOutbox::default();
        let result = async {
            outbox.append(&[]).await?;
            let empty = outbox.appended_count();
            outbox.append(&[envelope("a"), envelope("b")]).await?;
            let seqs = outbox.append(&[envelope("c")]).await?;
            outbox.mark_published(&seqs, Utc::now()).await?;
            outbox.prune_published(DateTime::<Utc>::MAX_UTC).await?;
            Ok::<_, crate::Error>((empty, outbox.appended_count()))
        }
        .now_or_never();
        assert!(matches!(result, Some(Ok((0, 3)))), "got {result:?}");
    }
}
