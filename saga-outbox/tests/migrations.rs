//! Schema upgrades keep every row: a version-1 outbox (published rows marked in place) becomes a
//! version-2 one (pending rows only; published rows kept apart for the retention period), on
//! SQLite and on Postgres.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod support;

use chrono::{Duration, Utc};
use saga_core::{Envelope, OutboxStore};
use saga_outbox::sqlite::{SqliteOptions, SqliteStore};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The outbox of schema version 1, as released.
const V1_OUTBOX: &str =
    "CREATE TABLE svc_schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
    INSERT INTO svc_schema_migrations VALUES (1, datetime('now'));
    CREATE TABLE svc_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        part INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        published_at INTEGER
    );
    CREATE INDEX svc_outbox_pending ON svc_outbox (seq) WHERE published_at IS NULL;
    CREATE INDEX svc_outbox_published ON svc_outbox (published_at) WHERE published_at IS NOT NULL;";

#[tokio::test]
async fn sqlite_version_one_outboxes_keep_pending_and_published_rows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("v1.db");
    let events: Vec<Envelope> = (0..4)
        .map(|n| {
            Envelope::new(
                "order.placed",
                format!("order-{n}"),
                serde_json::json!({ "n": n }),
            )
        })
        .collect();
    let now = Utc::now();
    let nanos = |t: chrono::DateTime<Utc>| t.timestamp_nanos_opt().unwrap_or_default();
    {
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::raw_sql(V1_OUTBOX)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (n, event) in events.iter().enumerate() {
            // Rows 1 and 2 published (one long ago), 3 and 4 pending.
            let published = match n {
                0 => Some(nanos(now - Duration::days(3))),
                1 => Some(nanos(now)),
                _ => None,
            };
            sqlx::query(
                "INSERT INTO svc_outbox (event_id, aggregate_id, part, envelope, created_at, published_at) \
                 VALUES ($1, $2, 0, $3, $4, $5)",
            )
            .bind(event.event_id.to_string())
            .bind(&event.aggregate_id)
            .bind(serde_json::to_string(event).unwrap_or_else(|e| panic!("{e}")))
            .bind(nanos(now))
            .bind(published)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        conn.close().await.unwrap_or_else(|e| panic!("{e}"));
    }

    let store = SqliteStore::open(SqliteOptions::new(&path).with_prefix("svc_"))
        .await
        .unwrap_or_else(|e| panic!("open and migrate: {e}"));
    let pending = store
        .unpublished(10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<_> = pending.iter().map(|r| r.envelope.event_id).collect();
    assert_eq!(
        ids,
        vec![events[2].event_id, events[3].event_id],
        "pending rows, in order"
    );
    assert_eq!(
        store
            .pending_count()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        2
    );
    let kept: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM svc_outbox_published")
        .fetch_one(store.read_pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kept.0, 2,
        "published rows are kept for the retention period"
    );
    // Pruning by retention removes the old published row only.
    let pruned = store
        .prune_published(now - Duration::days(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pruned, 1);
    // The relay's completion moves rows out of the outbox.
    store
        .mark_published(&[pending[0].seq], now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pending = store
        .unpublished(10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].envelope.event_id, events[3].event_id);
    let kept: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM svc_outbox_published")
        .fetch_one(store.read_pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept.0, 2);
    // No partial index and no AUTOINCREMENT left on the outbox.
    let indexes: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'svc_outbox'",
    )
    .fetch_one(store.read_pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(indexes.0, 0);
    store.close().await;
}

/// The Postgres outbox of schema version 1, as released (`{s}` is the schema).
const PG_V1_OUTBOX: &str = "CREATE SCHEMA \"{s}\";
    CREATE TABLE \"{s}\".schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
    INSERT INTO \"{s}\".schema_migrations (version) VALUES (1);
    CREATE TABLE \"{s}\".outbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        part INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        published_at BIGINT
    );
    CREATE INDEX outbox_pending ON \"{s}\".outbox (seq) WHERE published_at IS NULL;
    CREATE INDEX outbox_published ON \"{s}\".outbox (published_at) WHERE published_at IS NOT NULL;";

#[tokio::test]
async fn postgres_version_one_outboxes_keep_pending_and_published_rows() {
    let Some(url) =
        support::database_url("postgres_version_one_outboxes_keep_pending_and_published_rows")
    else {
        return;
    };
    let schema = support::schema_name();
    let _guard = support::SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };
    let events: Vec<Envelope> = (0..4)
        .map(|n| {
            Envelope::new(
                "order.placed",
                format!("order-{n}"),
                serde_json::json!({ "n": n }),
            )
        })
        .collect();
    let now = Utc::now();
    let nanos = |t: chrono::DateTime<Utc>| t.timestamp_nanos_opt().unwrap_or_default();
    {
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(PG_V1_OUTBOX.replace("{s}", &schema)))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (n, event) in events.iter().enumerate() {
            let published = match n {
                0 => Some(nanos(now - Duration::days(3))),
                1 => Some(nanos(now)),
                _ => None,
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO \"{schema}\".outbox (event_id, aggregate_id, part, envelope, created_at, published_at) \
                 VALUES ($1, $2, 0, $3, $4, $5)"
            )))
            .bind(event.event_id.to_string())
            .bind(&event.aggregate_id)
            .bind(serde_json::to_string(event).unwrap_or_else(|e| panic!("{e}")))
            .bind(nanos(now))
            .bind(published)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        conn.close().await.unwrap_or_else(|e| panic!("{e}"));
    }
    let (_clock, shared) = support::manual();
    let store = support::pg_connect(&url, &schema, shared, 16).await;
    let pending = store
        .unpublished(10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<_> = pending.iter().map(|r| r.envelope.event_id).collect();
    assert_eq!(
        ids,
        vec![events[2].event_id, events[3].event_id],
        "pending rows, in order"
    );
    let kept: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM \"{schema}\".outbox_published"
    )))
    .fetch_one(store.read_pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kept.0, 2,
        "published rows are kept for the retention period"
    );
    let pruned = store
        .prune_published(now - Duration::days(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pruned, 1);
    store
        .mark_published(&[pending[0].seq], now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .pending_count()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        1
    );
    // Only the primary key is left on the outbox.
    let indexes: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'outbox'",
    )
    .bind(&schema)
    .fetch_one(store.read_pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(indexes.0, 1);
    store.close().await;
}
