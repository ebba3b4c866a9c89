//! What a service is built from: its database, the broker, its settings, the stop signal.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use saga_core::broker::{Publisher, Subscriber};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use saga_core::broker::Subscription;

use crate::cli::BusinessArgs;
use crate::consumer::{Consumer, Handler, PoisonWatch, Ready, SettledHook};
use crate::db::Db;
use crate::metrics::AppMetrics;
use crate::operator::DeadLetterDesk;
use crate::payment_gateway::GatewayConfig;
use crate::topology::Service;

/// The business settings every service reads.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The simulated payment gateway.
    pub gateway: GatewayConfig,
    /// Fraud score above which an order is rejected.
    pub fraud_threshold: f64,
    /// A saga step's deadline.
    pub step_deadline: Duration,
    /// Simulated time from scheduled to dispatched and from dispatched to delivered.
    pub delivery_step: Duration,
    /// Where the AI models live.
    pub model_dir: std::path::PathBuf,
    /// Redis, the analytics service's fast aggregate store, if any.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys.
    pub redis_prefix: String,
    /// How long the event log keeps events (`None`: forever).
    pub event_log_retention: Option<Duration>,
    /// Which self-healing policies run, and how.
    pub healing: crate::healing::HealingSettings,
    /// The assistant's language model (`--llm-url`); `None`: offline. Its key never shows in
    /// `Debug`.
    pub llm: Option<saga_ai::assistant::llm::LlmConfig>,
    /// The size and time limits of every HTTP route.
    pub http: crate::http::HttpLimits,
    /// The bearer token the admin actions need; `None`: they are open.
    pub admin_token: Option<crate::http::AdminToken>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            gateway: GatewayConfig::default(),
            fraud_threshold: 0.8,
            step_deadline: Duration::from_secs(30),
            delivery_step: Duration::from_secs(2),
            model_dir: "models".into(),
            redis_url: None,
            redis_prefix: "saga".into(),
            event_log_retention: Some(Duration::from_secs(30 * 86_400)),
            healing: crate::healing::HealingSettings::default(),
            llm: None,
            http: crate::http::HttpLimits::default(),
            admin_token: None,
        }
    }
}

impl From<&BusinessArgs> for Settings {
    fn from(a: &BusinessArgs) -> Self {
        Self {
            gateway: GatewayConfig {
                failure_rate: a.payment_failure_rate,
                latency: Duration::from_millis(a.payment_latency_ms),
                seed: a.payment_seed,
            },
            fraud_threshold: a.fraud_threshold,
            step_deadline: Duration::from_secs(a.step_deadline_secs.max(1)),
            delivery_step: Duration::from_millis(a.delivery_step_ms),
            model_dir: a.model_dir.clone().unwrap_or_else(|| "models".into()),
            redis_url: None,
            redis_prefix: "saga".into(),
            event_log_retention: Some(Duration::from_secs(30 * 86_400)),
            healing: crate::healing::HealingSettings {
                off: a.self_healing_off.clone(),
                breaker_mode: a.payment_breaker,
                drift: crate::healing::default_drift(),
            },
            llm: a.llm(),
            http: crate::http::HttpLimits {
                max_body_bytes: a.max_body_bytes,
                request_timeout: Duration::from_secs(a.request_timeout_secs.max(1)),
            },
            admin_token: a
                .admin_token
                .as_deref()
                .and_then(crate::http::AdminToken::new),
        }
    }
}

/// One service's environment; the embedded and the distributed mode differ only in what they
/// put here.
#[derive(Clone)]
pub struct ServiceContext {
    /// Which service.
    pub service: Service,
    /// Its database.
    pub db: Db,
    /// Where its relay publishes.
    pub publisher: Arc<dyn Publisher>,
    /// Where its consumers subscribe.
    pub subscriber: Arc<dyn Subscriber>,
    /// Business settings.
    pub settings: Arc<Settings>,
    /// Stops its consumers and background tasks.
    pub shutdown: CancellationToken,
    /// Names this replica (relay leases, logs).
    pub replica: String,
    /// Counts this process's subscriptions as they come up.
    pub ready: Arc<Ready>,
    /// The service's Prometheus metrics.
    pub metrics: AppMetrics,
    /// The whole system's dead letters and their replay, for the order service's operator
    /// routes.
    pub dead_letters: DeadLetterDesk,
}

impl ServiceContext {
    /// Runs `handler` on `subscription` with the default consumer settings until shutdown.
    pub fn consume(&self, subscription: Subscription, handler: Arc<dyn Handler>) -> JoinHandle<()> {
        self.ready.expect();
        let consumer = Consumer::new(subscription);
        let watch = self
            .settings
            .healing
            .on(crate::healing::PolicySwitch::PoisonMessages)
            .then(|| {
                Arc::new(PoisonWatch::new(
                    consumer.policy.max_attempts,
                    crate::healing::sink(self),
                ))
            });
        consumer
            .poison(watch)
            .signals(&self.ready)
            .observed(Some(settled_hook(self.metrics.clone())))
            .spawn(self.subscriber.clone(), handler, self.shutdown.clone())
    }
}

impl std::fmt::Debug for ServiceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceContext")
            .field("service", &self.service)
            .field("db", &self.db)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// A started service: its HTTP routes and its background tasks (consumers, sweepers).
#[derive(Debug)]
pub struct Running {
    /// The HTTP API.
    pub router: Router,
    /// Tasks that end after the context's shutdown token is cancelled.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Counts settled deliveries by outcome.
fn settled_hook(metrics: AppMetrics) -> SettledHook {
    Arc::new(move |subscription, event_type, settled| {
        let outcome = match settled {
            saga_core::broker::Settled::Acked => "acked",
            saga_core::broker::Settled::Retried(_) => "retried",
            saga_core::broker::Settled::DeadLettered(_) => "dead_lettered",
        };
        metrics.event_consumed(subscription, event_type, outcome);
    })
}
