//! What a message asks: its [`Intent`] with the entities the intent needs, from
//! [`IntentParser::parse`].
//!
//! The parser works in four passes over the message's tokens:
//!
//! 1. ids (UUIDs and hex prefixes) and dates are recognised while cutting the text
//!    ([`IdRef`]);
//! 2. a product of the caller's catalog is looked for, typos allowed ([`ProductMatch`]);
//! 3. every other word it does not know is corrected to the nearest word it does (`stauts` ->
//!    `status`) or, failing that, cut in two known words (`deadletters`); then time ranges
//!    ([`Period`]) and forecast horizons are read;
//! 4. the words, with the entities replaced by placeholders (`status of order <id>`), go to a
//!    logistic-regression classifier trained on the phrasings in `data/assistant/train.tsv`.
//!    A message whose best intent scores below [`DEFAULT_THRESHOLD`] is [`Intent::Unknown`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::classifier::{Classifier, TrainParams};
use super::ids::IdRef;
use super::period::{self, Period};
use super::product::{Product, ProductMatch, find_product};
use super::text::{Speller, Token, tokenize};
use crate::error::{AiError, Result};

/// The training phrasings shipped with the crate (`intent<TAB>phrase` lines).
pub const TRAINING_PHRASES: &str = include_str!("../../data/assistant/train.tsv");

/// The catalog the training phrasings name products from (`id<TAB>name` lines); also the
/// catalog of the evaluation sets.
pub const TRAINING_CATALOG: &str = include_str!("../../data/assistant/catalog.tsv");

/// The lowest probability of the best intent for the message to be taken as that intent;
/// below it the message is [`Intent::Unknown`]. Chosen on `data/assistant/valid.jsonl` as the
/// highest of 0, 0.05, ..., 0.5 with the best validation accuracy (`assistant-eval --valid
/// --sweep`).
pub const DEFAULT_THRESHOLD: f64 = 0.2;

/// Messages are read up to this many characters; the rest is ignored.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// The kinds of question and command the assistant understands, without their entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentKind {
    /// Where an order stands.
    OrderStatus,
    /// Why an order failed or was cancelled.
    WhyFailed,
    /// How many orders over a period.
    OrderCount,
    /// Revenue over a period.
    Revenue,
    /// Stock of a product.
    Stock,
    /// Demand forecast of a product.
    Forecast,
    /// Top recommendations for a customer.
    Recommendations,
    /// Sagas that look abnormal now.
    Anomalies,
    /// Pending dead letters.
    ListDeadLetters,
    /// Replay one dead letter (needs confirmation).
    ReplayDeadLetter,
    /// Discard one dead letter (needs confirmation).
    DiscardDeadLetter,
    /// Yes: run the pending action.
    Confirm,
    /// No: drop the pending action.
    Cancel,
    /// What can you do?
    Help,
    /// Anything else.
    Unknown,
}

impl IntentKind {
    /// Every kind, in label order.
    pub const ALL: [IntentKind; 15] = [
        IntentKind::OrderStatus,
        IntentKind::WhyFailed,
        IntentKind::OrderCount,
        IntentKind::Revenue,
        IntentKind::Stock,
        IntentKind::Forecast,
        IntentKind::Recommendations,
        IntentKind::Anomalies,
        IntentKind::ListDeadLetters,
        IntentKind::ReplayDeadLetter,
        IntentKind::DiscardDeadLetter,
        IntentKind::Confirm,
        IntentKind::Cancel,
        IntentKind::Help,
        IntentKind::Unknown,
    ];

    /// The snake-case name used in data files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentKind::OrderStatus => "order_status",
            IntentKind::WhyFailed => "why_failed",
            IntentKind::OrderCount => "order_count",
            IntentKind::Revenue => "revenue",
            IntentKind::Stock => "stock",
            IntentKind::Forecast => "forecast",
            IntentKind::Recommendations => "recommendations",
            IntentKind::Anomalies => "anomalies",
            IntentKind::ListDeadLetters => "list_dead_letters",
            IntentKind::ReplayDeadLetter => "replay_dead_letter",
            IntentKind::DiscardDeadLetter => "discard_dead_letter",
            IntentKind::Confirm => "confirm",
            IntentKind::Cancel => "cancel",
            IntentKind::Help => "help",
            IntentKind::Unknown => "unknown",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

impl fmt::Display for IntentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntentKind {
    type Err = AiError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| AiError::InvalidInput(format!("unknown intent {s:?}")))
    }
}

/// What a message asks, with what it names. An entity the message did not give is `None`; the
/// assistant then asks for it (ids, products) or uses a default (today, 7 days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub enum Intent {
    /// Where an order stands.
    OrderStatus {
        /// The order.
        order_id: Option<IdRef>,
    },
    /// Why an order failed.
    WhyFailed {
        /// The order.
        order_id: Option<IdRef>,
    },
    /// How many orders.
    OrderCount {
        /// Over which time.
        period: Option<Period>,
    },
    /// How much revenue.
    Revenue {
        /// Over which time.
        period: Option<Period>,
    },
    /// Stock of a product.
    Stock {
        /// Which product.
        product: Option<Product>,
    },
    /// Demand forecast of a product.
    Forecast {
        /// Which product.
        product: Option<Product>,
        /// How many days ahead.
        days: Option<u32>,
    },
    /// Recommendations for a customer.
    Recommendations {
        /// The customer.
        customer_id: Option<IdRef>,
    },
    /// Current anomalies.
    Anomalies,
    /// Pending dead letters.
    ListDeadLetters,
    /// Replay a dead letter.
    ReplayDeadLetter {
        /// Which one.
        id: Option<IdRef>,
    },
    /// Discard a dead letter.
    DiscardDeadLetter {
        /// Which one.
        id: Option<IdRef>,
    },
    /// Yes.
    Confirm,
    /// No.
    Cancel,
    /// What can you do?
    Help,
    /// Not something the assistant can answer.
    Unknown,
}

impl Intent {
    /// The intent's kind.
    pub fn kind(&self) -> IntentKind {
        match self {
            Intent::OrderStatus { .. } => IntentKind::OrderStatus,
            Intent::WhyFailed { .. } => IntentKind::WhyFailed,
            Intent::OrderCount { .. } => IntentKind::OrderCount,
            Intent::Revenue { .. } => IntentKind::Revenue,
            Intent::Stock { .. } => IntentKind::Stock,
            Intent::Forecast { .. } => IntentKind::Forecast,
            Intent::Recommendations { .. } => IntentKind::Recommendations,
            Intent::Anomalies => IntentKind::Anomalies,
            Intent::ListDeadLetters => IntentKind::ListDeadLetters,
            Intent::ReplayDeadLetter { .. } => IntentKind::ReplayDeadLetter,
            Intent::DiscardDeadLetter { .. } => IntentKind::DiscardDeadLetter,
            Intent::Confirm => IntentKind::Confirm,
            Intent::Cancel => IntentKind::Cancel,
            Intent::Help => IntentKind::Help,
            Intent::Unknown => IntentKind::Unknown,
        }
    }

    /// The intent of `kind` with the entities it takes from `e` (the first id for ids).
    pub fn from_entities(kind: IntentKind, e: &Entities) -> Intent {
        let id = e.ids.first().cloned();
        let product = e.product.as_ref().map(|m| m.product.clone());
        let period = e.period.clone();
        match kind {
            IntentKind::OrderStatus => Intent::OrderStatus { order_id: id },
            IntentKind::WhyFailed => Intent::WhyFailed { order_id: id },
            IntentKind::OrderCount => Intent::OrderCount { period },
            IntentKind::Revenue => Intent::Revenue { period },
            IntentKind::Stock => Intent::Stock { product },
            IntentKind::Forecast => Intent::Forecast {
                product,
                days: e.days,
            },
            IntentKind::Recommendations => Intent::Recommendations { customer_id: id },
            IntentKind::Anomalies => Intent::Anomalies,
            IntentKind::ListDeadLetters => Intent::ListDeadLetters,
            IntentKind::ReplayDeadLetter => Intent::ReplayDeadLetter { id },
            IntentKind::DiscardDeadLetter => Intent::DiscardDeadLetter { id },
            IntentKind::Confirm => Intent::Confirm,
            IntentKind::Cancel => Intent::Cancel,
            IntentKind::Help => Intent::Help,
            IntentKind::Unknown => Intent::Unknown,
        }
    }
}

/// Everything the parser found in a message, whatever the intent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entities {
    /// Ids, in the order written.
    pub ids: Vec<IdRef>,
    /// The best-matching product of the catalog.
    pub product: Option<ProductMatch>,
    /// The first time range.
    pub period: Option<Period>,
    /// A forecast horizon in days ("next 2 weeks" = 14).
    pub days: Option<u32>,
}

/// The parser's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parsed {
    /// The intent, with its entities.
    pub intent: Intent,
    /// The classifier's probability of the intent's kind (of the best kind when the message
    /// was found [`Intent::Unknown`] for scoring below the threshold).
    pub confidence: f64,
    /// Everything found in the message.
    pub entities: Entities,
}

/// A message cut into words for the classifier, with its entities.
struct Analysis {
    words: Vec<String>,
    entities: Entities,
}

/// Reads messages as intents. Training takes well under a second; build one and share it.
///
/// ```
/// use saga_ai::assistant::{Intent, IntentParser, Product};
/// let parser = IntentParser::new()?;
/// let catalog = [Product::new("p-7", "Desk Lamp"), Product::new("p-8", "Webcam HD")];
/// let now = "2025-06-11T15:30:00Z".parse().unwrap();
///
/// let parsed = parser.parse("how many desk lmaps do we have left?", &catalog, now);
/// assert_eq!(parsed.intent, Intent::Stock { product: Some(catalog[0].clone()) });
///
/// let parsed = parser.parse("revnue yesterday", &catalog, now);
/// let Intent::Revenue { period: Some(p) } = parsed.intent else { panic!("{parsed:?}") };
/// assert_eq!(p.label, "yesterday");
/// assert_eq!(p.start.to_rfc3339(), "2025-06-10T00:00:00+00:00");
///
/// let parsed = parser.parse("whats the weather in paris", &catalog, now);
/// assert_eq!(parsed.intent, Intent::Unknown);
/// # Ok::<(), saga_ai::AiError>(())
/// ```
#[derive(Debug, Clone)]
pub struct IntentParser {
    classifier: Classifier,
    speller: Speller,
    threshold: f64,
    spelling: bool,
}

/// Reads `id<TAB>name` lines (`#` comments and blank lines skipped) as a catalog.
pub fn parse_catalog(text: &str) -> Result<Vec<Product>> {
    data_lines(text)
        .map(|(n, line)| {
            let (id, name) = line
                .split_once('\t')
                .ok_or_else(|| AiError::Data(format!("catalog line {n}: no tab in {line:?}")))?;
            Ok(Product::new(id.trim(), name.trim()))
        })
        .collect()
}

/// Reads `intent<TAB>phrase` lines (`#` comments and blank lines skipped).
pub fn parse_training(text: &str) -> Result<Vec<(IntentKind, String)>> {
    data_lines(text)
        .map(|(n, line)| {
            let (kind, phrase) = line
                .split_once('\t')
                .ok_or_else(|| AiError::Data(format!("training line {n}: no tab in {line:?}")))?;
            let kind = kind
                .trim()
                .parse()
                .map_err(|e| AiError::Data(format!("training line {n}: {e}")))?;
            Ok((kind, phrase.trim().to_owned()))
        })
        .collect()
}

fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
}

impl IntentParser {
    /// A parser trained on the crate's training phrasings ([`TRAINING_PHRASES`]).
    pub fn new() -> Result<Self> {
        Self::train(
            &parse_training(TRAINING_PHRASES)?,
            &parse_catalog(TRAINING_CATALOG)?,
            TrainParams::default(),
            DEFAULT_THRESHOLD,
        )
    }

    /// A parser trained on `examples`, whose product names come from `catalog`. Messages
    /// whose best intent scores below `threshold` are [`Intent::Unknown`].
    pub fn train(
        examples: &[(IntentKind, String)],
        catalog: &[Product],
        params: TrainParams,
        threshold: f64,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(AiError::InvalidInput(format!(
                "threshold {threshold} outside [0, 1]"
            )));
        }
        let now = DateTime::UNIX_EPOCH;
        let analysed: Vec<(usize, Vec<String>)> = examples
            .iter()
            .map(|(k, text)| (k.index(), analyse(text, catalog, now, None).words))
            .collect();
        let vocabulary = analysed
            .iter()
            .flat_map(|(_, ws)| ws.iter().map(String::as_str))
            .filter(|w| !w.starts_with('<'))
            .chain(period::WORDS.iter().copied())
            .chain(period::MONTHS);
        let speller = Speller::new(vocabulary);
        let classifier = Classifier::train(&analysed, IntentKind::ALL.len(), params)?;
        Ok(Self {
            classifier,
            speller,
            threshold,
            spelling: true,
        })
    }

    /// The same parser with another unknown-intent threshold.
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold.clamp(0.0, 1.0);
        self
    }

    /// The same parser with spelling correction on (the default) or off (to measure what it
    /// brings).
    pub fn with_spelling(mut self, on: bool) -> Self {
        self.spelling = on;
        self
    }

    /// Reads `message` (its first [`MAX_MESSAGE_CHARS`] characters): products are looked up in
    /// `catalog`, time ranges are resolved against `now`.
    pub fn parse(&self, message: &str, catalog: &[Product], now: DateTime<Utc>) -> Parsed {
        let end = message
            .char_indices()
            .nth(MAX_MESSAGE_CHARS)
            .map_or(message.len(), |(i, _)| i);
        let speller = self.spelling.then_some(&self.speller);
        let analysis = analyse(&message[..end], catalog, now, speller);
        let probs = self.classifier.probabilities(&analysis.words);
        let (best, confidence) = probs
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((IntentKind::Unknown.index(), 0.0));
        let known = (analysis.words.iter()).any(|w| w.starts_with('<') || self.speller.knows(w));
        let kind = if confidence < self.threshold || !known {
            IntentKind::Unknown
        } else {
            IntentKind::ALL[best]
        };
        Parsed {
            intent: Intent::from_entities(kind, &analysis.entities),
            confidence,
            entities: analysis.entities,
        }
    }
}

/// A message as the classifier would see it before spelling correction: lower-case words with
/// ids, products, periods and numbers replaced by placeholders (`why did order <id> fail`).
/// Two phrasings with the same surface form differ only in their entities; the evaluation sets
/// share none with the training set.
pub fn surface_form(message: &str, catalog: &[Product]) -> String {
    analyse(message, catalog, DateTime::UNIX_EPOCH, None)
        .words
        .join(" ")
}

/// Tokens, product, spelling, periods and placeholders: the passes of the module docs.
fn analyse(
    message: &str,
    catalog: &[Product],
    now: DateTime<Utc>,
    speller: Option<&Speller>,
) -> Analysis {
    let mut tokens = tokenize(message);
    let mut entities = Entities::default();
    // What each token became: None = still a word or number.
    let mut slot: Vec<Option<&'static str>> = vec![None; tokens.len()];

    if let Some((found, at)) = find_product(&tokens, &vec![false; tokens.len()], catalog) {
        entities.product = Some(found);
        for i in at {
            slot[i] = Some("<product>");
            tokens[i] = Token::Word("<product>".to_owned());
        }
    }
    if let Some(speller) = speller {
        let mut fixed = Vec::with_capacity(tokens.len());
        let mut fixed_slot = Vec::with_capacity(tokens.len());
        for (t, s) in tokens.into_iter().zip(slot) {
            let (Token::Word(w), None) = (&t, s) else {
                fixed.push(t);
                fixed_slot.push(s);
                continue;
            };
            if let Some(c) = speller.correct(w) {
                fixed.push(Token::Word(c.to_owned()));
            } else if let Some((a, b)) = speller.split(w) {
                fixed.push(Token::Word(a.to_owned()));
                fixed_slot.push(None);
                fixed.push(Token::Word(b.to_owned()));
            } else {
                fixed.push(t);
            }
            fixed_slot.push(s);
        }
        (tokens, slot) = (fixed, fixed_slot);
    }
    if let Some((p, span)) = period::find_period(&tokens, now) {
        entities.period = Some(p);
        span.for_each(|i| slot[i] = Some("<period>"));
    }
    if let Some((days, span)) = period::find_horizon(&tokens) {
        if span.clone().all(|i| slot[i].is_none()) {
            entities.days = Some(days);
            span.for_each(|i| slot[i] = Some("<horizon>"));
        }
    }

    let mut words: Vec<String> = Vec::with_capacity(tokens.len());
    for (t, s) in tokens.iter().zip(&slot) {
        let word = match (s, t) {
            (Some(placeholder), _) => (*placeholder).to_owned(),
            (None, Token::Id(id)) => {
                entities.ids.push(id.clone());
                "<id>".to_owned()
            }
            (None, Token::Date(_)) => "<date>".to_owned(),
            (None, Token::Num(_)) => "<num>".to_owned(),
            (None, Token::Word(w)) => w.clone(),
        };
        // A run of one entity is one placeholder: "<product>", not "<product> <product>".
        if !(word.starts_with('<') && words.last() == Some(&word) && word != "<id>") {
            words.push(word);
        }
    }
    Analysis { words, entities }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_data_parses_and_covers_every_intent() {
        let examples = parse_training(TRAINING_PHRASES).unwrap();
        for kind in IntentKind::ALL {
            let n = examples.iter().filter(|(k, _)| *k == kind).count();
            assert!(n >= 10, "{kind}: {n} training phrasings");
        }
        assert!(!parse_catalog(TRAINING_CATALOG).unwrap().is_empty());
        assert!(parse_training("stock\tok\nnope\tbad").is_err());
        assert!(parse_training("no tab here").is_err());
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in IntentKind::ALL {
            assert_eq!(kind.as_str().parse::<IntentKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
    }

    #[test]
    fn entities_fill_the_intents_slots_and_serialise_tagged() {
        let parser = IntentParser::new().unwrap();
        let now = "2025-06-11T15:30:00Z".parse().unwrap();
        let parsed = parser.parse("why did order 0190a3b2 fail?", &[], now);
        assert_eq!(
            parsed.intent,
            Intent::WhyFailed {
                order_id: Some(IdRef::Prefix("0190a3b2".into()))
            }
        );
        let json = serde_json::to_value(&parsed.intent).unwrap();
        assert_eq!(json["intent"], "why_failed");
        assert_eq!(json["order_id"]["value"], "0190a3b2");
        assert_eq!(parser.parse("", &[], now).intent, Intent::Unknown);
        let long = "stock ".repeat(10_000);
        assert!(parser.parse(&long, &[], now).confidence <= 1.0);
    }
}
