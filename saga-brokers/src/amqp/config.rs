//! Settings of the RabbitMQ adapter.

use std::time::Duration;

/// How [`AmqpBroker`](super::AmqpBroker) talks to RabbitMQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// The AMQP URI, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// The topic exchange every envelope is published to; also the prefix of every queue name.
    pub exchange: String,
    /// The connection name RabbitMQ shows (`rabbitmqctl list_connections name`).
    pub connection_name: String,
    /// Deliveries of one message handed to handlers without being settled before the adapter
    /// dead-letters it (a consumer that crashes on it every time).
    pub max_deliveries: u32,
    /// How long a publish keeps reconnecting and publishing again before it returns the error.
    pub reconnect_timeout: Duration,
    /// First wait between reconnection attempts; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// If set, every queue this adapter declares is deleted by RabbitMQ after being unused that
    /// long (`x-expires`) and the exchange is auto-delete; meant for tests and demos.
    pub expire_unused: Option<Duration>,
    /// How many unacked messages the active consumer of an ordered subscription takes
    /// (`basic.qos`): the messages held back behind their key (in flight, retried or parked)
    /// count against it, so once that many wait, the subscription stalls until a key moves.
    pub ordered_window: u16,
}

impl AmqpConfig {
    /// Defaults for `url`: exchange `saga.events`, 20 deliveries, 30 s reconnect budget,
    /// backoff 50 ms to 5 s, nothing expires.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            exchange: "saga.events".into(),
            connection_name: "saga-brokers".into(),
            max_deliveries: 20,
            reconnect_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            expire_unused: None,
            ordered_window: 1000,
        }
    }

    /// Sets the window of an ordered subscription's consumer (at least 1).
    #[must_use]
    pub fn with_ordered_window(mut self, window: u16) -> Self {
        self.ordered_window = window.max(1);
        self
    }

    /// Sets the exchange (and queue prefix).
    #[must_use]
    pub fn with_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = exchange.into();
        self
    }

    /// Sets the connection name.
    #[must_use]
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// Sets the unsettled-delivery limit (at least 1), e.g. from a
    /// [`RetryPolicy`](saga_core::RetryPolicy)'s `max_attempts` plus a margin.
    #[must_use]
    pub fn with_max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// Sets how long a publish keeps trying through connection failures.
    #[must_use]
    pub fn with_reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.reconnect_timeout = timeout;
        self
    }

    /// Lets RabbitMQ delete this adapter's queues after `idle` without use (tests, demos).
    #[must_use]
    pub fn expire_unused_after(mut self, idle: Duration) -> Self {
        self.expire_unused = Some(idle);
        self
    }

    /// The backoff before reconnection attempt `n` (0-based).
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.min(16));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}
