//! Relay settings.

use std::time::Duration;

/// How a [`Relay`](super::Relay) runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Most rows claimed and published per batch.
    pub batch_size: usize,
    /// Fallback poll when no wake-up arrives (commits wake the relay at once; this only
    /// covers writers the relay cannot hear, and lease upkeep on Postgres).
    pub poll_interval: Duration,
    /// Delete rows once published instead of marking them (then nothing is kept to prune).
    pub delete_published: bool,
    /// Keep published rows this long, then prune them (`None`: keep them forever).
    pub retention: Option<Duration>,
    /// How often to prune.
    pub prune_interval: Duration,
    /// Wait after a failed batch before trying again.
    pub error_backoff: Duration,
}

impl Default for RelayConfig {
    /// Batches of 500, a 1 s fallback poll, published rows marked and kept 24 h, pruned
    /// every minute, 200 ms back-off after an error.
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            delete_published: false,
            retention: Some(Duration::from_secs(24 * 3600)),
            prune_interval: Duration::from_secs(60),
            error_backoff: Duration::from_millis(200),
        }
    }
}
