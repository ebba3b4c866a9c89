//! Operator commands: dead letters (`dlq list|replay|discard`) and read-model rebuilds
//! (`replay <read-model>`), on the embedded system (a data directory) or the distributed one
//! (Postgres schemas and a broker).

use saga_core::dead_letter::{DeadLetterFilter, DeadLetterStatus};

use crate::cli::{DlqAction, DlqArgs, ReplayArgs, StorageTarget};
use crate::db::Db;
use crate::error::AppError;
use crate::services;
use crate::system::Broker;
use crate::topology::Service;

/// Where one service's dead letters live, with the broker that can replay them.
struct Target {
    db: Db,
    broker: Broker,
}

async fn targets(target: &StorageTarget) -> Result<Vec<Target>, AppError> {
    match &target.database_url {
        None => {
            if !target.data_dir.join("broker.db").exists() {
                return Err(AppError::Config(format!(
                    "no embedded system in {} (no broker.db): pass --data-dir, or --database-url \
                     and --broker-url for the distributed system",
                    target.data_dir.display()
                )));
            }
            let broker = Broker::open_embedded(&target.data_dir, false).await?;
            let db = Db::open_sqlite(&target.data_dir.join("dead_letters.db"), false).await?;
            Ok(vec![Target { db, broker }])
        }
        Some(url) => {
            let broker_url = target.broker_url.as_deref().ok_or_else(|| {
                AppError::Config("the distributed system needs --broker-url too".into())
            })?;
            let mut out = Vec::new();
            for svc in Service::ALL.into_iter().filter(|s| s.has_database()) {
                let db = Db::connect_postgres(url, &svc.schema(&target.schema_prefix), 2).await?;
                let broker = Broker::connect(
                    broker_url,
                    &target.broker_prefix,
                    "reference-app-dlq",
                    false,
                    db.dead_letters(),
                )
                .await?;
                out.push(Target { db, broker });
            }
            Ok(out)
        }
    }
}

/// `reference-app dlq ...`: prints JSON lines (list) or what was done.
pub async fn dlq(args: &DlqArgs) -> anyhow::Result<()> {
    let targets = targets(&args.target).await?;
    match &args.action {
        DlqAction::List { limit } => {
            let filter = DeadLetterFilter {
                status: Some(DeadLetterStatus::Pending),
                limit: Some(*limit),
                ..DeadLetterFilter::default()
            };
            let mut n = 0;
            for t in &targets {
                for letter in t.db.dead_letters().list(&filter).await? {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": letter.id,
                            "subscription": letter.subscription,
                            "event_type": letter.envelope.event_type,
                            "aggregate_id": letter.envelope.aggregate_id,
                            "reason": letter.reason,
                            "attempts": letter.attempts,
                            "last_error": letter.last_error,
                            "dead_lettered_at": letter.dead_lettered_at,
                        })
                    );
                    n += 1;
                }
            }
            eprintln!("{n} pending dead letter(s)");
        }
        DlqAction::Replay { id } | DlqAction::Discard { id } => {
            let replay = matches!(args.action, DlqAction::Replay { .. });
            for t in &targets {
                if t.db.dead_letters().get(*id).await.is_err() {
                    continue;
                }
                let done = if replay {
                    t.broker.replay.replay_dead_letter(*id).await?
                } else {
                    t.broker.replay.discard_dead_letter(*id).await?
                };
                let verb = if replay { "replayed" } else { "discarded" };
                if done {
                    println!("dead letter {id} {verb}");
                } else {
                    println!("dead letter {id} was not pending: nothing done");
                }
                return Ok(());
            }
            anyhow::bail!("no dead letter {id}");
        }
    }
    Ok(())
}

/// `reference-app replay <read-model>`: rebuilds it from the event log and prints the
/// figures.
pub async fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let db = match &args.target.database_url {
        None => {
            let path = args.target.data_dir.join("analytics.db");
            if !path.exists() {
                anyhow::bail!("no embedded system in {}", args.target.data_dir.display());
            }
            Db::open_sqlite(&path, false).await?
        }
        Some(url) => {
            Db::connect_postgres(
                url,
                &Service::Analytics.schema(&args.target.schema_prefix),
                2,
            )
            .await?
        }
    };
    match args.read_model.as_str() {
        "analytics" => {
            let folded = services::analytics::rebuild(&db).await?;
            let figures = services::analytics::figures(&db).await?;
            eprintln!("rebuilt analytics from {folded} logged event(s)");
            println!("{}", serde_json::to_string_pretty(&figures)?);
        }
        "saga-log" => {
            let order = match &args.target.database_url {
                None => Db::open_sqlite(&args.target.data_dir.join("order.db"), false).await?,
                Some(url) => {
                    Db::connect_postgres(url, &Service::Order.schema(&args.target.schema_prefix), 2)
                        .await?
                }
            };
            let n = services::order::rebuild_saga_log(&order, &db).await?;
            println!("rebuilt the saga log from {n} logged event(s)");
        }
        other => anyhow::bail!("unknown read model `{other}` (analytics or saga-log)"),
    }
    Ok(())
}
