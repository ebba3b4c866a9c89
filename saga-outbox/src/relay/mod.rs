//! The relay: drains the outbox into a [`Publisher`], in commit order per aggregate.
//!
//! Each round it claims a batch of unpublished rows by `seq`, publishes them in that order
//! (the publisher returns after the broker confirmed them), then marks them published or
//! deletes them. It keeps no high-water mark: a row whose transaction took a lower `seq` but
//! committed later is still found next round. It wakes on commit (the unit of work's
//! in-process notify; Postgres `LISTEN/NOTIFY`) and polls slowly as a fallback; while a
//! round finds a full batch it goes on without waiting. A crash between publish and mark
//! publishes the rows again: consumers' inboxes absorb the repeats.
//!
//! Stop it with the [`CancellationToken`]: the batch in flight finishes (published and
//! marked) and, on Postgres, the leases are released so another relay takes over at once.

mod config;
mod metrics;
mod source;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use saga_core::{Publisher, Result};
use tokio_util::sync::CancellationToken;

pub use config::RelayConfig;
pub use metrics::{MetricsSnapshot, RelayMetrics};
pub use source::{Batch, RelaySource};

/// Publishes what a [`RelaySource`] holds. See the [module docs](self).
pub struct Relay<S: RelaySource> {
    source: S,
    publisher: Arc<dyn Publisher>,
    config: RelayConfig,
    metrics: Arc<RelayMetrics>,
}

impl<S: RelaySource> std::fmt::Debug for Relay<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<S: RelaySource> Relay<S> {
    /// A relay from `source` to `publisher`.
    pub fn new(source: S, publisher: Arc<dyn Publisher>, config: RelayConfig) -> Self {
        Self {
            source,
            publisher,
            config,
            metrics: Arc::new(RelayMetrics::default()),
        }
    }

    /// The relay's metrics (shared; read them while it runs).
    pub fn metrics(&self) -> Arc<RelayMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Runs until `shutdown` is cancelled; the batch in flight is finished first.
    /// Errors of single rounds are counted in the metrics and retried after a back-off.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let wakeups = self.source.wakeups();
        let batch_size = self.config.batch_size.max(1);
        let mut last_prune = Instant::now();
        while !shutdown.is_cancelled() {
            let mut wait = self.config.poll_interval;
            let round = async {
                self.source.maintain().await?;
                self.source
                    .relay_batch(
                        batch_size,
                        self.publisher.as_ref(),
                        self.config.delete_published,
                    )
                    .await
            }
            .await;
            match round {
                Ok(batch) => {
                    if batch.published > 0 {
                        self.record(&batch);
                    }
                    if batch.published >= batch_size
                        || (batch.published > 0 && self.source.claim_again())
                    {
                        wait = Duration::ZERO;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay round failed; retrying");
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    wait = self.config.error_backoff;
                }
            }
            if let Some(retention) = self.config.retention
                && !self.config.delete_published
                && last_prune.elapsed() >= self.config.prune_interval
            {
                last_prune = Instant::now();
                self.prune(retention).await;
            }
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = wakeups.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {}
            }
        }
        self.source.release().await
    }

    /// Runs on a new tokio task; cancel `shutdown` and await the handle to stop.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<Result<()>> {
        tokio::spawn(self.run(shutdown))
    }

    fn record(&self, batch: &Batch) {
        let m = &self.metrics;
        m.published
            .fetch_add(batch.published as u64, Ordering::Relaxed);
        m.batches.fetch_add(1, Ordering::Relaxed);
        m.last_batch_size
            .store(batch.published as u64, Ordering::Relaxed);
        if let Some(oldest) = batch.oldest {
            let lag = (self.source.now() - oldest)
                .num_microseconds()
                .unwrap_or(i64::MAX);
            m.lag_micros
                .store(u64::try_from(lag).unwrap_or_default(), Ordering::Relaxed);
        }
    }

    async fn prune(&self, retention: Duration) {
        let Ok(retention) = chrono::Duration::from_std(retention) else {
            return;
        };
        let before = self.source.now() - retention;
        match self.source.prune(before).await {
            Ok(n) => {
                self.metrics.pruned.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox prune failed");
                self.metrics.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
