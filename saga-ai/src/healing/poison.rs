//! Telling a message that will never be processed (poison) from a passing failure.
//!
//! Retrying a poison message wastes every attempt of the retry policy and, on an ordered
//! subscription, holds its key back all that time. The classifier looks at a failure (its
//! kind, its message, the attempt, the errors of earlier attempts) and answers retry, or
//! dead-letter now with a diagnosis an operator can act on.

use serde::{Deserialize, Serialize};

/// One failed attempt at handling a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure<'a> {
    /// The handler said retrying cannot help (`HandlerError::Permanent`).
    pub permanent: bool,
    /// The error's message.
    pub message: &'a str,
    /// Which delivery this was, from 1.
    pub attempt: u32,
    /// The messages of the earlier failed attempts of the same message, oldest first, as far
    /// as the caller remembers them.
    pub earlier: &'a [String],
}

/// What kind of poison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonKind {
    /// The body cannot be read as the event it claims to be.
    Undecodable,
    /// The event's type or schema version is one this consumer does not know.
    UnsupportedVersion,
    /// The body reads but breaks a rule (a missing or invalid field).
    InvalidPayload,
    /// The handler said so, for a reason of its own.
    Rejected,
    /// The same error on every attempt: retrying does not change it.
    RepeatedError,
}

/// Why a message is poison, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The kind.
    pub kind: PoisonKind,
    /// What to look at.
    pub detail: String,
}

/// The classifier's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureClass {
    /// A passing fault: retry with backoff.
    Transient,
    /// Dead-letter now.
    Poison(Diagnosis),
}

/// Classifies failures. `repeats`: how many attempts in a row with the same error make a
/// transient error poison (at least 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoisonClassifier {
    repeats: u32,
}

impl Default for PoisonClassifier {
    /// Three identical failures in a row.
    fn default() -> Self {
        Self { repeats: 3 }
    }
}

/// Words of errors that no retry cures: decoding.
const UNDECODABLE: &[&str] = &[
    "invalid envelope",
    "expected value",
    "expected `",
    "eof while parsing",
    "invalid type",
    "trailing characters",
    "not valid utf-8",
    "undecodable",
    "cannot decode",
    "could not decode",
    "decoding",
    "parsing failed",
];
/// ... versions and types.
const UNSUPPORTED: &[&str] = &[
    "unknown event type",
    "unknown version",
    "unsupported version",
    "no upcaster",
    "unknown variant",
    "payload mismatch",
];
/// ... rules broken by the data.
const INVALID: &[&str] = &[
    "missing field",
    "unknown field",
    "invalid value",
    "out of range",
    "must be",
];

impl PoisonClassifier {
    /// A classifier calling a transient error poison after `repeats` identical attempts.
    pub fn new(repeats: u32) -> Self {
        Self {
            repeats: repeats.max(2),
        }
    }

    /// Retry or dead-letter.
    pub fn classify(&self, failure: &Failure<'_>) -> FailureClass {
        let lower = failure.message.to_lowercase();
        let found = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        let poison = |kind: PoisonKind, why: &str| {
            FailureClass::Poison(Diagnosis {
                kind,
                detail: format!("{why}: {}", failure.message),
            })
        };
        if found(UNDECODABLE) {
            return poison(
                PoisonKind::Undecodable,
                "the body cannot be decoded; fix the producer or add an upcaster, then replay",
            );
        }
        if found(UNSUPPORTED) {
            return poison(
                PoisonKind::UnsupportedVersion,
                "this consumer does not know the event's type or version; deploy a consumer that does, then replay",
            );
        }
        if found(INVALID) {
            return poison(
                PoisonKind::InvalidPayload,
                "the event breaks a rule of its schema; correct the data, then replay or discard",
            );
        }
        if failure.permanent {
            return poison(
                PoisonKind::Rejected,
                "the handler rejected it as not retryable; fix the cause, then replay or discard it",
            );
        }
        let same_before = failure
            .earlier
            .iter()
            .rev()
            .take_while(|m| m.as_str() == failure.message)
            .count();
        let repeats = u32::try_from(same_before)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        if repeats >= self.repeats {
            return FailureClass::Poison(Diagnosis {
                kind: PoisonKind::RepeatedError,
                detail: format!(
                    "the same error {repeats} times in a row (attempt {}); retrying does not change it: {}",
                    failure.attempt, failure.message
                ),
            });
        }
        FailureClass::Transient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure<'a>(permanent: bool, message: &'a str, earlier: &'a [String]) -> Failure<'a> {
        Failure {
            permanent,
            message,
            attempt: u32::try_from(earlier.len()).unwrap() + 1,
            earlier,
        }
    }

    fn kind(c: FailureClass) -> Option<PoisonKind> {
        match c {
            FailureClass::Transient => None,
            FailureClass::Poison(d) => Some(d.kind),
        }
    }

    #[test]
    fn decoding_version_and_schema_errors_are_poison_even_when_called_transient() {
        let c = PoisonClassifier::default();
        let cases = [
            ("expected value at line 1 column 1", PoisonKind::Undecodable),
            (
                "invalid envelope: trailing characters",
                PoisonKind::Undecodable,
            ),
            (
                "unknown event type order.exploded",
                PoisonKind::UnsupportedVersion,
            ),
            (
                "payload mismatch for order.placed v3",
                PoisonKind::UnsupportedVersion,
            ),
            ("missing field `items`", PoisonKind::InvalidPayload),
        ];
        for (msg, want) in cases {
            assert_eq!(
                kind(c.classify(&failure(false, msg, &[]))),
                Some(want),
                "{msg}"
            );
        }
    }

    #[test]
    fn passing_errors_retry_until_they_repeat() {
        let c = PoisonClassifier::default();
        let msg = "connection reset by peer";
        assert_eq!(
            c.classify(&failure(false, msg, &[])),
            FailureClass::Transient
        );
        let once = vec![msg.to_owned()];
        assert_eq!(
            c.classify(&failure(false, msg, &once)),
            FailureClass::Transient
        );
        let twice = vec![msg.to_owned(), msg.to_owned()];
        assert_eq!(
            kind(c.classify(&failure(false, msg, &twice))),
            Some(PoisonKind::RepeatedError)
        );
        // Different errors each time are not a pattern.
        let varied = vec!["timeout".to_owned(), "pool closed".to_owned()];
        assert_eq!(
            c.classify(&failure(false, msg, &varied)),
            FailureClass::Transient
        );
    }

    #[test]
    fn permanent_errors_are_poison_with_the_handlers_reason() {
        let c = PoisonClassifier::default();
        match c.classify(&failure(true, "order already shipped", &[])) {
            FailureClass::Poison(d) => {
                assert_eq!(d.kind, PoisonKind::Rejected);
                assert!(d.detail.contains("order already shipped"));
            }
            other => panic!("{other:?}"),
        }
    }
}
