//! A unit of work's writes sent together: [`Batch`].
//!
//! Every statement a handler runs on its [`UnitOfWork`] is a round trip: on Postgres a
//! network one, on SQLite a hand-off to the connection's worker thread and back, which
//! costs tens of microseconds of CPU whatever the statement does. A handler's writes rarely
//! need each other's results, so a batch gathers them (the inbox mark, the business
//! statements, the saga's new state, the outgoing events, the saga log) and
//! [`run`](Batch::run) sends them at once: **on SQLite in one call** (the statements in one
//! text, run one after the other by the worker; a batch of more than 16,383 values takes
//! a call per 16,383), on Postgres one after the other as the unit of work would have sent
//! them.
//!
//! ```ignore
//! let mut uow = store.begin().await?;
//! let mut batch = uow.batch();
//! batch.mark_inbox("billing", delivery.envelope.event_id);
//! batch
//!     .execute("INSERT INTO invoices (id, total) VALUES ($1, $2)")
//!     .bind(id.to_string())
//!     .bind(total);
//! batch.publish(&[Envelope::new("invoice.created", id, payload)])?;
//! batch.save_saga(&instance, expected_version)?;
//! if batch.run().await?.is_duplicate() {
//!     return Ok(Handled::Duplicate); // dropped: rolled back, nothing written
//! }
//! uow.commit().await?;
//! ```
//!
//! What a batch checks for you, after it ran: an inbox mark that finds its message already
//! processed makes the outcome a duplicate (the unit of work then cannot commit: `commit`
//! rolls it back); a saga whose stored version moved on fails the run with
//! `VersionConflict` (or `NotFound`), as [`UnitOfWork::save_saga`] would, and a new saga
//! whose id is taken with `AlreadyExists`. Each business statement's row count is in the
//! [`BatchOutcome`].
//!
//! On SQLite the statements after a duplicate inbox mark still run (in the transaction that
//! is then rolled back), and an error one of them raises because of the duplicate (a unique
//! key the first delivery already took) reads as the duplicate it is, not as a failure.
//!
//! A business statement is one statement with `$1`, `$2`, ... (or `?`) parameters numbered
//! from 1 for its own values: the batch renumbers them into the shared text. It may end in
//! one `;` but hold no second statement.

use sqlx::{Arguments, Database, Encode, Type};

use crate::uow::UnitOfWork;
use saga_core::Error;

/// Values after which a combined batch starts a new text (and call): SQLite's default
/// build refuses parameter numbers above 32766 (the bundled one allows 250,000), so a
/// statement added after this many values still has half of that range for its own.
pub(crate) const SEGMENT_PARAMS: usize = 16_383;

/// What a part of a batch is, so its result can be read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A caller's statement: its row count is reported.
    Statement,
    /// An inbox mark: one row inserted means new.
    Inbox,
    /// A new saga: must insert its row, or the id is taken.
    NewSaga { id: uuid::Uuid },
    /// A saga's new state: must change its row, or the version moved on.
    Saga { id: uuid::Uuid, expected: u64 },
    /// Outbox or saga log rows: nothing to check.
    Append,
}

/// One statement of a batch.
pub(crate) struct Part<DB: Database> {
    pub(crate) kind: Kind,
    /// Sent alone (Postgres): the statement text and its own values. In a combined batch
    /// (SQLite) the text went into the batch's and the values into its arguments.
    pub(crate) alone: Option<(sqlx::SqlStr, DB::Arguments)>,
    /// The highest parameter number the statement names (its own numbering).
    pub(crate) params: usize,
    /// How many values were bound for it.
    pub(crate) bound: usize,
}

/// A handle on a business statement of a batch, to read its row count in the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementId(usize);

/// A handle on an inbox mark of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxMark(usize);

/// The writes of a [`UnitOfWork`] gathered to be sent at once: see the [module docs](self).
///
/// Made by `UnitOfWork::batch`; the statements run in the order they were added, when
/// [`run`](Self::run) is called (dropping the batch unrun sends nothing).
pub struct Batch<'u, DB: Database> {
    pub(crate) uow: &'u mut UnitOfWork<DB>,
    /// SQLite: every statement in one text and one argument list, sent in one call.
    pub(crate) combine: bool,
    pub(crate) text: String,
    pub(crate) args: DB::Arguments,
    /// Earlier texts and their values, each sent in a call of its own (see
    /// [`SEGMENT_PARAMS`]).
    pub(crate) sealed: Vec<(String, DB::Arguments)>,
    pub(crate) parts: Vec<Part<DB>>,
    /// The first thing that went wrong while adding (reported by `run`).
    pub(crate) error: Option<Error>,
    /// Events the batch appends, and whether some reach relays of other processes.
    pub(crate) published: usize,
    pub(crate) remote: bool,
}

impl<'u, DB: Database> Batch<'u, DB> {
    pub(crate) fn new(uow: &'u mut UnitOfWork<DB>, combine: bool) -> Self {
        Self {
            uow,
            combine,
            text: String::new(),
            args: DB::Arguments::default(),
            sealed: Vec::new(),
            parts: Vec::new(),
            error: None,
            published: 0,
            remote: false,
        }
    }

    /// How many statements the batch holds so far.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the batch holds no statement.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Adds a business statement (`INSERT`, `UPDATE`, `DELETE`); bind its values in order
    /// on the returned builder.
    pub fn execute(&mut self, sql: impl sqlx::SqlSafeStr) -> BatchStatement<'_, 'u, DB> {
        let index = self.push(sql.into_sql_str(), Kind::Statement);
        BatchStatement { batch: self, index }
    }

    /// Adds a statement of `kind`: into the shared text (renumbered after the values bound
    /// so far) or alone.
    pub(crate) fn push(&mut self, sql: sqlx::SqlStr, kind: Kind) -> usize {
        let params = if self.combine {
            if self.args.len() >= SEGMENT_PARAMS {
                let text = std::mem::take(&mut self.text);
                let args = std::mem::take(&mut self.args);
                self.sealed.push((text, args));
            }
            let offset = self.args.len();
            if !self.text.is_empty() {
                self.text.push_str("\n;\n");
            }
            match renumber(sql.as_str(), offset, &mut self.text) {
                Ok(params) => params,
                Err(reason) => {
                    self.fail(Error::InvalidArgument(format!(
                        "batch statement {}: {reason}",
                        self.parts.len() + 1
                    )));
                    0
                }
            }
        } else {
            // Sent alone: the database itself checks the values against the parameters.
            0
        };
        let alone = (!self.combine).then(|| (sql, DB::Arguments::default()));
        self.parts.push(Part {
            kind,
            alone,
            params,
            bound: 0,
        });
        self.parts.len() - 1
    }

    /// Binds the next value of the last statement added.
    pub(crate) fn bind_last<'t, T>(&mut self, value: T)
    where
        T: Encode<'t, DB> + Type<DB>,
    {
        let Some(part) = self.parts.last_mut() else {
            return;
        };
        part.bound += 1;
        let args = match part.alone.as_mut() {
            Some((_, args)) => args,
            None => &mut self.args,
        };
        if let Err(e) = args.add(value) {
            let n = part.bound;
            let at = self.parts.len();
            self.fail(Error::InvalidArgument(format!(
                "batch statement {at}: value ${n} does not encode: {e}"
            )));
        }
    }

    pub(crate) fn fail(&mut self, e: Error) {
        self.error.get_or_insert(e);
    }

    /// The first problem found while the batch was built: a value that did not encode, a
    /// statement text that is not one statement, fewer values than parameters.
    pub(crate) fn problem(&mut self) -> Option<Error> {
        if let Some(e) = self.error.take() {
            return Some(e);
        }
        self.parts.iter().enumerate().find_map(|(i, p)| {
            (p.bound < p.params).then(|| {
                Error::InvalidArgument(format!(
                    "batch statement {}: {} values bound for parameters up to ${}",
                    i + 1,
                    p.bound,
                    p.params
                ))
            })
        })
    }
}

impl<DB: Database> std::fmt::Debug for Batch<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("statements", &self.parts.len())
            .field("combined", &self.combine)
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

/// A business statement being added to a [`Batch`]: bind its values in order.
pub struct BatchStatement<'b, 'u, DB: Database> {
    batch: &'b mut Batch<'u, DB>,
    index: usize,
}

impl<DB: Database> BatchStatement<'_, '_, DB> {
    /// Binds the statement's next value (`$1`, then `$2`, ...). A value that does not
    /// encode fails the batch's `run` with `InvalidArgument`.
    pub fn bind<'t, T>(self, value: T) -> Self
    where
        T: Encode<'t, DB> + Type<DB>,
    {
        self.batch.bind_last(value);
        self
    }

    /// The handle to read this statement's row count in the [`BatchOutcome`].
    pub fn id(&self) -> StatementId {
        StatementId(self.index)
    }
}

/// What a batch did, once [`run`](Batch::run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub(crate) duplicate: bool,
    /// The row count of each statement that ran, in order.
    pub(crate) affected: Vec<u64>,
}

impl BatchOutcome {
    /// Whether an inbox mark of the batch found its message already processed: skip the
    /// effects (the unit of work can no longer commit; drop it) and ack the message.
    pub fn is_duplicate(&self) -> bool {
        self.duplicate
    }

    /// The rows a business statement changed; `None` if it did not run (a duplicate
    /// stopped the batch first).
    pub fn rows_affected(&self, statement: StatementId) -> Option<u64> {
        self.affected.get(statement.0).copied()
    }

    /// Whether an inbox mark was new; `None` if it did not run.
    pub fn is_new(&self, mark: InboxMark) -> Option<bool> {
        self.affected.get(mark.0).map(|n| *n == 1)
    }
}

impl InboxMark {
    pub(crate) fn new(index: usize) -> Self {
        Self(index)
    }
}

/// Whether some inbox mark among the parts that ran (`affected`) found a duplicate.
pub(crate) fn found_duplicate<DB: Database>(parts: &[Part<DB>], affected: &[u64]) -> bool {
    parts
        .iter()
        .zip(affected)
        .any(|(p, n)| matches!(p.kind, Kind::Inbox) && *n == 0)
}

/// Copies one statement onto `out` with every parameter renumbered: `$n` and `?n` become
/// `$(n + offset)`, a bare `?` the number after the highest so far (SQLite's rule), plus
/// `offset`. String literals, quoted identifiers and comments are copied as they are; a
/// trailing `;` is dropped. Returns the highest parameter number in the statement's own
/// numbering, or why the text cannot join a batch.
pub(crate) fn renumber(sql: &str, offset: usize, out: &mut String) -> Result<usize, String> {
    let bytes = sql.as_bytes();
    let mut highest = 0usize;
    let mut i = 0;
    let mut ended = false;
    let start = out.len();
    while i < bytes.len() {
        let c = bytes[i];
        if ended {
            // After the `;`: only blanks and comments.
            if c.is_ascii_whitespace() {
                out.push(char::from(c));
                i += 1;
                continue;
            }
            if !starts_comment(bytes, i) {
                return Err("holds more than one statement".into());
            }
        }
        match c {
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                let end = quoted_end(bytes, i, close)
                    .ok_or_else(|| "has an unterminated quote".to_owned())?;
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..]
                    .find("*/")
                    .map(|n| i + 2 + n + 2)
                    .ok_or_else(|| "has an unterminated comment".to_owned())?;
                out.push_str(&sql[i..end]);
                i = end;
            }
            b';' => {
                ended = true;
                i += 1;
            }
            b'$' | b'?' => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let n = if digits > 0 {
                    sql[i + 1..i + 1 + digits]
                        .parse::<usize>()
                        .map_err(|_| "has a parameter number that is too large".to_owned())?
                } else if c == b'?' {
                    highest + 1
                } else {
                    return Err("has a `$` that is not a numbered parameter".into());
                };
                if n == 0 {
                    return Err("has a parameter numbered 0".into());
                }
                highest = highest.max(n);
                out.push('$');
                out.push_str(&(n + offset).to_string());
                i += 1 + digits;
            }
            _ => {
                // Copy up to the next byte that may start something of the above.
                let end = bytes[i + 1..]
                    .iter()
                    .position(|b| b"'\"`[-/;$?".contains(b))
                    .map_or(bytes.len(), |n| i + 1 + n);
                out.push_str(&sql[i..end]);
                i = end;
            }
        }
    }
    if out[start..].trim().is_empty() {
        return Err("is empty".into());
    }
    Ok(highest)
}

fn starts_comment(bytes: &[u8], i: usize) -> bool {
    matches!(
        (bytes.get(i), bytes.get(i + 1)),
        (Some(b'-'), Some(b'-')) | (Some(b'/'), Some(b'*'))
    )
}

/// The index after the quote opened at `open` (a doubled quote character is an escaped one).
fn quoted_end(bytes: &[u8], open: usize, close: u8) -> Option<usize> {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shifted(sql: &str, offset: usize) -> Result<(String, usize), String> {
        let mut out = String::new();
        renumber(sql, offset, &mut out).map(|n| (out, n))
    }

    #[test]
    fn parameters_move_by_the_offset() {
        let (sql, n) = shifted("UPDATE t SET a = $1, b = $2 WHERE id = $10", 5).unwrap();
        assert_eq!(sql, "UPDATE t SET a = $6, b = $7 WHERE id = $15");
        assert_eq!(n, 10);
    }

    #[test]
    fn bare_and_numbered_question_marks_follow_sqlite_numbering() {
        let (sql, n) = shifted("INSERT INTO t VALUES (?, ?, ?5, ?)", 2).unwrap();
        assert_eq!(sql, "INSERT INTO t VALUES ($3, $4, $7, $8)");
        assert_eq!(n, 6);
    }

    #[test]
    fn literals_identifiers_and_comments_are_left_alone() {
        let text = "SELECT '$1 ?; it''s' AS \"a$2\", [b?] -- $3; ?\nFROM t /* $4; */ WHERE x = $1";
        let (sql, n) = shifted(text, 1).unwrap();
        assert_eq!(
            sql,
            "SELECT '$1 ?; it''s' AS \"a$2\", [b?] -- $3; ?\nFROM t /* $4; */ WHERE x = $2"
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn a_trailing_semicolon_is_dropped_and_a_second_statement_refused() {
        assert_eq!(
            shifted("DELETE FROM t WHERE a = $1; -- done\n", 0)
                .unwrap()
                .0,
            "DELETE FROM t WHERE a = $1 -- done\n"
        );
        for two in [
            "DELETE FROM t; DELETE FROM u",
            "DELETE FROM t;x",
            "DELETE FROM t; -- a\n x",
        ] {
            assert!(
                shifted(two, 0)
                    .unwrap_err()
                    .contains("more than one statement"),
                "{two:?}"
            );
        }
    }

    #[test]
    fn broken_texts_are_refused() {
        for bad in [
            "",
            "  ",
            "SELECT 'open",
            "SELECT /* open",
            "SELECT $a",
            "SELECT $0",
        ] {
            assert!(shifted(bad, 0).is_err(), "{bad:?}");
        }
    }
}
