//! Text handling shared by the parser: tokens, edit distance and spelling correction.
//!
//! A message is lower-cased and cut into [`Token`]s: words, numbers, dates (`2025-06-01`) and
//! ids (a UUID, or a hex prefix of one such as `0190a3b2`). Words the parser does not know are
//! corrected to the nearest word it does know ([`Speller`]), so `stauts` reads as `status`.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;

use super::ids::IdRef;

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A lower-case word (letters, possibly with digits after the first letter).
    Word(String),
    /// A whole number (kept as written, for product names such as `27" Monitor`).
    Num(String),
    /// A calendar date written `YYYY-MM-DD`.
    Date(NaiveDate),
    /// An order, customer or dead-letter id, whole or a prefix.
    Id(IdRef),
}

impl Token {
    /// The text a product name or a period is matched against (`None` for dates and ids).
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Num(w) => Some(w),
            Token::Date(_) | Token::Id(_) => None,
        }
    }

    /// The token's value as a number, if it is one (capped to `u32`).
    pub(crate) fn number(&self) -> Option<u32> {
        match self {
            Token::Num(n) => n.parse().ok(),
            _ => None,
        }
    }
}

/// Cuts `message` into tokens. A final `'s` is dropped and other apostrophes removed (`don't`
/// -> `dont`), other punctuation separates tokens, `24h` becomes `24` `h`, and hyphens are kept
/// only inside ids and dates.
pub(crate) fn tokenize(message: &str) -> Vec<Token> {
    let lower = message.to_lowercase().replace('\u{2019}', "'");
    let mut out = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\'')) {
        // `0190a3b2's` is the id `0190a3b2`; `what's` is the word `whats`.
        let before_apostrophe = raw.split('\'').next().unwrap_or_default();
        if let Some(id) = IdRef::parse_token(before_apostrophe.trim_matches('-')) {
            out.push(Token::Id(id));
            continue;
        }
        let joined = raw.strip_suffix("'s").unwrap_or(raw).replace('\'', "");
        let chunk = joined.trim_matches('-');
        if chunk.is_empty() {
            continue;
        }
        if let Some(id) = IdRef::parse_token(chunk) {
            out.push(Token::Id(id));
        } else if let Some(date) = parse_date(chunk) {
            out.push(Token::Date(date));
        } else {
            for part in chunk.split('-').filter(|p| !p.is_empty()) {
                split_number(part, &mut out);
            }
        }
    }
    out
}

fn parse_date(chunk: &str) -> Option<NaiveDate> {
    let shape = chunk.len() == 10 && chunk.as_bytes()[4] == b'-' && chunk.as_bytes()[7] == b'-';
    if shape {
        NaiveDate::parse_from_str(chunk, "%Y-%m-%d").ok()
    } else {
        None
    }
}

/// `24h` -> `24`, `h`; `7days` -> `7`, `days`; words and numbers pass through.
fn split_number(part: &str, out: &mut Vec<Token>) {
    let digits = part.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        out.push(Token::Word(part.to_owned()));
    } else if digits == part.len() {
        out.push(Token::Num(part.to_owned()));
    } else {
        out.push(Token::Num(part[..digits].to_owned()));
        out.push(Token::Word(part[digits..].to_owned()));
    }
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters each cost 1 (`stauts` is one edit from `status`).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// How many edits a word of `len` characters may be away from a known word and still be taken
/// for it: none up to 3 characters (too many short words are one edit apart), one up to 5, two
/// from 6.
pub(crate) fn allowed_edits(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=5 => 1,
        _ => 2,
    }
}

/// Corrects unknown words to the nearest known word.
#[derive(Debug, Clone)]
pub(crate) struct Speller {
    /// Known words with how often they were seen, most frequent first (ties alphabetical).
    words: Vec<(String, u32)>,
    known: HashSet<String>,
}

impl Speller {
    /// A speller knowing `words` (with repetitions: frequency breaks ties between corrections).
    pub(crate) fn new<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for w in words {
            *counts.entry(w).or_default() += 1;
        }
        let mut words: Vec<(String, u32)> =
            counts.into_iter().map(|(w, n)| (w.to_owned(), n)).collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let known = words.iter().map(|(w, _)| w.clone()).collect();
        Self { words, known }
    }

    /// Whether `word` is known as written.
    pub(crate) fn knows(&self, word: &str) -> bool {
        self.known.contains(word)
    }

    /// The known word nearest to `word` within [`allowed_edits`], or `None` when `word` is known
    /// already, too short, or nothing is near enough. Ties go to the more frequent word.
    pub(crate) fn correct(&self, word: &str) -> Option<&str> {
        let len = word.chars().count();
        let max = allowed_edits(len);
        if max == 0 || self.knows(word) {
            return None;
        }
        let mut best: Option<(usize, &str)> = None;
        for (known, _) in &self.words {
            let klen = known.chars().count();
            if klen < 4 || klen.abs_diff(len) > max {
                continue;
            }
            let d = edit_distance(word, known);
            if d <= max && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, known));
            }
        }
        best.map(|(_, w)| w)
    }

    /// `word` cut into two known words when it is two run together (`deadletters` -> `dead`,
    /// `letters`), each at least 2 characters; the split whose rarer half is most frequent.
    pub(crate) fn split<'a>(&self, word: &'a str) -> Option<(&'a str, &'a str)> {
        if self.knows(word) || word.chars().count() < 5 {
            return None;
        }
        let freq = |w: &str| self.words.iter().find(|(k, _)| k == w).map(|(_, n)| *n);
        word.char_indices()
            .skip(2)
            .filter(|(i, _)| word.len() - i >= 2)
            .filter_map(|(i, _)| {
                let (a, b) = word.split_at(i);
                Some((freq(a)?.min(freq(b)?), a, b))
            })
            .max_by_key(|(n, a, _)| (*n, std::cmp::Reverse(a.len())))
            .map(|(_, a, b)| (a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_swaps_once() {
        assert_eq!(edit_distance("stauts", "status"), 1);
        assert_eq!(edit_distance("revnue", "revenue"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn tokens_keep_ids_and_dates_whole() {
        let t = tokenize("What's order 0190a3b2-7c1d's status since 2025-06-01, last 24h?");
        assert_eq!(t[0], Token::Word("what".into()));
        assert!(matches!(t[2], Token::Id(_)));
        assert!(t.contains(&Token::Date(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap())));
        assert!(t.ends_with(&[Token::Num("24".into()), Token::Word("h".into())]));
        let t = tokenize("noise-cancelling");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn speller_prefers_the_nearest_then_the_most_frequent() {
        let s = Speller::new(["status", "status", "stats", "revenue"]);
        assert_eq!(s.correct("stauts"), Some("status"));
        assert_eq!(s.correct("revnue"), Some("revenue"));
        assert_eq!(s.correct("status"), None);
        assert_eq!(s.correct("zzzzzzz"), None);
        assert_eq!(s.correct("sta"), None);
    }

    #[test]
    fn speller_splits_words_run_together() {
        let s = Speller::new(["dead", "letters", "letter", "order", "status"]);
        assert_eq!(s.split("deadletters"), Some(("dead", "letters")));
        assert_eq!(s.split("orderstatus"), Some(("order", "status")));
        assert_eq!(s.split("status"), None);
        assert_eq!(s.split("qqqqqqq"), None);
    }
}
