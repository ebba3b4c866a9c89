//! Shared test helpers: fresh SQLite files and fresh Postgres schemas, removed afterwards.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use saga_core::ManualClock;
use saga_core::clock::SharedClock;

/// A fresh SQLite store in its own temporary directory (deleted when the guard drops).
#[cfg(feature = "sqlite")]
pub async fn sqlite_store(
    clock: SharedClock,
) -> (saga_outbox::sqlite::SqliteStore, tempfile::TempDir) {
    use saga_outbox::sqlite::{SqliteOptions, SqliteStore};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = SqliteStore::open(
        SqliteOptions::new(dir.path().join("test.db"))
            .with_prefix("svc_")
            .with_clock(clock),
    )
    .await
    .unwrap_or_else(|e| panic!("open sqlite: {e}"));
    (store, dir)
}

/// `DATABASE_URL`, or `None` after printing the SKIP line (outside CI).
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: DATABASE_URL not set but CI=true");
            }
            eprintln!("SKIP {test}: DATABASE_URL not set");
            None
        }
    }
}

/// Drops its schema when dropped (on a thread of its own, so it works inside a runtime).
#[derive(Debug)]
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
}

#[cfg(feature = "postgres")]
impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// A fresh schema name.
pub fn schema_name() -> String {
    format!("t_{}", uuid::Uuid::now_v7().simple())
}

/// A fresh Postgres store in a new schema, with its guard.
#[cfg(feature = "postgres")]
pub async fn pg_store(
    url: &str,
    clock: SharedClock,
    partitions: u16,
) -> (saga_outbox::postgres::PgStore, Arc<SchemaGuard>) {
    let schema = schema_name();
    let guard = Arc::new(SchemaGuard {
        url: url.to_owned(),
        schema: schema.clone(),
    });
    let store = pg_connect(url, &schema, clock, partitions).await;
    (store, guard)
}

/// A fresh Postgres store in a new schema, with its guard, connected with the options `f`
/// makes of the default ones (the schema already set).
#[cfg(feature = "postgres")]
pub async fn pg_store_with(
    url: &str,
    f: impl FnOnce(saga_outbox::postgres::PgOptions) -> saga_outbox::postgres::PgOptions,
) -> (saga_outbox::postgres::PgStore, SchemaGuard) {
    let schema = schema_name();
    let guard = SchemaGuard {
        url: url.to_owned(),
        schema: schema.clone(),
    };
    let store = saga_outbox::postgres::PgStore::connect(f(saga_outbox::postgres::PgOptions::new(
        url,
    )
    .with_schema(&schema)))
    .await
    .unwrap_or_else(|e| panic!("connect postgres: {e}"));
    (store, guard)
}

/// Another store on an existing schema (another "process").
#[cfg(feature = "postgres")]
pub async fn pg_connect(
    url: &str,
    schema: &str,
    clock: SharedClock,
    partitions: u16,
) -> saga_outbox::postgres::PgStore {
    use saga_outbox::postgres::{PgOptions, PgStore};
    PgStore::connect(
        PgOptions::new(url)
            .with_schema(schema)
            .with_max_connections(8)
            .with_partitions(partitions)
            .with_clock(clock),
    )
    .await
    .unwrap_or_else(|e| panic!("connect postgres: {e}"))
}

pub fn manual() -> (ManualClock, SharedClock) {
    let clock = ManualClock::at_epoch();
    let shared: SharedClock = Arc::new(clock.clone());
    (clock, shared)
}
