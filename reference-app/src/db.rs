//! A service's database: a SQLite file (embedded mode) or a Postgres schema (distributed mode).
//!
//! The services write their SQL once, in the dialect both databases accept (`$1` parameters,
//! `BIGINT` and `TEXT` columns, `INSERT ... ON CONFLICT`), and run it on the unit of work of
//! whichever store they were given. [`with_db!`](crate::with_db) expands a block once per
//! database type, so the same text is compiled against `UnitOfWork<Sqlite>` and
//! `UnitOfWork<Postgres>`; that is the one place the two differ (docs/decisions/0010).

use std::path::Path;
use std::sync::Arc;

use saga_core::broker::Publisher;
use saga_core::dead_letter::DeadLetterStore;
use saga_core::saga::{SagaLogStore, SagaStore};
use saga_outbox::postgres::{LeaseConfig, PgOptions, PgRelaySource, PgStore};
use saga_outbox::sqlite::{Durability, SqliteOptions, SqliteRelaySource, SqliteStore};
use saga_outbox::{Relay, RelayConfig, RelayMetrics};
use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::AppError;

/// One service's stores and business tables.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite file of its own.
    Sqlite(SqliteStore),
    /// A schema of its own in a Postgres database.
    Postgres {
        /// The stores.
        store: PgStore,
        /// The schema, qualifying the business tables.
        schema: String,
    },
}

/// Runs a block with `$store` bound to the concrete store of `$db` (`&SqliteStore` or
/// `&PgStore`); the block is compiled once per database.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $store:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($store) => $body,
            $crate::db::Db::Postgres { store: $store, .. } => $body,
        }
    };
}

impl Db {
    /// Opens (creating it if missing) a SQLite file for one service.
    pub async fn open_sqlite(path: &Path, full_sync: bool) -> Result<Self, AppError> {
        let options = SqliteOptions::new(path).with_durability(if full_sync {
            Durability::Full
        } else {
            Durability::Normal
        });
        Ok(Db::Sqlite(SqliteStore::open(options).await?))
    }

    /// Connects to Postgres with the service's tables in `schema` (created if missing).
    pub async fn connect_postgres(
        url: &str,
        schema: &str,
        max_connections: u32,
    ) -> Result<Self, AppError> {
        saga_outbox::names::validate_ident(schema, false)?;
        let store = PgStore::connect(
            PgOptions::new(url)
                .with_schema(schema)
                .with_max_connections(max_connections.max(2)),
        )
        .await
        .map_err(|e| AppError::connect("Postgres", url, e))?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(store.write_pool())
        .await?;
        Ok(Db::Postgres {
            store,
            schema: schema.to_owned(),
        })
    }

    /// The qualified name of a business table.
    pub fn table(&self, name: &str) -> String {
        match self {
            Db::Sqlite(_) => name.to_owned(),
            Db::Postgres { schema, .. } => format!("{schema}.{name}"),
        }
    }

    /// Runs the service's `CREATE TABLE IF NOT EXISTS ...` statements (each with `{t}` where a
    /// table name goes, filled by [`Db::table`] with the name after it: `{t}orders`).
    ///
    /// On Postgres they run in one transaction holding an advisory lock keyed by the schema:
    /// two replicas of a service starting at once would otherwise race, and Postgres's
    /// `CREATE TABLE IF NOT EXISTS` is not safe against a concurrent one (the loser fails on
    /// a unique index of the catalog and the replica does not start).
    pub async fn migrate(&self, statements: &[&str]) -> Result<(), AppError> {
        match self {
            Db::Sqlite(store) => {
                for statement in statements {
                    sqlx::query(self.qualify(statement))
                        .execute(store.write_pool())
                        .await?;
                }
            }
            Db::Postgres { store, schema } => {
                let mut tx = store.write_pool().begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("reference-app:{schema}"))
                    .execute(&mut *tx)
                    .await?;
                for statement in statements {
                    sqlx::query(self.qualify(statement))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Replaces every `{t}name` in `sql` with the qualified table name. The schema is a
    /// checked identifier and the statements are the services' constants, so the result is
    /// safe to run.
    pub fn qualify(&self, sql: &str) -> SqlStr {
        let text = match self {
            Db::Sqlite(_) => sql.replace("{t}", ""),
            Db::Postgres { schema, .. } => sql.replace("{t}", &format!("{schema}.")),
        };
        AssertSqlSafe(text).into_sql_str()
    }

    /// The saga store.
    pub fn sagas(&self) -> Arc<dyn SagaStore> {
        with_db!(self, store => Arc::new(store.clone()))
    }

    /// The saga log store.
    pub fn saga_log(&self) -> Arc<dyn SagaLogStore> {
        with_db!(self, store => Arc::new(store.clone()))
    }

    /// The dead-letter store.
    pub fn dead_letters(&self) -> Arc<dyn DeadLetterStore> {
        with_db!(self, store => Arc::new(store.clone()))
    }

    /// Starts the outbox relay of this store, publishing into `publisher` until `shutdown`.
    /// On Postgres, replicas of one service share the outbox by leased partitions; `owner`
    /// names this replica.
    pub fn spawn_relay(
        &self,
        publisher: Arc<dyn Publisher>,
        owner: &str,
        shutdown: CancellationToken,
    ) -> (Arc<RelayMetrics>, JoinHandle<saga_core::Result<()>>) {
        let config = RelayConfig {
            retention: Some(std::time::Duration::from_secs(3600)),
            ..RelayConfig::default()
        };
        match self {
            Db::Sqlite(store) => {
                let relay = Relay::new(SqliteRelaySource::new(store.clone()), publisher, config);
                (relay.metrics(), relay.spawn(shutdown))
            }
            Db::Postgres { store, .. } => {
                let source = PgRelaySource::new(store.clone(), LeaseConfig::new(owner));
                let relay = Relay::new(source, publisher, config);
                (relay.metrics(), relay.spawn(shutdown))
            }
        }
    }

    /// Closes the pools.
    pub async fn close(&self) {
        with_db!(self, store => store.close().await)
    }
}
