//! Ids written in a message: a whole UUID, or the first characters of one (as people copy
//! `0190a3b2` from a table), resolved by the application.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The shortest prefix taken for an id: six hex characters, at least one a digit and, unless
/// the prefix is eight characters or longer, at least one a letter (so `100000` and `decade`
/// stay a number and a word).
pub const MIN_PREFIX_LEN: usize = 6;

/// An id as the user wrote it.
///
/// ```
/// use saga_ai::assistant::IdRef;
/// let id: uuid::Uuid = "0190a3b2-7c1d-7e00-8000-000000000001".parse().unwrap();
/// assert_eq!(IdRef::parse_token("0190A3B2-7C1D-7E00-8000-000000000001"), Some(IdRef::Full(id)));
/// let prefix = IdRef::parse_token("0190a3b2").unwrap();
/// assert!(prefix.matches(&id));
/// assert_eq!(IdRef::parse_token("decade"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum IdRef {
    /// A whole UUID.
    Full(Uuid),
    /// The start of an id, lower case, hyphens kept as written.
    Prefix(String),
}

impl IdRef {
    /// Reads one token as an id: a UUID (hyphenated or not, any case) or a hex prefix of at
    /// least [`MIN_PREFIX_LEN`] characters. `None` for anything else.
    pub fn parse_token(token: &str) -> Option<IdRef> {
        if token.len() >= 32 {
            if let Ok(id) = Uuid::parse_str(token) {
                return Some(IdRef::Full(id));
            }
        }
        let b = token.as_bytes();
        if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
            return None; // a date, 2025-06-01
        }
        let lower = token.to_ascii_lowercase();
        let hex: Vec<char> = lower.chars().filter(|&c| c != '-').collect();
        let only_hex = lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        let digits = hex.iter().filter(|c| c.is_ascii_digit()).count();
        let letters = hex.len() - digits;
        let shaped = only_hex
            && !lower.starts_with('-')
            && hex.len() >= MIN_PREFIX_LEN
            && hex.len() < 32
            && digits > 0
            && (letters > 0 || hex.len() >= 8);
        shaped.then_some(IdRef::Prefix(lower))
    }

    /// Whether `id` is the id this refers to: equal, or starting with the prefix (compared
    /// with hyphens when the prefix has any, without otherwise).
    pub fn matches(&self, id: &Uuid) -> bool {
        match self {
            IdRef::Full(full) => full == id,
            IdRef::Prefix(p) if p.contains('-') => id.hyphenated().to_string().starts_with(p),
            IdRef::Prefix(p) => id.simple().to_string().starts_with(p),
        }
    }
}

impl fmt::Display for IdRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdRef::Full(id) => write!(f, "{id}"),
            IdRef::Prefix(p) => f.write_str(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_words_and_dates_are_not_ids() {
        for t in [
            "100000",
            "decade",
            "facade",
            "abc12",
            "2025-06-01",
            "-0190a3",
        ] {
            assert_eq!(IdRef::parse_token(t), None, "{t}");
        }
        assert!(IdRef::parse_token("12345678").is_some());
        assert!(IdRef::parse_token("cafe12").is_some());
    }

    #[test]
    fn a_hyphenated_prefix_matches_the_hyphenated_form() {
        let id: Uuid = "0190a3b2-7c1d-7e00-8000-000000000001".parse().unwrap();
        assert!(IdRef::parse_token("0190a3b2-7c").unwrap().matches(&id));
        assert!(IdRef::parse_token("0190a3b27c").unwrap().matches(&id));
        assert!(!IdRef::parse_token("0190a3b3").unwrap().matches(&id));
    }
}
