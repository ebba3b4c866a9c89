//! The command line of the `reference-app` binary.
//!
//! ```text
//! reference-app                         every service in one process (embedded SQLite + sql broker)
//! reference-app serve <service> ...     one service per process (Postgres + RabbitMQ or NATS)
//! reference-app loadgen ...             drive the HTTP API and print a JSON summary
//! reference-app dlq list|replay|discard dead letters, for operators
//! reference-app replay <read-model>     rebuild a read model from the event log
//! reference-app check                   check the business invariants across the databases
//! reference-app ai train                train the AI service's model files from generated data
//! ```

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::topology::Service;

/// The order system of the seed, built from the saga crates.
#[derive(Debug, Parser)]
#[command(name = "reference-app", version, about)]
pub struct Cli {
    /// What to run; with none, every service runs in this process on embedded storage.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the embedded mode (used when no subcommand is given).
    #[command(flatten)]
    pub embedded: EmbeddedArgs,
    /// Export the services' spans (each request placing an order, each delivery handled,
    /// in its saga's trace) over OTLP/HTTP to this collector URL
    /// (`http://localhost:4318/v1/traces`). Needs a build with the `otlp` feature.
    #[arg(long, global = true, env = "OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start; boxing buys nothing
pub enum Command {
    /// Runs one service, on Postgres and RabbitMQ or NATS.
    Serve(ServeArgs),
    /// Drives the HTTP API with orders and prints a JSON summary.
    Loadgen(LoadgenArgs),
    /// Lists, replays or discards dead letters.
    Dlq(DlqArgs),
    /// Rebuilds a read model from the event log.
    Replay(ReplayArgs),
    /// Checks the business invariants across the services' databases; exits non-zero if
    /// any is violated.
    Check(CheckArgs),
    /// The AI service's models.
    Ai(AiArgs),
}

/// `reference-app ai ...`.
#[derive(Debug, Clone, Args)]
pub struct AiArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AiAction,
}

/// What `reference-app ai` does.
#[derive(Debug, Clone, Subcommand)]
pub enum AiAction {
    /// Trains the model files the AI service loads (fraud, payment success, saga anomalies)
    /// from saga-ai's seeded generators, replacing what the folder holds, and prints each
    /// model's metrics on held-out data. The service reads them at its next start.
    Train {
        /// Where to write them (the AI service's `--model-dir`).
        #[arg(long, env = "MODEL_DIR", default_value = "models")]
        model_dir: PathBuf,
    },
}

/// Settings of the business behaviour, shared by both modes.
#[derive(Debug, Clone, Args)]
pub struct BusinessArgs {
    /// Share of charges the simulated payment gateway declines (the seed: 0.2).
    #[arg(long, env = "PAYMENT_FAILURE_RATE", default_value_t = 0.2)]
    pub payment_failure_rate: f64,
    /// Simulated gateway latency per charge or refund, in milliseconds.
    #[arg(long, env = "PAYMENT_LATENCY_MS", default_value_t = 50)]
    pub payment_latency_ms: u64,
    /// Seed of the simulated gateway's decisions (same seed, same decisions per order).
    #[arg(long, env = "PAYMENT_SEED", default_value_t = 42)]
    pub payment_seed: u64,
    /// Fraud score (0-1) above which an order is rejected.
    #[arg(long, env = "FRAUD_THRESHOLD", default_value_t = 0.8)]
    pub fraud_threshold: f64,
    /// How long a saga step may take before it is retried once and then compensated, in
    /// seconds.
    #[arg(long, env = "STEP_DEADLINE_SECS", default_value_t = 30)]
    pub step_deadline_secs: u64,
    /// Simulated time from shipment scheduled to dispatched, and from dispatched to delivered,
    /// in milliseconds (the seed's days, time-scaled).
    #[arg(long, env = "DELIVERY_STEP_MS", default_value_t = 2000)]
    pub delivery_step_ms: u64,
    /// Where the AI service keeps its model files (trained there on first start when absent);
    /// `<data-dir>/models` in the embedded mode, `models` otherwise.
    #[arg(long, env = "MODEL_DIR")]
    pub model_dir: Option<std::path::PathBuf>,
    /// How many days the event log keeps events (0: forever); older ones are folded into the
    /// analytics baseline and removed.
    #[arg(long, env = "EVENT_LOG_RETENTION_DAYS", default_value_t = 30)]
    pub event_log_retention_days: u64,
    /// A self-healing policy to switch off (repeatable): stuck-sagas, poison-messages,
    /// circuit-breaker, duration-drift.
    #[arg(long = "self-healing-off", value_enum)]
    pub self_healing_off: Vec<crate::healing::PolicySwitch>,
    /// While the payment gateway's circuit is open, charges wait for it (`wait`) or fail at
    /// once (`fail-fast`, the saga compensates).
    #[arg(long, env = "PAYMENT_BREAKER", value_enum, default_value_t = crate::healing::BreakerMode::Wait)]
    pub payment_breaker: crate::healing::BreakerMode,
    /// The bearer token of the admin actions (replaying and discarding dead letters, also
    /// through the assistant; the payment gateway's outage switch): with it set they answer
    /// 401 unless sent `Authorization: Bearer <token>`. Unset: they are open (a developer's
    /// machine). Its value is never printed.
    #[arg(
        long,
        env = "SAGA_ADMIN_TOKEN",
        hide_env_values = true,
        help_heading = "Security"
    )]
    pub admin_token: Option<String>,
    /// Largest request body any route accepts, in bytes (larger: 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = crate::http::MAX_BODY_BYTES, help_heading = "Security")]
    pub max_body_bytes: usize,
    /// Longest time until a request is answered, reading its body included, in seconds
    /// (longer: 408; the long poll `GET /orders/{id}/wait` gets 70 s).
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        help_heading = "Security"
    )]
    pub request_timeout_secs: u64,
    /// An OpenAI-compatible chat-completions API (`http://localhost:11434/v1`; plain HTTP
    /// only) that picks the assistant's tools and phrases its answers. Without it the
    /// assistant works offline.
    #[arg(long, env = "SAGA_LLM_URL", requires = "llm_model")]
    pub llm_url: Option<String>,
    /// The model the language model API is asked for (with `--llm-url`).
    #[arg(long, env = "SAGA_LLM_MODEL", requires = "llm_url")]
    pub llm_model: Option<String>,
    /// The environment variable holding the language model API's key, sent as a bearer
    /// token when the variable is set (never logged; no key when it is not set).
    #[arg(long, default_value = "SAGA_LLM_API_KEY")]
    pub llm_api_key_env: String,
}

impl BusinessArgs {
    /// The language model's settings, when `--llm-url` is given: the key read from
    /// `--llm-api-key-env`'s variable.
    pub fn llm(&self) -> Option<saga_ai::assistant::llm::LlmConfig> {
        let (url, model) = (self.llm_url.as_ref()?, self.llm_model.as_ref()?);
        let mut config = saga_ai::assistant::llm::LlmConfig::new(url, model);
        config.api_key = std::env::var(&self.llm_api_key_env)
            .ok()
            .filter(|k| !k.is_empty());
        Some(config)
    }
}

/// `reference-app` with no subcommand.
#[derive(Debug, Clone, Args)]
pub struct EmbeddedArgs {
    /// Where the SQLite files of the services and the broker live.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Address to listen on: loopback unless told otherwise (`--host 0.0.0.0` to serve a
    /// network).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port of the web front; the other services take the next seven ports (the seed's
    /// 8000-8007 by default).
    #[arg(long, env = "BASE_PORT", default_value_t = 8000)]
    pub base_port: u16,
    /// `synchronous=FULL` on every SQLite file (survives power loss; slower). The default,
    /// NORMAL, survives a crash of the process.
    #[arg(long)]
    pub sqlite_full_sync: bool,
    /// Business settings.
    #[command(flatten)]
    pub business: BusinessArgs,
}

/// `reference-app serve <service>`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Which service.
    pub service: Service,
    /// Postgres URL; the service keeps its tables in a schema named after it.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// `amqp://...` (RabbitMQ) or `nats://...` (NATS JetStream).
    #[arg(long, env = "BROKER_URL")]
    pub broker_url: Option<String>,
    /// Redis URL: analytics keeps its fast aggregates there too.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Address to listen on: loopback unless told otherwise (`--host 0.0.0.0` to serve a
    /// network).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (the seed's port of the service by default).
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// Prefix of the Postgres schema names (`<prefix><service>_service`), so that several
    /// systems can share one database.
    #[arg(long, env = "SCHEMA_PREFIX", default_value = "")]
    pub schema_prefix: String,
    /// Prefix of broker names (exchange, queues, streams).
    #[arg(long, env = "BROKER_PREFIX", default_value = "saga")]
    pub broker_prefix: String,
    /// Most Postgres connections this process holds.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,
    /// RabbitMQ deletes this system's queues after a minute unused and its exchange with the
    /// last queue (tests and demos; never in production).
    #[arg(long)]
    pub broker_ephemeral: bool,
    /// Where the web front finds the other services (and the AI service's assistant the
    /// order service: `--order-url`).
    #[command(flatten)]
    pub upstreams: Upstreams,
    /// Business settings.
    #[command(flatten)]
    pub business: BusinessArgs,
}

/// The base URLs of the services, for the web front's proxy and the load generator.
#[derive(Debug, Clone, Args)]
pub struct Upstreams {
    /// The order service.
    #[arg(long, env = "ORDER_URL", default_value = "http://127.0.0.1:8001")]
    pub order_url: String,
    /// The inventory service.
    #[arg(long, env = "INVENTORY_URL", default_value = "http://127.0.0.1:8002")]
    pub inventory_url: String,
    /// The payment service.
    #[arg(long, env = "PAYMENT_URL", default_value = "http://127.0.0.1:8003")]
    pub payment_url: String,
    /// The shipping service.
    #[arg(long, env = "SHIPPING_URL", default_value = "http://127.0.0.1:8004")]
    pub shipping_url: String,
    /// The notification service.
    #[arg(
        long,
        env = "NOTIFICATION_URL",
        default_value = "http://127.0.0.1:8005"
    )]
    pub notification_url: String,
    /// The analytics service.
    #[arg(long, env = "ANALYTICS_URL", default_value = "http://127.0.0.1:8006")]
    pub analytics_url: String,
    /// The AI service.
    #[arg(long, env = "AI_URL", default_value = "http://127.0.0.1:8007")]
    pub ai_url: String,
}

/// `reference-app loadgen`.
#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// How many orders to place.
    #[arg(long, default_value_t = 1000)]
    pub orders: u64,
    /// How many orders are in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The order service: one base URL, or several comma-separated (replicas). Orders are
    /// spread over them in turn, and a request that fails is retried on the next one.
    #[arg(
        long,
        env = "ORDER_URL",
        default_value = "http://127.0.0.1:8001",
        value_delimiter = ',',
        num_args = 1..
    )]
    pub order_url: Vec<String>,
    /// The inventory service (for the product list).
    #[arg(long, env = "INVENTORY_URL", default_value = "http://127.0.0.1:8002")]
    pub inventory_url: String,
    /// Seed of the generated orders.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long to wait for one order to reach a terminal status, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// No progress bar (for scripts); the summary is printed either way.
    #[arg(long)]
    pub quiet: bool,
}

/// `reference-app dlq ...`.
#[derive(Debug, Clone, Args)]
pub struct DlqArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: DlqAction,
    /// Where to find the dead letters.
    #[command(flatten)]
    pub target: StorageTarget,
}

/// A dead-letter operation.
#[derive(Debug, Clone, Subcommand)]
pub enum DlqAction {
    /// Lists pending dead letters as JSON lines.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Delivers a dead letter again to its subscription.
    Replay {
        /// The dead letter's id.
        id: uuid::Uuid,
    },
    /// Drops a dead letter for good.
    Discard {
        /// The dead letter's id.
        id: uuid::Uuid,
    },
}

/// `reference-app replay <read-model>`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Which read model to rebuild: `analytics` or `saga-log`.
    pub read_model: String,
    /// Where the event log and the read model live.
    #[command(flatten)]
    pub target: StorageTarget,
}

/// `reference-app check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How long an event may wait unpublished in an outbox before it counts as stuck, in
    /// seconds.
    #[arg(long, default_value_t = 5)]
    pub outbox_lag_secs: u64,
    /// Which system to check.
    #[command(flatten)]
    pub target: StorageTarget,
}

/// Which system an operator command works on: the embedded one (a data directory) or the
/// distributed one (Postgres and a broker).
#[derive(Debug, Clone, Args)]
pub struct StorageTarget {
    /// The embedded system's data directory.
    #[arg(long, env = "DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// Postgres URL of the distributed system (instead of the data directory).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Broker URL of the distributed system.
    #[arg(long, env = "BROKER_URL", global = true)]
    pub broker_url: Option<String>,
    /// Prefix of the Postgres schema names.
    #[arg(long, env = "SCHEMA_PREFIX", default_value = "", global = true)]
    pub schema_prefix: String,
    /// Prefix of broker names.
    #[arg(long, env = "BROKER_PREFIX", default_value = "saga", global = true)]
    pub broker_prefix: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_language_model_key_comes_from_its_variable_and_never_shows() {
        let offline = Cli::parse_from(["reference-app"]);
        assert!(offline.embedded.business.llm().is_none());
        // PATH stands in for the key's variable: set in every test process.
        let path = std::env::var("PATH").unwrap();
        let cli = Cli::parse_from([
            "reference-app",
            "--llm-url",
            "http://127.0.0.1:9/v1",
            "--llm-model",
            "m1",
            "--llm-api-key-env",
            "PATH",
        ]);
        let config = cli.embedded.business.llm().unwrap();
        assert_eq!(config.api_key.as_deref(), Some(path.as_str()));
        assert_eq!(
            (config.url.as_str(), config.model.as_str()),
            ("http://127.0.0.1:9/v1", "m1")
        );
        let settings = crate::context::Settings::from(&cli.embedded.business);
        assert!(!format!("{settings:?}").contains(&path));
        // A URL without a model is refused.
        assert!(Cli::try_parse_from(["reference-app", "--llm-url", "http://x/v1"]).is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_parses_a_service_and_its_urls() {
        let cli = Cli::try_parse_from([
            "reference-app",
            "serve",
            "order",
            "--database-url",
            "postgres://x/y",
            "--broker-url",
            "amqp://g:g@h:5672/%2f",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.service, Service::Order);
        assert_eq!(args.port, None);
        assert!(Cli::try_parse_from(["reference-app", "serve", "billing"]).is_err());
    }

    #[test]
    fn ai_train_takes_a_model_folder() {
        let cli =
            Cli::try_parse_from(["reference-app", "ai", "train", "--model-dir", "/tmp/m"]).unwrap();
        let Some(Command::Ai(AiArgs {
            action: AiAction::Train { model_dir },
        })) = cli.command
        else {
            panic!("not ai train")
        };
        assert_eq!(model_dir, PathBuf::from("/tmp/m"));
        assert!(Cli::try_parse_from(["reference-app", "ai"]).is_err());
    }

    #[test]
    fn loadgen_takes_one_or_several_order_urls() {
        let urls = |args: &[&str]| {
            let cli = Cli::try_parse_from(["reference-app", "loadgen"].iter().chain(args)).unwrap();
            let Some(Command::Loadgen(args)) = cli.command else {
                panic!("not loadgen")
            };
            args.order_url
        };
        assert_eq!(
            urls(&["--order-url", "http://a:1"]),
            ["http://a:1".to_owned()]
        );
        assert_eq!(
            urls(&["--order-url", "http://a:1,http://b:2"]),
            ["http://a:1".to_owned(), "http://b:2".to_owned()]
        );
    }
}
