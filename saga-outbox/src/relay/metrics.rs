//! Relay metrics: plain atomics the application reads (or exports) as it likes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges of one relay. Read them at any time; they only grow, except the
/// gauges `last_batch_size` and `lag_micros`.
#[derive(Debug, Default)]
pub struct RelayMetrics {
    /// Events published (and marked or deleted).
    pub published: AtomicU64,
    /// Batches that published at least one event.
    pub batches: AtomicU64,
    /// Size of the last non-empty batch.
    pub last_batch_size: AtomicU64,
    /// Commit-to-publish lag of the oldest event of the last batch, in microseconds.
    pub lag_micros: AtomicU64,
    /// Failed batches or housekeeping (they are retried).
    pub errors: AtomicU64,
    /// Published rows pruned by retention.
    pub pruned: AtomicU64,
}

/// A copy of [`RelayMetrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// See [`RelayMetrics::published`].
    pub published: u64,
    /// See [`RelayMetrics::batches`].
    pub batches: u64,
    /// See [`RelayMetrics::last_batch_size`].
    pub last_batch_size: u64,
    /// See [`RelayMetrics::lag_micros`].
    pub lag_micros: u64,
    /// See [`RelayMetrics::errors`].
    pub errors: u64,
    /// See [`RelayMetrics::pruned`].
    pub pruned: u64,
}

impl RelayMetrics {
    /// Reads every value.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            published: self.published.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            last_batch_size: self.last_batch_size.load(Ordering::Relaxed),
            lag_micros: self.lag_micros.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            pruned: self.pruned.load(Ordering::Relaxed),
        }
    }
}
