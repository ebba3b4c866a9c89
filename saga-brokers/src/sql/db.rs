//! The one place SQLite and Postgres differ: pools, SQL text, migrations, error mapping.

use std::sync::Arc;

use saga_core::Error;
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};

use super::options::SqlOptions;

/// The database behind a broker.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    /// The pool and the gate its writers pass one at a time.
    Sqlite(SqlitePool, Arc<WriteGate>),
    Postgres(PgPool),
}

/// SQLite takes one writer at a time. Writers that meet on the database's lock wait in its
/// busy handler, which sleeps 1, 2, 5, 10 ... 100 ms between looks (under load in the
/// reference app, 9,521 sleeps in a run of 2,000 orders). The broker's writers (claims,
/// publishes, settlements, parks) queue here instead, in order, and find the lock free.
/// Readers do not pass it (WAL readers never wait for a writer); other processes writing
/// the same file still meet the busy handler.
pub(crate) type WriteGate = tokio::sync::Mutex<()>;

impl Db {
    /// A SQLite pool with a gate of its own.
    pub(crate) fn sqlite(pool: SqlitePool) -> Self {
        Self::Sqlite(pool, Arc::new(WriteGate::new(())))
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool, and `$begin` to the statement that
/// opens a write transaction (`BEGIN IMMEDIATE` on SQLite, so two writers never deadlock
/// upgrading a read lock). The body is written once and compiled for both databases. On
/// SQLite the body runs holding the [`WriteGate`] ([`on_db_read!`] is for bodies that only
/// read, and skips it). A body must not start another `on_db!`: the gate is not re-entrant.
macro_rules! on_db {
    ($db:expr, |$pool:ident, $begin:ident| $body:expr) => {
        match $db {
            $crate::sql::db::Db::Sqlite($pool, gate) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN IMMEDIATE";
                let _writing = gate.lock().await;
                $body
            }
            $crate::sql::db::Db::Postgres($pool) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN";
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// [`on_db!`] for a body that only reads: on SQLite it does not wait for the [`WriteGate`].
macro_rules! on_db_read {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::sql::db::Db::Sqlite($pool, _) => $body,
            $crate::sql::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db_read;

/// Inside an [`on_db!`] body: queues a Postgres `NOTIFY` for subscription `$sub` in
/// transaction `$tx` (delivered on commit); nothing on SQLite.
macro_rules! notify_in {
    ($shared:expr, $tx:ident, $sub:expr) => {
        if let Some(stmt) = &$shared.sql.notify {
            sqlx::query($crate::sql::db::sql(stmt))
                .bind(&$shared.sql.channel)
                .bind($sub)
                .execute(&mut *$tx)
                .await
                .map_err($crate::sql::db::db_err)?;
        }
    };
}
pub(crate) use notify_in;

/// A statement, prepared once per broker with the validated table names in it.
pub(crate) type Stmt = Arc<str>;

/// Wraps a statement for sqlx: its only variable parts are identifiers checked by
/// [`validate_identifier`](super::options::validate_identifier); all data is bound.
pub(crate) fn sql(stmt: &Stmt) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(stmt.clone())
}

/// Every statement the broker runs.
#[derive(Debug)]
pub(crate) struct Statements {
    /// Creates the schema (Postgres) and the migrations table.
    pub(crate) bootstrap: String,
    /// The embedded migrations, by version.
    pub(crate) migrations: Vec<(i64, String)>,
    pub(crate) select_version: Stmt,
    pub(crate) insert_version: Stmt,
    pub(crate) select_subscriptions: Stmt,
    pub(crate) insert_subscription: Stmt,
    pub(crate) select_subscription: Stmt,
    /// Prefix of the multi-row insert; [`Statements::insert_values`] completes it.
    pub(crate) insert_messages: String,
    pub(crate) insert_message_at: Stmt,
    pub(crate) claim_unordered: Stmt,
    pub(crate) claim_ordered: Stmt,
    pub(crate) next_due: Stmt,
    /// Deletes a batch of acked rows: the ids bound as one `BIGINT[]` (Postgres) or one JSON
    /// array (SQLite), so one statement text serves every batch size.
    pub(crate) ack_many: Stmt,
    pub(crate) retry: Stmt,
    pub(crate) release: Stmt,
    pub(crate) delete_leased: Stmt,
    pub(crate) park: Stmt,
    pub(crate) unpark: Stmt,
    pub(crate) message_exists: Stmt,
    pub(crate) delete_by_event: Stmt,
    /// Deleting one subscription: its row, its messages, its parked keys (in this order).
    pub(crate) remove_subscription: [Stmt; 3],
    /// `NOTIFY` on Postgres; `None` on SQLite.
    pub(crate) notify: Option<Stmt>,
    /// The `LISTEN` channel on Postgres.
    pub(crate) channel: String,
    postgres: bool,
}

impl Statements {
    pub(crate) fn new(db: &Db, options: &SqlOptions) -> Self {
        let postgres = matches!(db, Db::Postgres(_));
        let p = &options.table_prefix;
        // Qualified table prefix: `schema.prefix` on Postgres, `prefix` on SQLite.
        let q = if postgres {
            format!("{}.{p}", options.schema)
        } else {
            p.clone()
        };
        let skip_locked = if postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        // Written with `$n`; SQLite's numbered form is `?n`.
        let fix = |s: String| -> Stmt {
            if postgres {
                Arc::from(s)
            } else {
                Arc::from(s.replace('$', "?"))
            }
        };
        let claim = |extra: &str| {
            fix(format!(
                "UPDATE {q}messages SET attempt = attempt + 1, locked_by = $1, locked_until = $2 \
                 WHERE id IN (SELECT h.id FROM {q}messages h \
                 WHERE h.subscription = $3 AND h.visible_at <= $4 \
                 AND (h.locked_until IS NULL OR h.locked_until <= $4){extra} \
                 ORDER BY h.id LIMIT $5{skip_locked}) \
                 RETURNING id, envelope, attempt"
            ))
        };
        let ordered = format!(
            " AND NOT EXISTS (SELECT 1 FROM {q}messages e WHERE e.subscription = h.subscription \
             AND e.agg_key = h.agg_key AND e.id < h.id) \
             AND NOT EXISTS (SELECT 1 FROM {q}parked k WHERE k.subscription = h.subscription \
             AND k.agg_key = h.agg_key)"
        );
        let (schema, id_col, int) = if postgres {
            (
                format!("CREATE SCHEMA IF NOT EXISTS {};", options.schema),
                "id BIGSERIAL PRIMARY KEY",
                "BIGINT",
            )
        } else {
            (
                String::new(),
                "id INTEGER PRIMARY KEY AUTOINCREMENT",
                "INTEGER",
            )
        };
        let bootstrap = format!(
            "{schema}
            CREATE TABLE IF NOT EXISTS {q}migrations (version {int} PRIMARY KEY, applied_at {int} NOT NULL);"
        );
        let v1 = format!(
            "CREATE TABLE IF NOT EXISTS {q}subscriptions (
                name TEXT PRIMARY KEY,
                patterns TEXT NOT NULL,
                ordered {int} NOT NULL,
                created_at {int} NOT NULL);
            CREATE TABLE IF NOT EXISTS {q}messages (
                {id_col},
                subscription TEXT NOT NULL,
                event_id TEXT NOT NULL,
                agg_key TEXT NOT NULL,
                envelope TEXT NOT NULL,
                attempt {int} NOT NULL DEFAULT 0,
                visible_at {int} NOT NULL,
                locked_by TEXT,
                locked_until {int});
            CREATE INDEX IF NOT EXISTS {p}messages_sub_id ON {q}messages (subscription, id);
            CREATE INDEX IF NOT EXISTS {p}messages_sub_key ON {q}messages (subscription, agg_key, id);
            CREATE INDEX IF NOT EXISTS {p}messages_sub_event ON {q}messages (subscription, event_id);
            CREATE TABLE IF NOT EXISTS {q}parked (
                subscription TEXT NOT NULL,
                agg_key TEXT NOT NULL,
                dead_letter_id TEXT NOT NULL,
                ord {int} NOT NULL,
                PRIMARY KEY (subscription, agg_key));"
        );
        let channel: String = format!("{}_{p}wake", options.schema)
            .chars()
            .take(63)
            .collect();
        Self {
            bootstrap,
            migrations: vec![(1, v1)],
            select_version: fix(format!("SELECT MAX(version) AS v FROM {q}migrations")),
            insert_version: fix(format!(
                "INSERT INTO {q}migrations (version, applied_at) VALUES ($1, $2)"
            )),
            select_subscriptions: fix(format!("SELECT name, patterns FROM {q}subscriptions")),
            insert_subscription: fix(format!(
                "INSERT INTO {q}subscriptions (name, patterns, ordered, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING"
            )),
            select_subscription: fix(format!(
                "SELECT patterns, ordered FROM {q}subscriptions WHERE name = $1"
            )),
            insert_messages: format!(
                "INSERT INTO {q}messages (subscription, event_id, agg_key, envelope, visible_at) VALUES "
            ),
            insert_message_at: fix(format!(
                "INSERT INTO {q}messages (id, subscription, event_id, agg_key, envelope, visible_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)"
            )),
            claim_unordered: claim(""),
            claim_ordered: claim(&ordered),
            next_due: fix(format!(
                "SELECT MIN(t) AS t FROM (\
                 SELECT MIN(visible_at) AS t FROM {q}messages WHERE subscription = $1 AND visible_at > $2 \
                 UNION ALL \
                 SELECT MIN(locked_until) AS t FROM {q}messages WHERE subscription = $1 AND locked_until > $2) d"
            )),
            ack_many: fix(if postgres {
                format!("DELETE FROM {q}messages WHERE id = ANY($1)")
            } else {
                format!("DELETE FROM {q}messages WHERE id IN (SELECT value FROM json_each($1))")
            }),
            retry: fix(format!(
                "UPDATE {q}messages SET visible_at = $1, locked_by = NULL, locked_until = NULL \
                 WHERE id = $2 AND attempt = $3 AND locked_by = $4"
            )),
            release: fix(format!(
                "UPDATE {q}messages SET locked_by = NULL, locked_until = NULL \
                 WHERE id = $1 AND attempt = $2 AND locked_by = $3"
            )),
            delete_leased: fix(format!(
                "DELETE FROM {q}messages WHERE id = $1 AND attempt = $2 AND locked_by = $3"
            )),
            park: fix(format!(
                "INSERT INTO {q}parked (subscription, agg_key, dead_letter_id, ord) \
                 VALUES ($1, $2, $3, $4)"
            )),
            unpark: fix(format!(
                "DELETE FROM {q}parked WHERE subscription = $1 AND dead_letter_id = $2 RETURNING ord"
            )),
            message_exists: fix(format!(
                "SELECT id FROM {q}messages WHERE subscription = $1 AND event_id = $2 LIMIT 1"
            )),
            delete_by_event: fix(format!(
                "DELETE FROM {q}messages WHERE subscription = $1 AND event_id = $2"
            )),
            remove_subscription: [
                fix(format!("DELETE FROM {q}subscriptions WHERE name = $1")),
                fix(format!("DELETE FROM {q}messages WHERE subscription = $1")),
                fix(format!("DELETE FROM {q}parked WHERE subscription = $1")),
            ],
            notify: postgres.then(|| fix("SELECT pg_notify($1, $2)".into())),
            channel,
            postgres,
        }
    }

    /// `rows` value tuples for the multi-row insert, numbered from `$1`.
    pub(crate) fn insert_values(&self, rows: usize) -> Stmt {
        let mut s = self.insert_messages.clone();
        for r in 0..rows {
            let b = r * 5;
            if r > 0 {
                s.push(',');
            }
            let mark = if self.postgres { '$' } else { '?' };
            s.push_str(&format!(
                "({mark}{}, {mark}{}, {mark}{}, {mark}{}, {mark}{})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        }
        Arc::from(s)
    }
}

/// Most rows one insert statement carries (5 parameters each, far below both limits).
pub(crate) const INSERT_CHUNK: usize = 500;

/// Maps a driver error onto the crate's error: connection trouble, timeouts, lock waits and
/// serialization failures are transient; a closed pool is [`Error::Closed`].
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::PoolClosed => Error::Closed("sql broker pool".into()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => Error::transient(e),
        sqlx::Error::Database(ref d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLite: 5 BUSY, 6 LOCKED (and their extended codes); Postgres: serialization
            // failure, deadlock, lock not available, admin shutdown, cannot connect now.
            let transient = matches!(
                code.as_str(),
                "5" | "6" | "261" | "517" | "40001" | "40P01" | "55P03" | "57P01" | "57P03"
            ) || code.starts_with("08");
            if transient {
                Error::transient(e)
            } else {
                Error::permanent(e)
            }
        }
        other => Error::permanent(other),
    }
}
