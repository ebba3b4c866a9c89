//! `reference-app`: the order system of the seed, built from the saga crates.
//!
//! ```text
//! reference-app                          every service in one process (SQLite + sql broker in ./data)
//! reference-app serve <service> ...      one service on Postgres and RabbitMQ or NATS
//! reference-app loadgen --orders N ...   drive the HTTP API, print a JSON summary
//! reference-app dlq list|replay|discard  dead letters
//! reference-app replay <read-model>      rebuild a read model from the event log
//! reference-app check [--json]           check the business invariants
//! reference-app ai train [--model-dir D] train the AI service's model files
//! ```

use anyhow::Context;
use clap::Parser;
use reference_app::cli::{AiAction, Cli, Command};
use reference_app::context::Settings;
use reference_app::operator;
use reference_app::system::{self, DistributedConfig, EmbeddedConfig};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let otlp = init_tracing(&cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(run(cli));
    drop(runtime);
    #[cfg(feature = "otlp")]
    if let Some(otlp) = otlp
        && let Err(e) = otlp.shutdown()
    {
        eprintln!("reference-app: {e}");
    }
    #[cfg(not(feature = "otlp"))]
    let _: Option<()> = otlp;
    result
}

#[cfg(feature = "otlp")]
type Exporter = reference_app::otlp::Otlp;
#[cfg(not(feature = "otlp"))]
type Exporter = ();

/// The log on stderr (`RUST_LOG`, info by default; the saga spans left out) and, with
/// `--otlp-endpoint`, the OTLP exporter of the saga spans.
fn init_tracing(cli: &Cli) -> anyhow::Result<Option<Exporter>> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,lapin=warn,async_nats=warn,saga_trace=off".into());
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    #[cfg(feature = "otlp")]
    {
        let service = match &cli.command {
            Some(Command::Serve(args)) => args.service.name(),
            _ => "embedded",
        };
        let otlp = cli
            .otlp_endpoint
            .as_deref()
            .map(|endpoint| reference_app::otlp::Otlp::new(endpoint, service))
            .transpose()?;
        tracing_subscriber::registry()
            .with(log)
            .with(otlp.as_ref().map(|o| o.layer()))
            .init();
        if let Some(o) = &otlp {
            tracing::info!(
                endpoint = o.endpoint(),
                "exporting the saga spans over OTLP"
            );
        }
        Ok(otlp)
    }
    #[cfg(not(feature = "otlp"))]
    {
        if let Some(endpoint) = &cli.otlp_endpoint {
            anyhow::bail!(
                "--otlp-endpoint {endpoint}: this build has no OTLP exporter \
                 (build with `--features otlp`)"
            );
        }
        tracing_subscriber::registry().with(log).init();
        Ok(None)
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => {
            let args = cli.embedded;
            let config = EmbeddedConfig {
                data_dir: args.data_dir.clone(),
                host: args.host.clone(),
                base_port: args.base_port,
                full_sync: args.sqlite_full_sync,
                settings: Settings {
                    model_dir: args
                        .business
                        .model_dir
                        .clone()
                        .unwrap_or_else(|| args.data_dir.join("models")),
                    ..Settings::from(&args.business)
                },
            };
            let system = system::start_embedded(config)
                .await
                .context("starting the embedded system")?;
            println!(
                "reference-app: every service in one process, data in {} (SQLite, sql broker)\n{}\
                 open {} for the dashboard; Ctrl-C stops (in-flight work drains first)",
                args.data_dir.display(),
                system.describe(),
                system.url(reference_app::topology::Service::Web),
            );
            wait_for_signal().await;
            eprintln!("reference-app: stopping");
            system.stop().await;
            Ok(())
        }
        Some(Command::Serve(args)) => {
            let config = DistributedConfig {
                service: args.service,
                database_url: args.database_url.clone(),
                broker_url: args.broker_url.clone(),
                host: args.host.clone(),
                port: args.port.unwrap_or(args.service.default_port()),
                schema_prefix: args.schema_prefix.clone(),
                broker_prefix: args.broker_prefix.clone(),
                broker_ephemeral: args.broker_ephemeral,
                db_max_connections: args.db_max_connections,
                upstreams: args.upstreams.clone(),
                settings: Settings {
                    redis_url: args.redis_url.clone(),
                    redis_prefix: args.broker_prefix.clone(),
                    ..Settings::from(&args.business)
                },
            };
            let system = system::start_distributed(config)
                .await
                .with_context(|| format!("starting the {} service", args.service))?;
            println!("reference-app: serving\n{}", system.describe());
            wait_for_signal().await;
            eprintln!("reference-app: stopping {}", args.service);
            system.stop().await;
            Ok(())
        }
        Some(Command::Loadgen(args)) => {
            let summary = reference_app::loadgen::run(&args).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Some(Command::Dlq(args)) => operator::dlq(&args).await,
        Some(Command::Replay(args)) => operator::replay(&args).await,
        Some(Command::Check(args)) => match reference_app::check::run(&args).await? {
            true => Ok(()),
            false => anyhow::bail!("invariants violated (see the report above)"),
        },
        Some(Command::Ai(args)) => match args.action {
            AiAction::Train { model_dir } => {
                let models =
                    reference_app::ai::AiEngine::train_files(&model_dir, |m| eprintln!("ai: {m}"))
                        .await
                        .with_context(|| {
                            format!("training the models in {}", model_dir.display())
                        })?;
                println!("{}", serde_json::to_string_pretty(&models)?);
                Ok(())
            }
        },
    }
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
