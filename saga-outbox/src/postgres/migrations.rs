//! The Postgres schema, as versioned migrations applied once each (recorded in
//! `"schema".schema_migrations`) under an advisory lock, so concurrent starts do not race.

use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::names::Tables;
use crate::sql::error::db_err;

/// `(version, SQL template)`, in order. Never edit a released one: add a new version.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS {outbox} (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        part INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        published_at BIGINT
    );
    CREATE INDEX IF NOT EXISTS outbox_pending ON {outbox} (seq) WHERE published_at IS NULL;
    CREATE INDEX IF NOT EXISTS outbox_published ON {outbox} (published_at)
        WHERE published_at IS NOT NULL;
    CREATE TABLE IF NOT EXISTS {inbox} (
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        processed_at BIGINT NOT NULL,
        PRIMARY KEY (consumer, event_id)
    );
    CREATE TABLE IF NOT EXISTS {sagas} (
        id TEXT PRIMARY KEY,
        saga TEXT NOT NULL,
        status TEXT NOT NULL,
        terminal INTEGER NOT NULL,
        deadline BIGINT,
        version BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS sagas_due ON {sagas} (deadline, id)
        WHERE terminal = 0 AND deadline IS NOT NULL;
    CREATE INDEX IF NOT EXISTS sagas_created ON {sagas} (created_at, id);
    CREATE TABLE IF NOT EXISTS {saga_log} (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        saga_id TEXT NOT NULL,
        entry TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS saga_log_saga ON {saga_log} (saga_id, seq);
    CREATE TABLE IF NOT EXISTS {dead_letters} (
        id TEXT PRIMARY KEY,
        subscription TEXT NOT NULL,
        status TEXT NOT NULL,
        dead_lettered_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS dead_letters_at ON {dead_letters} (dead_lettered_at, id);
    CREATE TABLE IF NOT EXISTS {idempotency} (
        scope TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        response TEXT,
        PRIMARY KEY (scope, idem_key)
    );
    CREATE TABLE IF NOT EXISTS {leases} (
        part INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS {relays} (
        owner TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL
    );",
    ),
    (
        2,
        // The outbox keeps pending rows only: a producer's insert then adds one index entry
        // (the primary key) and a relay reads pending rows by `seq` without a partial index.
        // Published rows kept for the retention period move to `{outbox_published}` in the
        // relay's claiming statement. (The old indexes go first: one had the new table's name.)
        "DROP INDEX IF EXISTS {q}outbox_pending;
    DROP INDEX IF EXISTS {q}outbox_published;
    CREATE TABLE IF NOT EXISTS {outbox_published} (
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        part INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        published_at BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS outbox_published_at ON {outbox_published} (published_at);
    INSERT INTO {outbox_published}
        (seq, event_id, aggregate_id, part, envelope, created_at, published_at)
        SELECT seq, event_id, aggregate_id, part, envelope, created_at, published_at
        FROM {outbox} WHERE published_at IS NOT NULL;
    DELETE FROM {outbox} WHERE published_at IS NOT NULL;",
    ),
];

/// Creates the schema if needed and applies the missing migrations in one transaction,
/// holding a transaction-scoped advisory lock keyed by the schema name.
pub(crate) async fn migrate(
    conn: &mut PgConnection,
    schema: &str,
    tables: &Tables,
) -> saga_core::Result<()> {
    let run = async {
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("saga-outbox:{schema}"))
            .execute(&mut *conn)
            .await?;
        // `schema` was validated as [a-z_][a-z0-9_]*.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
        )))
        .execute(&mut *conn)
        .await?;
        sqlx::raw_sql(AssertSqlSafe(tables.render(
            "CREATE TABLE IF NOT EXISTS {migrations} \
             (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )))
        .execute(&mut *conn)
        .await?;
        for (version, template) in MIGRATIONS {
            let seen: i64 = sqlx::query(AssertSqlSafe(
                tables.render("SELECT COUNT(*) FROM {migrations} WHERE version = $1"),
            ))
            .bind(version)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
            if seen == 0 {
                sqlx::raw_sql(AssertSqlSafe(tables.render(template)))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(AssertSqlSafe(
                    tables.render("INSERT INTO {migrations} (version) VALUES ($1)"),
                ))
                .bind(version)
                .execute(&mut *conn)
                .await?;
            }
        }
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if run.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    run.map_err(db_err)
}
