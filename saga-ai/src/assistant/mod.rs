//! A chat assistant that answers questions about a running saga system from its live data, and
//! replays or discards dead letters once the user confirms. Offline by default: no network, no
//! language model; deterministic.
//!
//! The application implements [`Tools`] over its data; [`Assistant`] turns a message into an
//! [`Intent`] with [`IntentParser`], calls the tools the intent needs and returns a [`Reply`]:
//! a plain-text answer, the data behind it and the intent, all serde-serialisable.
//!
//! ```text
//! "why did ordr 0190a3b2 fail?"
//!   -> tokens:       why did ordr <id:0190a3b2> fail
//!   -> spelling:     why did order <id> fail
//!   -> classifier:   why_failed
//!   -> Tools::order(Prefix("0190a3b2")) -> OrderInfo { outcome: Failed, failure, .. }
//!   -> "Order 0190a3b2-... failed at step charge_payment: card declined. Undone by: release_inventory."
//! ```
//!
//! Understood: an order's status and why it failed; order counts and revenue over a period;
//! stock and demand forecast of a product; recommendations for a customer; current anomalies;
//! listing, replaying and discarding dead letters; yes / no to a pending action; help.
//! Anything else gets "I can't answer that" with example questions.
//!
//! Map:
//! - [`intent`]: [`Intent`], [`IntentKind`] and [`IntentParser`] (the parser's passes are
//!   described there); [`classifier`]: the logistic regression on words and character n-grams.
//! - [`ids`], [`period`], [`product`]: the entities (ids and id prefixes, time ranges and
//!   forecast horizons, catalog products matched with typos).
//! - [`tools`]: the [`Tools`] trait the application implements and its data types.
//! - [`chat`]: [`Assistant`], [`Reply`] and the confirmation flow ([`pending`]).
//! - [`eval`]: intent and entity accuracy on labelled phrasings (the `assistant-eval` program).
//! - `llm` (feature `llm`): an OpenAI-compatible chat-completions client that picks the tool
//!   and phrases the answer, calling the same [`Tools`].
//!
//! The parser is trained at start-up (a fraction of a second) on `data/assistant/train.tsv`
//! and measured on held-out phrasings with typos, `data/assistant/phrasings.jsonl`; the figures
//! are in the repository's `docs/AI.md`.

mod answer;
pub mod chat;
pub mod classifier;
pub mod eval;
pub mod ids;
pub mod intent;
#[cfg(feature = "llm")]
pub mod llm;
pub mod pending;
pub mod period;
pub mod product;
mod text;
pub mod tools;

pub use chat::{Assistant, AssistantConfig, Reply, ReplyData, Via};
pub use classifier::TrainParams;
pub use ids::IdRef;
pub use intent::{Entities, Intent, IntentKind, IntentParser, Parsed};
pub use pending::PendingAction;
pub use period::Period;
pub use product::{Product, ProductMatch};
pub use tools::{
    CustomerRecommendations, DemandOutlook, Failure, Lookup, OrderEvent, OrderInfo, OrderStats,
    Outcome, Recommendation, StockInfo, ToolError, Tools,
};
