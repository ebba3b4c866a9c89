//! The SQLite schema, as versioned migrations applied once each (recorded in
//! `{prefix}schema_migrations`).

use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use crate::names::Tables;
use crate::sql::error::db_err;

/// `(version, SQL template)`, in order. Never edit a released one: add a new version.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS {outbox} (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        part INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        published_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS {ix}outbox_pending ON {outbox} (seq) WHERE published_at IS NULL;
    CREATE INDEX IF NOT EXISTS {ix}outbox_published ON {outbox} (published_at)
        WHERE published_at IS NOT NULL;
    CREATE TABLE IF NOT EXISTS {inbox} (
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        processed_at INTEGER NOT NULL,
        PRIMARY KEY (consumer, event_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS {sagas} (
        id TEXT PRIMARY KEY,
        saga TEXT NOT NULL,
        status TEXT NOT NULL,
        terminal INTEGER NOT NULL,
        deadline INTEGER,
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS {ix}sagas_due ON {sagas} (deadline, id)
        WHERE terminal = 0 AND deadline IS NOT NULL;
    CREATE INDEX IF NOT EXISTS {ix}sagas_created ON {sagas} (created_at, id);
    CREATE TABLE IF NOT EXISTS {saga_log} (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        saga_id TEXT NOT NULL,
        entry TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS {ix}saga_log_saga ON {saga_log} (saga_id, seq);
    CREATE TABLE IF NOT EXISTS {dead_letters} (
        id TEXT PRIMARY KEY,
        subscription TEXT NOT NULL,
        status TEXT NOT NULL,
        dead_lettered_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS {ix}dead_letters_at ON {dead_letters} (dead_lettered_at, id);
    CREATE TABLE IF NOT EXISTS {idempotency} (
        scope TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        response TEXT,
        PRIMARY KEY (scope, idem_key)
    ) WITHOUT ROWID;",
    ),
    (
        2,
        // The outbox keeps pending rows only: a producer's commit then writes the row's
        // page and nothing else (no partial index, no `sqlite_sequence` row), and the relay
        // reads pending rows in `seq` (rowid) order without an index. Published rows kept
        // for the retention period move to `{outbox_published}`. Without AUTOINCREMENT a
        // `seq` may be reused once its row is gone; order among pending rows still follows
        // commits, since SQLite has one writer. (The old indexes go first: one of them had
        // the new table's name.)
        "DROP INDEX IF EXISTS {ix}outbox_pending;
    DROP INDEX IF EXISTS {ix}outbox_published;
    CREATE TABLE IF NOT EXISTS {outbox_published} (
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        part INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        published_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS {ix}outbox_published_at ON {outbox_published} (published_at);
    INSERT INTO {outbox_published}
        (seq, event_id, aggregate_id, part, envelope, created_at, published_at)
        SELECT seq, event_id, aggregate_id, part, envelope, created_at, published_at
        FROM {outbox} WHERE published_at IS NOT NULL;
    CREATE TABLE {outbox}_v2 (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        part INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        published_at INTEGER
    );
    INSERT INTO {outbox}_v2 (seq, event_id, aggregate_id, part, envelope, created_at)
        SELECT seq, event_id, aggregate_id, part, envelope, created_at
        FROM {outbox} WHERE published_at IS NULL ORDER BY seq;
    DROP TABLE {outbox};
    ALTER TABLE {outbox}_v2 RENAME TO {outbox};",
    ),
];

/// Applies the migrations not applied yet, each in its own transaction (the caller holds
/// the single write connection, so no one else migrates at the same time in this process;
/// `BEGIN IMMEDIATE` keeps other processes out).
pub(crate) async fn migrate(conn: &mut SqliteConnection, tables: &Tables) -> saga_core::Result<()> {
    let create = tables.render(
        "CREATE TABLE IF NOT EXISTS {migrations} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    );
    sqlx::raw_sql(AssertSqlSafe(create))
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    for (version, template) in MIGRATIONS {
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        let applied = async {
            let seen = sqlx::query(AssertSqlSafe(
                tables.render("SELECT COUNT(*) FROM {migrations} WHERE version = $1"),
            ))
            .bind(version)
            .fetch_one(&mut *conn)
            .await?
            .try_get::<i64, _>(0)?;
            if seen == 0 {
                sqlx::raw_sql(AssertSqlSafe(tables.render(template)))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(AssertSqlSafe(tables.render(
                    "INSERT INTO {migrations} (version, applied_at) VALUES ($1, datetime('now'))",
                )))
                .bind(version)
                .execute(&mut *conn)
                .await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        let end = if applied.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        sqlx::raw_sql(end)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        applied.map_err(db_err)?;
    }
    Ok(())
}
