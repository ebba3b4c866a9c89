//! Settings of the NATS JetStream adapter.

use std::time::Duration;

/// How [`NatsBroker`](super::NatsBroker) talks to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// The server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream's name.
    pub stream: String,
    /// Every event type is published under `<subject_prefix>.`; the stream holds
    /// `<subject_prefix>.>`.
    pub subject_prefix: String,
    /// Deliveries of one message handed to handlers before the adapter dead-letters it
    /// unseen (a consumer that keeps crashing on it); the consumer's `max_deliver` is one more.
    pub max_deliveries: u32,
    /// How long a delivery may stay unsettled before JetStream delivers it again.
    pub ack_wait: Duration,
    /// Upper bound of unsettled messages of an unordered subscription, over all its
    /// subscribers (each also stays within its own prefetch).
    pub max_ack_pending: u32,
    /// The stream's dedup window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// How long one pull request waits for messages before the next one is sent.
    pub pull_wait: Duration,
    /// How long a publish keeps trying through connection failures.
    pub reconnect_timeout: Duration,
    /// First wait between attempts; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl NatsConfig {
    /// Defaults for `url`: stream `SAGA_EVENTS` over `saga.events.>`, 20 deliveries, ack wait
    /// 30 s, 1000 pending, 2 min dedup window, 1 s pulls, 30 s reconnect budget.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "SAGA_EVENTS".into(),
            subject_prefix: "saga.events".into(),
            max_deliveries: 20,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1000,
            duplicate_window: Duration::from_secs(120),
            pull_wait: Duration::from_secs(1),
            reconnect_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// Sets the stream name and subject prefix.
    #[must_use]
    pub fn with_stream(
        mut self,
        stream: impl Into<String>,
        subject_prefix: impl Into<String>,
    ) -> Self {
        self.stream = stream.into();
        self.subject_prefix = subject_prefix.into();
        self
    }

    /// Sets the unsettled-delivery limit (at least 1).
    #[must_use]
    pub fn with_max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// Sets the ack wait.
    #[must_use]
    pub fn with_ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// Sets how long a publish keeps trying through connection failures.
    #[must_use]
    pub fn with_reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.reconnect_timeout = timeout;
        self
    }

    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.min(16));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}
