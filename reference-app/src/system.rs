//! Starting services: all of them in one process on embedded storage, or one of them on
//! Postgres and RabbitMQ or NATS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use saga_brokers::amqp::{AmqpBroker, AmqpConfig};
use saga_brokers::nats::{NatsBroker, NatsConfig};
use saga_brokers::sql::{SqlBroker, SqlOptions};
use saga_core::broker::{DeadLetterReplay, Publisher, Subscriber};
use saga_core::dead_letter::DeadLetterStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::Upstreams;
use crate::consumer::Ready;
use crate::context::{Running, ServiceContext, Settings};
use crate::db::Db;
use crate::error::AppError;
use crate::metrics::AppMetrics;
use crate::operator::{DeadLetterDesk, DistributedTarget};
use crate::services;
use crate::topology::Service;

/// A broker, as the services use it.
#[derive(Clone)]
pub struct Broker {
    /// Publishes.
    pub publisher: Arc<dyn Publisher>,
    /// Subscribes.
    pub subscriber: Arc<dyn Subscriber>,
    /// Hands dead letters back.
    pub replay: Arc<dyn DeadLetterReplay>,
    /// Where dead letters are kept.
    pub dead_letters: Arc<dyn DeadLetterStore>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    fn of<B>(broker: B, dead_letters: Arc<dyn DeadLetterStore>) -> Self
    where
        B: Publisher + Subscriber + DeadLetterReplay + 'static,
    {
        let b = Arc::new(broker);
        Self {
            publisher: b.clone(),
            subscriber: b.clone(),
            replay: b,
            dead_letters,
        }
    }

    /// The embedded broker: the durable `sql` queue in `dir/broker.db`, dead letters in
    /// `dir/dead_letters.db`.
    pub async fn open_embedded(dir: &std::path::Path, full_sync: bool) -> Result<Self, AppError> {
        let dlq = Db::open_sqlite(&dir.join("dead_letters.db"), full_sync).await?;
        let dead_letters = dlq.dead_letters();
        let broker = SqlBroker::open_sqlite(
            dir.join("broker.db"),
            dead_letters.clone(),
            SqlOptions::default().with_sqlite_full_sync(full_sync),
        )
        .await?;
        Ok(Self::of(broker, dead_letters))
    }

    /// RabbitMQ (`amqp://`) or NATS (`nats://`) by URL, names prefixed by `prefix`, dead
    /// letters into `dead_letters`.
    pub async fn connect(
        url: &str,
        prefix: &str,
        connection_name: &str,
        ephemeral: bool,
        dead_letters: Arc<dyn DeadLetterStore>,
    ) -> Result<Self, AppError> {
        if url.starts_with("amqp://") || url.starts_with("amqps://") {
            let mut config = AmqpConfig::new(url)
                .with_exchange(format!("{prefix}.events"))
                .with_connection_name(connection_name);
            if ephemeral {
                config = config.expire_unused_after(Duration::from_secs(60));
            }
            Ok(Self::of(
                AmqpBroker::connect(config, dead_letters.clone())
                    .await
                    .map_err(|e| AppError::connect("RabbitMQ", url, e))?,
                dead_letters,
            ))
        } else if url.starts_with("nats://") {
            let stream = format!("{}_EVENTS", prefix.to_uppercase().replace(['.', '-'], "_"));
            let config = NatsConfig::new(url).with_stream(stream, format!("{prefix}.events"));
            Ok(Self::of(
                NatsBroker::connect(config, dead_letters.clone())
                    .await
                    .map_err(|e| AppError::connect("NATS", url, e))?,
                dead_letters,
            ))
        } else {
            Err(AppError::Config(format!(
                "broker URL `{}` must start with amqp:// (RabbitMQ) or nats:// (NATS)",
                crate::secrets::redact_url(url)
            )))
        }
    }
}

/// Starts one service's consumers and routes on `ctx`.
pub async fn start_service(
    ctx: ServiceContext,
    upstreams: &Upstreams,
) -> Result<Running, AppError> {
    match ctx.service {
        Service::Web => Ok(Running {
            router: services::web::router(services::web::Web::new(upstreams)),
            tasks: Vec::new(),
        }),
        Service::Order => services::order::start(ctx).await,
        Service::Inventory => services::inventory::start(ctx).await,
        Service::Payment => services::payment::start(ctx).await,
        Service::Shipping => services::shipping::start(ctx).await,
        Service::Notification => services::notification::start(ctx).await,
        Service::Analytics => services::analytics::start(ctx).await,
        Service::Ai => services::ai::start(ctx, &upstreams.order_url).await,
    }
}

/// How to run the embedded system.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Where the SQLite files go.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub host: String,
    /// Port of the web front; the others follow. 0: every service on a free port (tests).
    pub base_port: u16,
    /// `synchronous=FULL`.
    pub full_sync: bool,
    /// Business settings.
    pub settings: Settings,
}

/// A running system (embedded, or one distributed service).
#[derive(Debug)]
pub struct System {
    addrs: BTreeMap<Service, SocketAddr>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    relays: Vec<JoinHandle<saga_core::Result<()>>>,
    dbs: BTreeMap<Service, Db>,
    broker: Option<Broker>,
}

impl System {
    /// Where a service listens.
    pub fn addr(&self, service: Service) -> Option<SocketAddr> {
        self.addrs.get(&service).copied()
    }

    /// A service's base URL.
    pub fn url(&self, service: Service) -> String {
        self.addr(service)
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }

    /// A service's database.
    pub fn db(&self, service: Service) -> Option<&Db> {
        self.dbs.get(&service)
    }

    /// The broker (none for a lone web front).
    pub fn broker(&self) -> Option<&Broker> {
        self.broker.as_ref()
    }

    /// The token that stops everything.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops: HTTP servers stop accepting, consumers finish the deliveries in flight, relays
    /// finish their batch; then the databases close.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        for relay in self.relays {
            let _ = relay.await;
        }
        for db in self.dbs.values() {
            db.close().await;
        }
    }

    /// What runs where, for the console.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (svc, addr) in &self.addrs {
            let storage = match self.dbs.get(svc) {
                Some(Db::Sqlite(_)) => "sqlite",
                Some(Db::Postgres { .. }) => "postgres",
                None => "-",
            };
            out.push_str(&format!(
                "  {:<13} http://{addr}  ({storage})\n",
                svc.name()
            ));
        }
        out
    }
}

/// Starts every service in this process on SQLite files and the `sql` broker under
/// `config.data_dir`.
pub async fn start_embedded(config: EmbeddedConfig) -> Result<System, AppError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let shutdown = CancellationToken::new();
    let broker = Broker::open_embedded(&config.data_dir, config.full_sync).await?;
    let settings = Arc::new(config.settings.clone());
    let ready = Ready::new();
    // Bind first, so that the web front knows where everything is (port 0 picks free ports).
    let mut listeners = BTreeMap::new();
    for (i, svc) in Service::ALL.into_iter().enumerate() {
        let port = if config.base_port == 0 {
            0
        } else {
            config.base_port + i as u16
        };
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), port))
            .await
            .map_err(|e| {
                AppError::Config(format!(
                    "cannot listen on {}:{port} for {svc}: {e}",
                    config.host
                ))
            })?;
        listeners.insert(svc, listener);
    }
    let url = |svc: Service| -> String {
        listeners
            .get(&svc)
            .and_then(|l| l.local_addr().ok())
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    };
    let upstreams = Upstreams {
        order_url: url(Service::Order),
        inventory_url: url(Service::Inventory),
        payment_url: url(Service::Payment),
        shipping_url: url(Service::Shipping),
        notification_url: url(Service::Notification),
        analytics_url: url(Service::Analytics),
        ai_url: url(Service::Ai),
    };
    let mut dbs = BTreeMap::new();
    let mut routers = BTreeMap::new();
    let mut tasks = Vec::new();
    let mut all_metrics = BTreeMap::new();
    for svc in Service::ALL {
        let metrics = AppMetrics::new(svc);
        all_metrics.insert(svc, metrics.clone());
        let db = if svc.has_database() {
            let db = Db::open_sqlite(
                &config.data_dir.join(format!("{}.db", svc.name())),
                config.full_sync,
            )
            .await?;
            dbs.insert(svc, db.clone());
            Some(db)
        } else {
            None
        };
        let running = match db {
            Some(db) => {
                let ctx = ServiceContext {
                    service: svc,
                    db,
                    publisher: broker.publisher.clone(),
                    subscriber: broker.subscriber.clone(),
                    settings: settings.clone(),
                    shutdown: shutdown.clone(),
                    replica: format!("{svc}-embedded"),
                    ready: ready.clone(),
                    metrics: metrics.clone(),
                    dead_letters: DeadLetterDesk::of_broker(&broker),
                };
                start_service(ctx, &upstreams).await?
            }
            None => Running {
                router: services::web::router(services::web::Web::new(&upstreams)),
                tasks: Vec::new(),
            },
        };
        tasks.extend(running.tasks);
        routers.insert(svc, running.router);
    }
    if !ready.wait_all(Duration::from_secs(30)).await {
        tracing::warn!("not every subscription came up within 30 s; starting the relays anyway");
    }
    let mut relays = Vec::new();
    for (svc, db) in &dbs {
        let (relay_metrics, relay) = db.spawn_relay(
            broker.publisher.clone(),
            &format!("{svc}-embedded"),
            shutdown.clone(),
        );
        relays.push(relay);
        if let Some(m) = all_metrics.get(svc) {
            tasks.push(tokio::spawn(export_gauges(
                m.clone(),
                relay_metrics,
                (*svc == Service::Order).then(|| broker.dead_letters.clone()),
                shutdown.clone(),
            )));
        }
    }
    let mut addrs = BTreeMap::new();
    for (svc, listener) in listeners {
        addrs.insert(svc, listener.local_addr()?);
        let router = routers.remove(&svc).unwrap_or_default();
        let metrics = all_metrics
            .get(&svc)
            .cloned()
            .unwrap_or_else(|| AppMetrics::new(svc));
        tasks.push(serve_http(
            svc,
            listener,
            router,
            metrics,
            config.settings.http,
            shutdown.clone(),
        ));
    }
    Ok(System {
        addrs,
        shutdown,
        tasks,
        relays,
        dbs,
        broker: Some(broker),
    })
}

/// Serves `router` on `listener` until `shutdown`, letting requests in flight finish; adds the
/// service's `/metrics/prometheus` and `/openapi.json` and the limits of every route
/// ([`crate::http::finish`]).
///
/// HTTP/1 through hyper's connection builder rather than `axum::serve`, for one setting
/// `axum::serve` does not offer: a client must send a request's headers within
/// `limits.request_timeout` (hyper's header-read timeout, which needs a timer), so a connection
/// whose headers trickle in, or that idles between requests that long, is closed.
pub fn serve_http(
    service: Service,
    listener: tokio::net::TcpListener,
    router: Router,
    metrics: AppMetrics,
    limits: crate::http::HttpLimits,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let router = router
        .merge(crate::metrics::router(metrics.clone()))
        .merge(crate::openapi::router(service));
    let router = crate::http::finish(router, limits).layer(axum::middleware::from_fn_with_state(
        metrics,
        crate::metrics::track,
    ));
    tokio::spawn(async move {
        let connections = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, as axum::serve does.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.request_timeout)
                .serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(router.clone()),
                );
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "http: connection ended");
                }
            });
        }
        // Stop accepting; the connections finish the requests they are answering, then close.
        drop(listener);
        connections.shutdown().await;
    })
}

/// How to run one service of the distributed system.
#[derive(Debug, Clone)]
pub struct DistributedConfig {
    /// Which service.
    pub service: Service,
    /// Postgres URL (not needed by the web front).
    pub database_url: Option<String>,
    /// Broker URL (not needed by the web front).
    pub broker_url: Option<String>,
    /// Address to listen on.
    pub host: String,
    /// Port (0: a free one).
    pub port: u16,
    /// Prefix of the schema name.
    pub schema_prefix: String,
    /// Prefix of broker names.
    pub broker_prefix: String,
    /// RabbitMQ removes unused queues after a minute (tests).
    pub broker_ephemeral: bool,
    /// Most Postgres connections.
    pub db_max_connections: u32,
    /// Where the web front finds the others, and the AI service's assistant the order
    /// service.
    pub upstreams: Upstreams,
    /// Business settings.
    pub settings: Settings,
}

/// Starts one service on Postgres and RabbitMQ or NATS.
pub async fn start_distributed(config: DistributedConfig) -> Result<System, AppError> {
    let svc = config.service;
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| {
            AppError::Config(format!(
                "cannot listen on {}:{} for {svc}: {e}",
                config.host, config.port
            ))
        })?;
    let replica = format!("{svc}-{}", uuid::Uuid::now_v7().simple());
    let metrics = AppMetrics::new(svc);
    let mut dbs = BTreeMap::new();
    let mut extra = Vec::new();
    let (running, broker, relays) = if svc.has_database() {
        let url = config.database_url.as_deref().ok_or_else(|| {
            AppError::Config(format!("the {svc} service needs --database-url (Postgres)"))
        })?;
        let broker_url = config.broker_url.as_deref().ok_or_else(|| {
            AppError::Config(format!(
                "the {svc} service needs --broker-url (amqp:// or nats://)"
            ))
        })?;
        let db = Db::connect_postgres(
            url,
            &svc.schema(&config.schema_prefix),
            config.db_max_connections,
        )
        .await?;
        dbs.insert(svc, db.clone());
        let broker = Broker::connect(
            broker_url,
            &config.broker_prefix,
            &replica,
            config.broker_ephemeral,
            db.dead_letters(),
        )
        .await?;
        let ready = Ready::new();
        let ctx = ServiceContext {
            service: svc,
            db: db.clone(),
            publisher: broker.publisher.clone(),
            subscriber: broker.subscriber.clone(),
            settings: Arc::new(config.settings.clone()),
            shutdown: shutdown.clone(),
            replica: replica.clone(),
            ready: ready.clone(),
            metrics: metrics.clone(),
            dead_letters: DeadLetterDesk::distributed(DistributedTarget {
                database_url: url.to_owned(),
                broker_url: broker_url.to_owned(),
                schema_prefix: config.schema_prefix.clone(),
                broker_prefix: config.broker_prefix.clone(),
                connection_name: format!("{replica}-operator"),
                broker_ephemeral: config.broker_ephemeral,
            }),
        };
        let running = start_service(ctx, &config.upstreams).await?;
        if !ready.wait_all(Duration::from_secs(30)).await {
            tracing::warn!("not every subscription came up within 30 s; starting the relay anyway");
        }
        let (relay_metrics, relay) =
            db.spawn_relay(broker.publisher.clone(), &replica, shutdown.clone());
        extra.push(tokio::spawn(export_gauges(
            metrics.clone(),
            relay_metrics,
            Some(broker.dead_letters.clone()),
            shutdown.clone(),
        )));
        (running, Some(broker), vec![relay])
    } else {
        let running = Running {
            router: services::web::router(services::web::Web::new(&config.upstreams)),
            tasks: Vec::new(),
        };
        (running, None, Vec::new())
    };
    let mut tasks = running.tasks;
    tasks.extend(extra);
    let addr = listener.local_addr()?;
    tasks.push(serve_http(
        svc,
        listener,
        running.router,
        metrics,
        config.settings.http,
        shutdown.clone(),
    ));
    Ok(System {
        addrs: BTreeMap::from([(svc, addr)]),
        shutdown,
        tasks,
        relays,
        dbs,
        broker,
    })
}

/// Copies the relay's counters and the dead-letter count into the Prometheus gauges, every
/// second.
async fn export_gauges(
    metrics: AppMetrics,
    relay: Arc<saga_outbox::RelayMetrics>,
    dead_letters: Option<Arc<dyn DeadLetterStore>>,
    shutdown: CancellationToken,
) {
    let mut published = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let snap = relay.snapshot();
        metrics.event_published(snap.published.saturating_sub(published));
        published = snap.published;
        metrics.set_outbox_lag(snap.lag_micros as f64 / 1e6);
        if let Some(store) = &dead_letters
            && let Ok(n) = store.pending_count().await
        {
            metrics.set_dead_letters_pending(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}
