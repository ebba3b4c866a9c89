//! Measuring the parser on labelled phrasings: intent accuracy, entity accuracy, and the
//! confusion of the misses.
//!
//! A labelled phrasing is one JSON object per line:
//!
//! ```json
//! {"text": "revnue since monday", "intent": "revenue", "period": ["2025-06-09T00:00:00Z", "2025-06-11T15:30:00Z"]}
//! ```
//!
//! with the optional entities `id` (the first id as written, lower case), `product` (the
//! catalog id), `period` (`[start, end]`) and `days` (forecast horizon). An entity left out is
//! expected absent: finding one there is an error too. Periods are resolved against
//! [`EVAL_NOW`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::intent::{Entities, IntentKind, IntentParser};
use super::product::Product;
use crate::error::{AiError, Result};

/// The time the evaluation sets' periods are written against: Wednesday 2025-06-11 15:30 UTC.
pub const EVAL_NOW: &str = "2025-06-11T15:30:00Z";

/// The held-out test phrasings shipped with the crate.
pub const TEST_PHRASES: &str = include_str!("../../data/assistant/phrasings.jsonl");

/// The validation phrasings (used to choose the unknown-intent threshold).
pub const VALID_PHRASES: &str = include_str!("../../data/assistant/valid.jsonl");

/// One labelled phrasing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The message.
    pub text: String,
    /// The expected intent.
    pub intent: IntentKind,
    /// The expected first id, as written (lower case).
    #[serde(default)]
    pub id: Option<String>,
    /// The expected product's catalog id.
    #[serde(default)]
    pub product: Option<String>,
    /// The expected period, start and end.
    #[serde(default)]
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The expected forecast horizon in days.
    #[serde(default)]
    pub days: Option<u32>,
}

/// Reads labelled phrasings, one JSON object per line (blank lines skipped).
pub fn parse_cases(text: &str) -> Result<Vec<Case>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| AiError::Data(format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// The entity slots of a [`Case`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// The first id.
    Id,
    /// The product.
    Product,
    /// The period.
    Period,
    /// The forecast horizon.
    Days,
}

/// How one slot fared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotScore {
    /// Cases expecting the slot filled.
    pub expected: usize,
    /// Of them, filled with the right value.
    pub correct: usize,
    /// Cases expecting it empty where something was found.
    pub spurious: usize,
}

/// A phrasing the parser got wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Miss {
    /// The message.
    pub text: String,
    /// Expected intent.
    pub expected: IntentKind,
    /// Predicted intent.
    pub predicted: IntentKind,
    /// The parser's confidence.
    pub confidence: f64,
    /// The slots it got wrong (empty for an intent-only miss).
    pub slots: Vec<Slot>,
}

/// The figures of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Phrasings.
    pub cases: usize,
    /// Of them, with the intent right.
    pub intent_correct: usize,
    /// Of them, with every entity slot right (filled or empty as expected).
    pub entities_correct: usize,
    /// Per slot.
    pub slots: BTreeMap<Slot, SlotScore>,
    /// `(expected, predicted)` -> count, for the intent misses.
    pub confusion: BTreeMap<String, usize>,
    /// Every phrasing with a wrong intent or a wrong slot.
    pub misses: Vec<Miss>,
}

impl Evaluation {
    /// Share of phrasings with the right intent.
    pub fn intent_accuracy(&self) -> f64 {
        self.intent_correct as f64 / self.cases.max(1) as f64
    }

    /// Share of phrasings with every entity right.
    pub fn entity_accuracy(&self) -> f64 {
        self.entities_correct as f64 / self.cases.max(1) as f64
    }
}

fn slot_values(e: &Entities) -> [(Slot, Option<String>); 4] {
    [
        (Slot::Id, e.ids.first().map(ToString::to_string)),
        (
            Slot::Product,
            e.product.as_ref().map(|m| m.product.id.clone()),
        ),
        (
            Slot::Period,
            e.period
                .as_ref()
                .map(|p| format!("{}/{}", p.start.to_rfc3339(), p.end.to_rfc3339())),
        ),
        (Slot::Days, e.days.map(|d| d.to_string())),
    ]
}

fn expected_values(c: &Case) -> [Option<String>; 4] {
    [
        c.id.as_ref().map(|s| s.to_lowercase()),
        c.product.clone(),
        c.period
            .map(|(s, e)| format!("{}/{}", s.to_rfc3339(), e.to_rfc3339())),
        c.days.map(|d| d.to_string()),
    ]
}

/// Parses every case with `catalog` at [`EVAL_NOW`] and compares.
pub fn evaluate(parser: &IntentParser, cases: &[Case], catalog: &[Product]) -> Result<Evaluation> {
    let now: DateTime<Utc> = EVAL_NOW
        .parse()
        .map_err(|e| AiError::InvalidInput(format!("{EVAL_NOW}: {e}")))?;
    let mut eval = Evaluation {
        cases: cases.len(),
        intent_correct: 0,
        entities_correct: 0,
        slots: BTreeMap::new(),
        confusion: BTreeMap::new(),
        misses: Vec::new(),
    };
    for case in cases {
        let parsed = parser.parse(&case.text, catalog, now);
        let predicted = parsed.intent.kind();
        let mut wrong_slots = Vec::new();
        for ((slot, got), want) in slot_values(&parsed.entities)
            .into_iter()
            .zip(expected_values(case))
        {
            let score = eval.slots.entry(slot).or_default();
            match (&want, &got) {
                (Some(w), g) => {
                    score.expected += 1;
                    if g.as_ref() == Some(w) {
                        score.correct += 1;
                    } else {
                        wrong_slots.push(slot);
                    }
                }
                (None, Some(_)) => {
                    score.spurious += 1;
                    wrong_slots.push(slot);
                }
                (None, None) => {}
            }
        }
        if predicted == case.intent {
            eval.intent_correct += 1;
        } else {
            *eval
                .confusion
                .entry(format!("{} -> {}", case.intent, predicted))
                .or_default() += 1;
        }
        if wrong_slots.is_empty() {
            eval.entities_correct += 1;
        }
        if predicted != case.intent || !wrong_slots.is_empty() {
            eval.misses.push(Miss {
                text: case.text.clone(),
                expected: case.intent,
                predicted,
                confidence: parsed.confidence,
                slots: wrong_slots,
            });
        }
    }
    Ok(eval)
}
