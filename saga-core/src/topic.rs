//! AMQP-style topic patterns over dotted event types.
//!
//! A topic (an [`Envelope::event_type`](crate::Envelope::event_type)) is a list of words
//! separated by dots: `order.placed`, `payment.refund.requested`. A pattern is the same, where
//! a word may also be
//!
//! * `*`: exactly one word,
//! * `#`: zero or more words.
//!
//! ```
//! use saga_core::topic::TopicPattern;
//! let p = TopicPattern::parse("order.*")?;
//! assert!(p.matches("order.placed"));
//! assert!(!p.matches("order.item.added"));
//! let p = TopicPattern::parse("payment.#")?;
//! assert!(p.matches("payment"));
//! assert!(p.matches("payment.refund.requested"));
//! assert!(TopicPattern::parse("ord*").is_err());
//! # Ok::<(), saga_core::Error>(())
//! ```
//!
//! Matching runs the pattern as a small automaton over the topic's words, so it takes at most
//! `words(pattern) * words(topic)` steps: patterns such as `#.#.#.#.x` cannot blow up.
//!
//! The empty topic `""` has zero words (only `#` matches it); other topics are split on every
//! dot, so `a..b` has an empty middle word, which only `*` or `#` can match.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// One word of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Word {
    /// Matches this word only.
    Literal(String),
    /// `*`: any one word.
    One,
    /// `#`: zero or more words.
    Many,
}

/// A parsed topic pattern (`order.*`, `payment.#`, `order.placed`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    source: String,
    words: Vec<Word>,
}

impl TopicPattern {
    /// Parses a pattern.
    ///
    /// Fails with [`Error::InvalidPattern`] for an empty pattern, an empty word (`a..b`, `.a`,
    /// `a.`) or a wildcard inside a word (`ord*`, `a#b`).
    pub fn parse(pattern: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.is_empty() {
            return Err(invalid("the pattern is empty".into()));
        }
        let words = pattern
            .split('.')
            .enumerate()
            .map(|(i, word)| match word {
                "" => Err(invalid(format!("word {} is empty", i + 1))),
                "*" => Ok(Word::One),
                "#" => Ok(Word::Many),
                w if w.contains(['*', '#']) => Err(invalid(format!(
                    "word `{w}` mixes a wildcard with other characters; `*` and `#` must stand alone"
                ))),
                w => Ok(Word::Literal(w.to_owned())),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            source: pattern.to_owned(),
            words,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `topic` matches this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        let m = self.words.len();
        // reachable[i]: the first i pattern words can match the topic words read so far.
        // Both state sets live on the stack unless the pattern is very long (one is matched
        // per published message and subscription).
        let mut stack = [false; 64];
        let mut heap = Vec::new();
        let states: &mut [bool] = if 2 * (m + 1) <= stack.len() {
            &mut stack[..2 * (m + 1)]
        } else {
            heap.resize(2 * (m + 1), false);
            &mut heap
        };
        let (mut reachable, mut next) = states.split_at_mut(m + 1);
        reachable[0] = true;
        self.close(reachable);
        for word in topic_words(topic) {
            next.iter_mut().for_each(|r| *r = false);
            let mut any = false;
            for (i, pw) in self.words.iter().enumerate() {
                if !reachable[i] {
                    continue;
                }
                match pw {
                    Word::Literal(l) if l == word => next[i + 1] = true,
                    Word::Literal(_) => continue,
                    Word::One => next[i + 1] = true,
                    Word::Many => next[i] = true,
                }
                any = true;
            }
            if !any {
                return false;
            }
            self.close(next);
            std::mem::swap(&mut reachable, &mut next);
        }
        reachable[m]
    }

    /// Adds the states reachable by letting `#` match zero words.
    fn close(&self, states: &mut [bool]) {
        for (i, pw) in self.words.iter().enumerate() {
            if states[i] && *pw == Word::Many {
                states[i + 1] = true;
            }
        }
    }
}

fn topic_words(topic: &str) -> impl Iterator<Item = &str> {
    // "" has zero words; anything else splits on every dot.
    topic.split('.').filter(move |_| !topic.is_empty())
}

/// Whether any of `patterns` matches `topic`.
pub fn matches_any(patterns: &[TopicPattern], topic: &str) -> bool {
    patterns.iter().any(|p| p.matches(topic))
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for TopicPattern {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> TopicPattern {
        match TopicPattern::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    /// Backtracking reference: obviously right, exponential in the worst case.
    fn reference(pattern: &[&str], topic: &[&str]) -> bool {
        match pattern.split_first() {
            None => topic.is_empty(),
            Some((&"#", rest)) => (0..=topic.len()).any(|k| reference(rest, &topic[k..])),
            Some((&"*", rest)) => !topic.is_empty() && reference(rest, &topic[1..]),
            Some((lit, rest)) => topic.first() == Some(lit) && reference(rest, &topic[1..]),
        }
    }

    #[test]
    fn star_matches_exactly_one_word() {
        let pat = p("order.*");
        assert!(pat.matches("order.placed"));
        assert!(!pat.matches("order"));
        assert!(!pat.matches("order.item.added"));
        assert!(!pat.matches("payment.placed"));
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        let pat = p("payment.#");
        assert!(pat.matches("payment"));
        assert!(pat.matches("payment.captured"));
        assert!(pat.matches("payment.refund.requested"));
        assert!(!pat.matches("order.placed"));
        assert!(!pat.matches("payments"));
    }

    #[test]
    fn hash_in_the_middle() {
        let pat = p("a.#.z");
        assert!(pat.matches("a.z"));
        assert!(pat.matches("a.b.z"));
        assert!(pat.matches("a.b.c.z"));
        assert!(!pat.matches("a.b.c"));
        assert!(!pat.matches("z"));
    }

    #[test]
    fn lone_hash_matches_everything_even_empty() {
        let pat = p("#");
        assert!(pat.matches(""));
        assert!(pat.matches("a"));
        assert!(pat.matches("a.b.c"));
    }

    #[test]
    fn literal_pattern_matches_only_itself() {
        let pat = p("order.placed");
        assert!(pat.matches("order.placed"));
        assert!(!pat.matches("order.placed.v2"));
        assert!(!pat.matches("order"));
        assert!(!pat.matches(""));
    }

    #[test]
    fn empty_pattern_is_invalid() {
        assert!(matches!(
            TopicPattern::parse(""),
            Err(Error::InvalidPattern { .. })
        ));
    }

    #[test]
    fn empty_words_are_invalid() {
        for bad in ["a..b", ".a", "a.", "."] {
            assert!(
                matches!(TopicPattern::parse(bad), Err(Error::InvalidPattern { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn wildcards_inside_words_are_invalid() {
        for bad in ["ord*", "a.#b", "*#", "a.b*c", "##"] {
            let err = TopicPattern::parse(bad);
            assert!(matches!(err, Err(Error::InvalidPattern { .. })), "{bad}");
        }
    }

    #[test]
    fn display_and_as_str_give_the_source() {
        let pat = p("order.*.done");
        assert_eq!(pat.as_str(), "order.*.done");
        assert_eq!(pat.to_string(), "order.*.done");
        assert_eq!("order.*.done".parse::<TopicPattern>().ok(), Some(pat));
    }

    #[test]
    fn matches_any_checks_each_pattern() {
        let pats = [p("order.*"), p("payment.#")];
        assert!(matches_any(&pats, "order.placed"));
        assert!(matches_any(&pats, "payment.refund.done"));
        assert!(!matches_any(&pats, "shipping.sent"));
        assert!(!matches_any(&[], "order.placed"));
    }

    #[test]
    fn many_hashes_on_a_long_topic_stay_fast() {
        let pattern = format!("{}x", "#.".repeat(40));
        let pat = p(&pattern);
        let topic = vec!["a"; 2_000].join(".");
        // Backtracking would take forever here; the automaton is O(40 * 2000).
        assert!(!pat.matches(&topic));
        assert!(pat.matches(&format!("{topic}.x")));
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof!["a", "b", "c", "[a-z]{1,4}"].prop_map(String::from)
    }

    fn pattern_word() -> impl Strategy<Value = String> {
        prop_oneof![word(), Just("*".to_owned()), Just("#".to_owned())]
    }

    proptest! {
        #[test]
        fn literal_matches_only_itself(
            words in prop::collection::vec(word(), 1..6),
            other in prop::collection::vec(word(), 1..6),
        ) {
            let topic = words.join(".");
            let pat = p(&topic);
            prop_assert!(pat.matches(&topic));
            let other = other.join(".");
            prop_assert_eq!(pat.matches(&other), other == topic);
        }

        #[test]
        fn hash_matches_everything(words in prop::collection::vec(word(), 0..8)) {
            prop_assert!(p("#").matches(&words.join(".")));
        }

        #[test]
        fn stars_match_exactly_their_count(stars in 1usize..6, words in prop::collection::vec(word(), 1..8)) {
            let pat = p(&vec!["*"; stars].join("."));
            prop_assert_eq!(pat.matches(&words.join(".")), words.len() == stars);
        }

        #[test]
        fn agrees_with_backtracking_reference(
            pattern in prop::collection::vec(pattern_word(), 1..7),
            topic in prop::collection::vec(word(), 0..8),
        ) {
            let pat = p(&pattern.join("."));
            let pw: Vec<&str> = pattern.iter().map(String::as_str).collect();
            let tw: Vec<&str> = topic.iter().map(String::as_str).collect();
            prop_assert_eq!(pat.matches(&topic.join(".")), reference(&pw, &tw));
        }

        #[test]
        fn parse_never_panics(s in ".{0,20}") {
            let _ = TopicPattern::parse(&s).map(|p| p.matches(&s));
        }
    }
}
