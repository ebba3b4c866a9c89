//! The data statements, written once for SQLite and Postgres (both take `$1` parameters,
//! `ON CONFLICT`, `RETURNING` and partial indexes). Where the two differ, [`Dialect`] says
//! how, and that is the only place.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use crate::names::Tables;

/// The few places where SQLite and Postgres SQL differ.
// With one database feature on, the other variant is never built.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite: lists travel as JSON text through `json_each`.
    Sqlite,
    /// Postgres: lists travel as JSON text through `jsonb_array_elements_text`.
    Postgres,
}

impl Dialect {
    /// A subquery yielding the `BIGINT`s of the JSON array bound at `$n`.
    fn id_list(self, n: u8) -> String {
        match self {
            Dialect::Sqlite => format!("SELECT value FROM json_each(${n})"),
            Dialect::Postgres => {
                format!("SELECT jsonb_array_elements_text(${n}::jsonb)::bigint")
            }
        }
    }

    /// A `FROM` source yielding the strings of the JSON array bound at `$n` as column
    /// `value`.
    fn text_list(self, n: u8) -> String {
        match self {
            Dialect::Sqlite => format!("json_each(${n})"),
            Dialect::Postgres => format!("jsonb_array_elements_text(${n}::jsonb) AS t(value)"),
        }
    }

    /// One statement text (one round trip, one prepared statement) that runs the caller's
    /// data-modifying `write` and then `append`: on Postgres a data-modifying `WITH` (both
    /// parts see the same snapshot and commit together), on SQLite the two statements in one
    /// string, which sqlx runs one after the other in a single call to its worker.
    fn write_then(self, write: &str, append: &str) -> String {
        // A trailing `;` would end the statement early; a trailing `-- comment` would swallow
        // what follows on its line, hence the newline.
        let write = write.trim_end().trim_end_matches(';').trim_end();
        match self {
            Dialect::Sqlite => format!("{write}\n;\n{append}"),
            Dialect::Postgres => format!("WITH saga_outbox_write AS (\n{write}\n)\n{append}"),
        }
    }
}

/// Most saga log entries one statement appends (a transition writes one to three; more go
/// in several statements).
pub(crate) const LOG_ROWS: usize = 8;

/// The columns of an outbox row in the order [`Statements::outbox_values`] numbers them.
pub(crate) const OUTBOX_COLUMNS: usize = 5;

/// Every prepared statement text of one service's tables.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    dialect: Dialect,
    outbox_table: String,
    /// `write_and_append`'s texts by the caller's statement: the same handful of producing
    /// statements come back on every call.
    combined: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<Combined>>>>,
    pub(crate) outbox_insert: SqlStr,
    pub(crate) outbox_unpublished: SqlStr,
    pub(crate) outbox_delete: SqlStr,
    /// Published rows kept for the retention period live apart (`{outbox_published}`,
    /// schema version 2): marking rows published copies them there, then deletes them from
    /// the outbox.
    pub(crate) outbox_archive: SqlStr,
    pub(crate) outbox_prune: SqlStr,
    pub(crate) outbox_pending: SqlStr,
    pub(crate) inbox_mark: SqlStr,
    /// Marks a JSON array of event ids (`$2`) at once, returning the ids newly marked.
    pub(crate) inbox_mark_all: SqlStr,
    pub(crate) inbox_is: SqlStr,
    pub(crate) saga_create: SqlStr,
    pub(crate) saga_load: SqlStr,
    pub(crate) saga_save: SqlStr,
    pub(crate) saga_version: SqlStr,
    pub(crate) saga_due: SqlStr,
    pub(crate) saga_list: SqlStr,
    /// `INSERT INTO saga_log ...` of 1..=[`LOG_ROWS`] entries: index `n - 1` holds `n` rows.
    pub(crate) saga_log_append: Vec<SqlStr>,
    pub(crate) saga_log_entries: SqlStr,
    pub(crate) dl_put: SqlStr,
    pub(crate) dl_list: SqlStr,
    pub(crate) dl_get: SqlStr,
    pub(crate) dl_transition: SqlStr,
    pub(crate) dl_status: SqlStr,
    pub(crate) dl_pending: SqlStr,
    pub(crate) idem_begin: SqlStr,
    pub(crate) idem_get: SqlStr,
    pub(crate) idem_complete: SqlStr,
    pub(crate) idem_abandon: SqlStr,
}

fn stmt(tables: &Tables, template: &str) -> SqlStr {
    // Identifiers in `tables` were validated ([a-z_][a-z0-9_]*); values are always bound.
    AssertSqlSafe(Arc::<str>::from(tables.render(template))).into_sql_str()
}

impl Statements {
    pub(crate) fn new(tables: &Tables, dialect: Dialect) -> Self {
        let s = |t: &str| stmt(tables, t);
        Self {
            dialect,
            outbox_table: tables.render("{outbox}"),
            combined: Arc::default(),
            outbox_insert: s(
                "INSERT INTO {outbox} (event_id, aggregate_id, part, envelope, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING seq",
            ),
            outbox_unpublished: s("SELECT seq, envelope, created_at FROM {outbox} \
                 WHERE published_at IS NULL ORDER BY seq LIMIT $1"),
            outbox_delete: s(&format!(
                "DELETE FROM {{outbox}} WHERE seq IN ({})",
                dialect.id_list(1)
            )),
            outbox_archive: s(&format!(
                "INSERT INTO {{outbox_published}} \
                 (seq, event_id, aggregate_id, part, envelope, created_at, published_at) \
                 SELECT seq, event_id, aggregate_id, part, envelope, created_at, $2 \
                 FROM {{outbox}} WHERE seq IN ({}) ORDER BY seq",
                dialect.id_list(1)
            )),
            outbox_prune: s("DELETE FROM {outbox_published} WHERE published_at < $1"),
            outbox_pending: s("SELECT COUNT(*) FROM {outbox} WHERE published_at IS NULL"),
            inbox_mark: s("INSERT INTO {inbox} (consumer, event_id, processed_at) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"),
            // `WHERE true`: SQLite reads `ON` after a bare `FROM` source as a join clause.
            inbox_mark_all: s(&format!(
                "INSERT INTO {{inbox}} (consumer, event_id, processed_at) \
                 SELECT $1, value, $3 FROM {} WHERE true ON CONFLICT DO NOTHING \
                 RETURNING event_id",
                dialect.text_list(2)
            )),
            inbox_is: s("SELECT COUNT(*) FROM {inbox} WHERE consumer = $1 AND event_id = $2"),
            saga_create: s("INSERT INTO {sagas} \
                 (id, saga, status, terminal, deadline, version, created_at, body) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"),
            saga_load: s("SELECT body FROM {sagas} WHERE id = $1"),
            saga_save: s("UPDATE {sagas} SET saga = $2, status = $3, terminal = $4, \
                 deadline = $5, version = $6, created_at = $7, body = $8 \
                 WHERE id = $1 AND version = $9"),
            saga_version: s("SELECT version FROM {sagas} WHERE id = $1"),
            saga_due: s("SELECT body FROM {sagas} \
                 WHERE terminal = 0 AND deadline IS NOT NULL AND deadline <= $1 \
                 ORDER BY deadline, id LIMIT $2"),
            saga_list: s("SELECT body FROM {sagas} \
                 WHERE ($1 IS NULL OR saga = $1) AND ($2 IS NULL OR status = $2) \
                 ORDER BY created_at DESC, id DESC LIMIT $3"),
            saga_log_append: (1..=LOG_ROWS)
                .map(|rows| {
                    let values: Vec<String> = (0..rows)
                        .map(|r| format!("(${}, ${})", 2 * r + 1, 2 * r + 2))
                        .collect();
                    s(&format!(
                        "INSERT INTO {{saga_log}} (saga_id, entry) VALUES {}",
                        values.join(", ")
                    ))
                })
                .collect(),
            saga_log_entries: s("SELECT entry FROM {saga_log} WHERE saga_id = $1 ORDER BY seq"),
            dl_put: s("INSERT INTO {dead_letters} \
                 (id, subscription, status, dead_lettered_at, updated_at, body) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"),
            dl_list: s("SELECT body, status, updated_at FROM {dead_letters} \
                 WHERE ($1 IS NULL OR subscription = $1) AND ($2 IS NULL OR status = $2) \
                 ORDER BY dead_lettered_at, id LIMIT $3"),
            dl_get: s("SELECT body, status, updated_at FROM {dead_letters} WHERE id = $1"),
            dl_transition: s("UPDATE {dead_letters} SET status = $2, updated_at = $3 \
                 WHERE id = $1 AND status = 'pending' RETURNING body, status, updated_at"),
            dl_status: s("SELECT status FROM {dead_letters} WHERE id = $1"),
            dl_pending: s("SELECT COUNT(*) FROM {dead_letters} WHERE status = 'pending'"),
            idem_begin: s("INSERT INTO {idempotency} AS cur \
                 (scope, idem_key, fingerprint, expires_at, response) \
                 VALUES ($1, $2, $3, $4, NULL) \
                 ON CONFLICT (scope, idem_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
                 expires_at = excluded.expires_at, response = NULL \
                 WHERE cur.expires_at <= $5 RETURNING scope"),
            idem_get: s(
                "SELECT fingerprint, expires_at, response FROM {idempotency} \
                 WHERE scope = $1 AND idem_key = $2",
            ),
            idem_complete: s("UPDATE {idempotency} SET response = $3 \
                 WHERE scope = $1 AND idem_key = $2"),
            idem_abandon: s("DELETE FROM {idempotency} \
                 WHERE scope = $1 AND idem_key = $2 AND response IS NULL"),
        }
    }

    /// Whether several statements can travel in one text and one call (SQLite), so a
    /// [`Batch`](crate::batch::Batch) sends them together.
    pub(crate) fn combines_statements(&self) -> bool {
        self.dialect == Dialect::Sqlite
    }

    /// `INSERT INTO outbox (...) VALUES (...), ...` for `rows` rows whose
    /// [`OUTBOX_COLUMNS`] parameters each start at `$first`, in row order (event id,
    /// aggregate id, partition, envelope, created at).
    pub(crate) fn outbox_values(&self, first: usize, rows: usize) -> String {
        use std::fmt::Write as _;
        let mut sql = format!(
            "INSERT INTO {} (event_id, aggregate_id, part, envelope, created_at) VALUES ",
            self.outbox_table
        );
        for row in 0..rows {
            let p = first + row * OUTBOX_COLUMNS;
            let sep = if row == 0 { "" } else { ", " };
            let _ = write!(
                sql,
                "{sep}(${}, ${}, ${}, ${}, ${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4
            );
        }
        sql
    }

    /// The caller's `write` followed by the outbox insert of `rows` rows whose parameters
    /// start at `$first` (after the write's own), as one statement text.
    pub(crate) fn write_and_append(&self, write: &str, first: usize, rows: usize) -> SqlStr {
        let mut cache = self.combined.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = cache
            .get(write)
            .and_then(|v| v.iter().find(|c| c.first == first && c.rows == rows))
        {
            return hit.sql.clone();
        }
        // The write is the caller's own statement, run on the caller's behalf as sqlx would
        // run it alone; the appended part binds every value.
        let sql = AssertSqlSafe(
            self.dialect
                .write_then(write, &self.outbox_values(first, rows)),
        )
        .into_sql_str();
        if cache.len() >= COMBINED_CACHE {
            cache.clear();
        }
        cache.entry(write.to_owned()).or_default().push(Combined {
            first,
            rows,
            sql: sql.clone(),
        });
        sql
    }
}

/// Most callers' statements whose combined texts are kept (beyond: forgotten, rebuilt).
const COMBINED_CACHE: usize = 256;

/// One cached `write_and_append` text.
#[derive(Debug)]
struct Combined {
    first: usize,
    rows: usize,
    sql: SqlStr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_values_number_the_rows_in_order() {
        let tables = Tables::with_prefix("").expect("tables");
        let sql = Statements::new(&tables, Dialect::Sqlite).outbox_values(3, 2);
        assert!(
            sql.ends_with("VALUES ($3, $4, $5, $6, $7), ($8, $9, $10, $11, $12)"),
            "{sql}"
        );
    }

    #[test]
    fn the_write_comes_first_without_its_semicolon() {
        let tables = Tables::with_prefix("").expect("tables");
        let pg = Statements::new(&tables, Dialect::Postgres).write_and_append(
            "INSERT INTO t (a) VALUES ($1); \n",
            2,
            1,
        );
        assert!(
            pg.as_str().starts_with(
                "WITH saga_outbox_write AS (\nINSERT INTO t (a) VALUES ($1)\n)\nINSERT INTO"
            ),
            "{}",
            pg.as_str()
        );
        let lite = Statements::new(&tables, Dialect::Sqlite).write_and_append(
            "INSERT INTO t (a) VALUES ($1) -- note",
            2,
            1,
        );
        assert!(
            lite.as_str()
                .starts_with("INSERT INTO t (a) VALUES ($1) -- note\n;\nINSERT INTO"),
            "{}",
            lite.as_str()
        );
    }
}
