//! Table names: validated identifiers and the qualified names of every table.
//!
//! Several services share one database by a table prefix (SQLite) or a schema (Postgres).
//! Identifiers are never taken from data: they come from configuration and are checked
//! against `[a-z_][a-z0-9_]*` before they are put into SQL text.

use saga_core::{Error, Result};

/// Checks that `ident` is a safe SQL identifier: `[a-z_][a-z0-9_]*`, at most 48 characters.
/// The empty string is allowed only where `allow_empty` says so (no prefix).
pub fn validate_ident(ident: &str, allow_empty: bool) -> Result<()> {
    if ident.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "an SQL identifier may not be empty".into(),
            ))
        };
    }
    let mut chars = ident.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && ident.len() <= 48 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "`{ident}` is not a valid SQL identifier ([a-z_][a-z0-9_]*, at most 48 characters)"
        )))
    }
}

/// The qualified names of the tables of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// What goes before a table's name: `"schema".` or `prefix_`.
    pub(crate) qualifier: String,
    /// What goes before an index's name (`prefix_` on SQLite, nothing on Postgres, where an
    /// index lives in its table's schema).
    pub(crate) index_prefix: String,
    /// Outgoing events.
    pub outbox: String,
    /// Published events kept for the retention period (SQLite; on Postgres they stay in
    /// `outbox`, marked).
    pub outbox_published: String,
    /// Processed messages per consumer.
    pub inbox: String,
    /// Saga instances.
    pub sagas: String,
    /// Saga logs.
    pub saga_log: String,
    /// Dead letters.
    pub dead_letters: String,
    /// HTTP idempotency keys.
    pub idempotency: String,
    /// Relay partition leases (Postgres).
    pub leases: String,
    /// Live relays (Postgres).
    pub relays: String,
    /// Applied migrations.
    pub migrations: String,
}

impl Tables {
    /// Tables named `{prefix}outbox`, `{prefix}inbox`, ... (SQLite; `prefix` may be empty).
    pub fn with_prefix(prefix: &str) -> Result<Self> {
        validate_ident(prefix, true)?;
        Ok(Self::build(prefix.to_owned(), prefix.to_owned()))
    }

    /// Tables `"schema".outbox`, ... (Postgres).
    pub fn in_schema(schema: &str) -> Result<Self> {
        validate_ident(schema, false)?;
        Ok(Self::build(format!("\"{schema}\"."), String::new()))
    }

    fn build(qualifier: String, index_prefix: String) -> Self {
        let name = |t: &str| format!("{qualifier}{t}");
        Self {
            outbox: name("outbox"),
            outbox_published: name("outbox_published"),
            inbox: name("inbox"),
            sagas: name("sagas"),
            saga_log: name("saga_log"),
            dead_letters: name("dead_letters"),
            idempotency: name("idempotency"),
            leases: name("relay_leases"),
            relays: name("relays"),
            migrations: name("schema_migrations"),
            qualifier,
            index_prefix,
        }
    }

    /// Replaces `{outbox}`, `{inbox}`, ... and `{q}` (the qualifier) in a SQL template.
    #[cfg_attr(not(feature = "_sql"), allow(dead_code))]
    pub(crate) fn render(&self, template: &str) -> String {
        template
            .replace("{outbox_published}", &self.outbox_published)
            .replace("{outbox}", &self.outbox)
            .replace("{inbox}", &self.inbox)
            .replace("{sagas}", &self.sagas)
            .replace("{saga_log}", &self.saga_log)
            .replace("{dead_letters}", &self.dead_letters)
            .replace("{idempotency}", &self.idempotency)
            .replace("{leases}", &self.leases)
            .replace("{relays}", &self.relays)
            .replace("{migrations}", &self.migrations)
            .replace("{q}", &self.qualifier)
            .replace("{ix}", &self.index_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lower_case_identifiers() {
        for ok in ["a", "_", "orders_1", "svc_"] {
            assert!(validate_ident(ok, false).is_ok(), "{ok}");
        }
        assert!(validate_ident("", true).is_ok());
    }

    #[test]
    fn refuses_anything_else() {
        for bad in ["", "1a", "A", "a-b", "a\"b", "a;drop", "é", &"a".repeat(49)] {
            assert!(validate_ident(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_prefix_and_schema() {
        let t = Tables::with_prefix("billing_").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.render("SELECT * FROM {outbox}"),
            "SELECT * FROM billing_outbox"
        );
        let t = Tables::in_schema("billing").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.render("{inbox}"), "\"billing\".inbox");
        assert!(Tables::in_schema("Bad").is_err());
    }
}
