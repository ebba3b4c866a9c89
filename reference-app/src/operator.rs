//! Operator commands: dead letters (`dlq list|replay|discard`) and read-model rebuilds
//! (`replay <read-model>`), on the embedded system (a data directory) or the distributed one
//! (Postgres schemas and a broker).

use std::sync::Arc;

use saga_core::broker::DeadLetterReplay;
use saga_core::dead_letter::{DeadLetter, DeadLetterFilter, DeadLetterStatus, DeadLetterStore};
use tokio::sync::OnceCell;

use saga_outbox::postgres::{PgOptions, PgStore};

use crate::cli::{DlqAction, DlqArgs, ReplayArgs, StorageTarget};
use crate::db::Db;
use crate::error::AppError;
use crate::services;
use crate::system::Broker;
use crate::topology::Service;

/// One store of dead letters, with the broker that replays them (once known).
struct Source {
    store: Arc<dyn DeadLetterStore>,
    replay: OnceCell<Arc<dyn DeadLetterReplay>>,
}

impl From<&Broker> for Source {
    fn from(broker: &Broker) -> Self {
        Self {
            store: broker.dead_letters.clone(),
            replay: OnceCell::new_with(Some(broker.replay.clone())),
        }
    }
}

/// Where the distributed system keeps its dead letters: each service's Postgres schema, and
/// the broker.
#[derive(Debug, Clone)]
pub struct DistributedTarget {
    /// The Postgres URL.
    pub database_url: String,
    /// The broker URL (`amqp://` or `nats://`).
    pub broker_url: String,
    /// Prefix of the schema names.
    pub schema_prefix: String,
    /// Prefix of the broker's names.
    pub broker_prefix: String,
    /// Names the broker connections.
    pub connection_name: String,
    /// RabbitMQ removes unused queues after a minute (tests).
    pub broker_ephemeral: bool,
}

impl DistributedTarget {
    /// Every service's dead-letter store, on one database connection each (reading and
    /// settling dead letters takes one at a time); their brokers come when first needed.
    async fn connect(&self) -> Result<Vec<Source>, AppError> {
        let mut out = Vec::new();
        for svc in Service::ALL.into_iter().filter(|s| s.has_database()) {
            let store = PgStore::connect(
                PgOptions::new(&self.database_url)
                    .with_schema(svc.schema(&self.schema_prefix))
                    .with_max_connections(1),
            )
            .await
            .map_err(|e| AppError::connect("Postgres", &self.database_url, e))?;
            out.push(Source {
                store: Arc::new(store),
                replay: OnceCell::new(),
            });
        }
        Ok(out)
    }

    /// A broker that replays the dead letters of `store`.
    async fn broker_for(
        &self,
        store: Arc<dyn DeadLetterStore>,
    ) -> Result<Arc<dyn DeadLetterReplay>, AppError> {
        let broker = Broker::connect(
            &self.broker_url,
            &self.broker_prefix,
            &self.connection_name,
            self.broker_ephemeral,
            store,
        )
        .await?;
        Ok(broker.replay)
    }
}

/// What an operator's replay or discard did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done: replayed (delivered again to its subscription) or discarded.
    Done,
    /// The letter was replayed or discarded before: nothing was done.
    NotPending,
    /// No store knows the id.
    Unknown,
}

/// The dead letters of a whole system, and the brokers that hand them back: what
/// `reference-app dlq` and the order service's `/dead-letters` routes work on.
///
/// The embedded system keeps every service's dead letters in one store beside its broker.
/// The distributed one keeps them in each service's schema: the desk connects to those on
/// first use (one connection each), and to the broker for a schema's letters when the first
/// of them is replayed or discarded, so a service that never serves an operator opens
/// nothing.
#[derive(Clone)]
pub struct DeadLetterDesk {
    sources: Arc<Sources>,
}

enum Sources {
    Open(Vec<Source>),
    Lazy {
        target: DistributedTarget,
        opened: OnceCell<Vec<Source>>,
    },
}

impl std::fmt::Debug for DeadLetterDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterDesk").finish_non_exhaustive()
    }
}

impl DeadLetterDesk {
    /// The dead letters of `broker`'s store (the embedded system's one store).
    pub fn of_broker(broker: &Broker) -> Self {
        Self {
            sources: Arc::new(Sources::Open(vec![Source::from(broker)])),
        }
    }

    /// The distributed system's dead letters, connected on first use.
    pub fn distributed(target: DistributedTarget) -> Self {
        Self {
            sources: Arc::new(Sources::Lazy {
                target,
                opened: OnceCell::new(),
            }),
        }
    }

    /// What `target` names: an embedded system's data directory (opened now), or the
    /// distributed system (connected on first use).
    pub async fn open(target: &StorageTarget) -> Result<Self, AppError> {
        match &target.database_url {
            None => {
                if !target.data_dir.join("broker.db").exists() {
                    return Err(AppError::Config(format!(
                        "no embedded system in {} (no broker.db): pass --data-dir, or \
                         --database-url and --broker-url for the distributed system",
                        target.data_dir.display()
                    )));
                }
                let broker = Broker::open_embedded(&target.data_dir, false).await?;
                Ok(Self::of_broker(&broker))
            }
            Some(url) => {
                let broker_url = target.broker_url.clone().ok_or_else(|| {
                    AppError::Config("the distributed system needs --broker-url too".into())
                })?;
                Ok(Self::distributed(DistributedTarget {
                    database_url: url.clone(),
                    broker_url,
                    schema_prefix: target.schema_prefix.clone(),
                    broker_prefix: target.broker_prefix.clone(),
                    connection_name: "reference-app-dlq".into(),
                    broker_ephemeral: false,
                }))
            }
        }
    }

    async fn sources(&self) -> Result<&[Source], AppError> {
        match &*self.sources {
            Sources::Open(sources) => Ok(sources),
            Sources::Lazy { target, opened } => Ok(opened
                .get_or_try_init(|| target.connect())
                .await?
                .as_slice()),
        }
    }

    /// The dead letters `filter` selects, oldest first, from every store.
    pub async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, AppError> {
        let mut all = Vec::new();
        for source in self.sources().await? {
            all.extend(source.store.list(filter).await?);
        }
        all.sort_by_key(|d| (d.dead_lettered_at, d.id));
        if let Some(limit) = filter.limit {
            all.truncate(limit);
        }
        Ok(all)
    }

    /// One dead letter, if a store knows it.
    pub async fn get(&self, id: uuid::Uuid) -> Result<Option<DeadLetter>, AppError> {
        Ok(self.find(id).await?.map(|(letter, _)| letter))
    }

    async fn find(&self, id: uuid::Uuid) -> Result<Option<(DeadLetter, &Source)>, AppError> {
        for source in self.sources().await? {
            match source.store.get(id).await {
                Ok(letter) => return Ok(Some((letter, source))),
                Err(e) if e.kind() == saga_core::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Delivers a pending dead letter again, to its own subscription only.
    pub async fn replay(&self, id: uuid::Uuid) -> Result<Handled, AppError> {
        self.settle(id, true).await
    }

    /// Drops a pending dead letter (its key's later messages flow on).
    pub async fn discard(&self, id: uuid::Uuid) -> Result<Handled, AppError> {
        self.settle(id, false).await
    }

    async fn settle(&self, id: uuid::Uuid, replay: bool) -> Result<Handled, AppError> {
        let Some((_, source)) = self.find(id).await? else {
            return Ok(Handled::Unknown);
        };
        let broker = source
            .replay
            .get_or_try_init(|| async {
                match &*self.sources {
                    Sources::Lazy { target, .. } => target.broker_for(source.store.clone()).await,
                    // Opened with its broker.
                    Sources::Open(_) => Err(AppError::Config(
                        "a dead-letter store without its broker".into(),
                    )),
                }
            })
            .await?;
        let done = if replay {
            broker.replay_dead_letter(id).await?
        } else {
            broker.discard_dead_letter(id).await?
        };
        Ok(if done {
            Handled::Done
        } else {
            Handled::NotPending
        })
    }
}

/// `reference-app dlq ...`: prints JSON lines (list) or what was done.
pub async fn dlq(args: &DlqArgs) -> anyhow::Result<()> {
    let desk = DeadLetterDesk::open(&args.target).await?;
    match &args.action {
        DlqAction::List { limit } => {
            let filter = DeadLetterFilter {
                status: Some(DeadLetterStatus::Pending),
                limit: Some(*limit),
                ..DeadLetterFilter::default()
            };
            let letters = desk.list(&filter).await?;
            for letter in &letters {
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
            }
            eprintln!("{} pending dead letter(s)", letters.len());
        }
        DlqAction::Replay { id } | DlqAction::Discard { id } => {
            let replay = matches!(args.action, DlqAction::Replay { .. });
            let handled = if replay {
                desk.replay(*id).await?
            } else {
                desk.discard(*id).await?
            };
            let verb = if replay { "replayed" } else { "discarded" };
            match handled {
                Handled::Done => println!("dead letter {id} {verb}"),
                Handled::NotPending => println!("dead letter {id} was not pending: nothing done"),
                Handled::Unknown => anyhow::bail!("no dead letter {id}"),
            }
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
