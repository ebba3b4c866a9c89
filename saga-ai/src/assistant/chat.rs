//! The [`Assistant`]: a message in, a [`Reply`] out, with actions held for confirmation.

use chrono::{DateTime, Duration, Utc};
use saga_core::dead_letter::{DeadLetter, DeadLetterStatus};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::answer;
use super::ids::IdRef;
use super::intent::{Intent, IntentParser, Parsed};
use super::pending::{PendingAction, PendingActions, Taken};
use super::period::Period;
use super::product::Product;
use super::tools::{
    CustomerRecommendations, DemandOutlook, Lookup, OrderInfo, OrderStats, StockInfo, ToolError,
    Tools,
};
use crate::anomaly::AnomalyReport;
use crate::error::Result;

/// Settings of an [`Assistant`].
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantConfig {
    /// Conversations that can hold a pending action at once (the oldest is dropped beyond).
    pub pending_capacity: usize,
    /// How long a pending action waits for its confirmation.
    pub pending_ttl: Duration,
    /// Dead letters listed at most.
    pub dead_letter_limit: usize,
    /// Recommendations asked for.
    pub recommendations: usize,
    /// Forecast horizon when the message gives none, in days.
    pub forecast_days: u32,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        Self {
            pending_capacity: 1024,
            pending_ttl: Duration::minutes(5),
            dead_letter_limit: 20,
            recommendations: 5,
            forecast_days: 7,
        }
    }
}

/// Who understood the message and phrased the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The offline parser and the built-in sentences.
    Parser,
    /// The language model picked the tool and phrased the answer (feature `llm`).
    Llm,
}

/// The data an answer was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // built once per reply
pub enum ReplyData {
    /// One order.
    Order(OrderInfo),
    /// Ids matching an ambiguous prefix.
    Candidates(Vec<Uuid>),
    /// Order counts and revenue over a period.
    Stats {
        /// The period.
        period: Period,
        /// The figures.
        stats: OrderStats,
    },
    /// Stock of a product.
    Stock(StockInfo),
    /// Demand forecast of a product.
    Forecast(DemandOutlook),
    /// Recommendations for a customer.
    Recommendations(CustomerRecommendations),
    /// Abnormal sagas.
    Anomalies(Vec<AnomalyReport>),
    /// Pending dead letters.
    DeadLetters(Vec<DeadLetter>),
    /// The dead letter an action is about.
    DeadLetter(DeadLetter),
    /// An action that ran: `done` is false when the dead letter was no longer pending.
    ActionDone {
        /// The action.
        action: PendingAction,
        /// Whether it changed anything.
        done: bool,
    },
    /// Products to choose from, when the message named none.
    Products(Vec<Product>),
    /// Example questions.
    Examples(Vec<String>),
}

/// The assistant's answer to one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The answer, plain text.
    pub text: String,
    /// What the message was taken to ask.
    pub intent: Intent,
    /// The parser's probability of that intent (1 when the language model picked it).
    pub confidence: f64,
    /// The data behind the answer.
    pub data: Option<ReplyData>,
    /// The action now waiting for "yes" in this conversation, if this reply proposed one.
    pub pending: Option<PendingAction>,
    /// What failed: a tool that could not answer, or (feature `llm`) the language model, in
    /// which case the reply was made offline.
    pub error: Option<String>,
    /// Who understood and phrased it.
    pub via: Via,
}

impl Reply {
    fn text(parsed: &Parsed, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            intent: parsed.intent.clone(),
            confidence: parsed.confidence,
            data: None,
            pending: None,
            error: None,
            via: Via::Parser,
        }
    }

    fn with(mut self, data: ReplyData) -> Self {
        self.data = Some(data);
        self
    }

    fn failed(parsed: &Parsed, what: &str, e: &ToolError) -> Self {
        let mut r = Self::text(parsed, format!("I could not get {what}: {e}."));
        r.error = Some(e.to_string());
        r
    }
}

/// A waiting time for answers: `5 minutes`, `90 seconds`.
fn wait(d: Duration) -> String {
    match (d.num_minutes(), d.num_seconds()) {
        (1, 60) => "1 minute".to_owned(),
        (m, s) if s == m * 60 => format!("{m} minutes"),
        (_, s) => format!("{s} seconds"),
    }
}

/// One message being answered, with what it is answered against.
pub(crate) struct Turn<'a> {
    pub(crate) conversation: &'a str,
    /// The message as written (the language model reads it; the parser has already).
    #[cfg_attr(not(feature = "llm"), allow(dead_code))]
    pub(crate) message: &'a str,
    pub(crate) catalog: &'a [Product],
    /// Why the catalog is empty, when the products tool failed.
    pub(crate) catalog_error: Option<&'a ToolError>,
    pub(crate) now: DateTime<Utc>,
}

/// Answers questions about the system from the application's [`Tools`], offline.
///
/// Actions (replaying or discarding a dead letter) are never run on the message that asks for
/// them: the reply says what will happen and stores the action for the conversation; the next
/// message runs it if it is a "yes", drops it otherwise. An action waits at most
/// [`AssistantConfig::pending_ttl`].
pub struct Assistant<T> {
    tools: T,
    parser: IntentParser,
    pending: PendingActions,
    config: AssistantConfig,
    #[cfg(feature = "llm")]
    pub(super) llm: Option<super::llm::LlmClient>,
}

impl<T: Tools> Assistant<T> {
    /// An assistant over `tools` with the crate's trained parser and default settings.
    pub fn new(tools: T) -> Result<Self> {
        Ok(Self::with_parser(
            tools,
            IntentParser::new()?,
            AssistantConfig::default(),
        ))
    }

    /// An assistant with a given parser and settings.
    pub fn with_parser(tools: T, parser: IntentParser, config: AssistantConfig) -> Self {
        Self {
            tools,
            parser,
            pending: PendingActions::new(config.pending_capacity, config.pending_ttl),
            config,
            #[cfg(feature = "llm")]
            llm: None,
        }
    }

    /// The tools the assistant calls.
    pub fn tools(&self) -> &T {
        &self.tools
    }

    /// Answers `message` in `conversation` now.
    pub async fn reply(&self, conversation: &str, message: &str) -> Reply {
        self.reply_at(conversation, message, Utc::now()).await
    }

    /// Answers `message` in `conversation` as if received at `now` (periods such as "today"
    /// and the expiry of pending actions are reckoned from it).
    pub async fn reply_at(&self, conversation: &str, message: &str, now: DateTime<Utc>) -> Reply {
        let (catalog, catalog_error) = match self.tools.products().await {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let turn = Turn {
            conversation,
            message,
            catalog: &catalog,
            catalog_error: catalog_error.as_ref(),
            now,
        };
        let parsed = self.parser.parse(message, &catalog, now);
        #[cfg(feature = "llm")]
        if let Some(llm) = &self.llm {
            return self.reply_with_llm(llm, &turn, parsed).await;
        }
        self.answer(&turn, parsed).await
    }

    /// Runs a parsed message: the confirmation flow, then the intent.
    pub(crate) async fn answer(&self, turn: &Turn<'_>, parsed: Parsed) -> Reply {
        let (conversation, now) = (turn.conversation, turn.now);
        match parsed.intent {
            Intent::Confirm => return self.confirm(conversation, &parsed, now).await,
            Intent::Cancel => return self.cancel(conversation, &parsed, now),
            _ => {}
        }
        // Anything but a yes or no drops a waiting action: a "yes" much later must not run it.
        let dropped = match self.pending.take(conversation, now) {
            Taken::Ready(a) => Some(a),
            Taken::Expired(_) | Taken::Nothing => None,
        };
        let mut reply = self.run(turn, &parsed).await;
        if let Some(a) = dropped {
            if reply.pending.as_ref() != Some(&a) {
                reply.text.push_str(&format!(
                    "\n(The {} of dead letter {} that was waiting for your confirmation is cancelled.)",
                    a.verb(),
                    a.id()
                ));
            }
        }
        reply
    }

    async fn confirm(&self, conversation: &str, parsed: &Parsed, now: DateTime<Utc>) -> Reply {
        let action = match self.pending.take(conversation, now) {
            Taken::Ready(a) => a,
            Taken::Expired(a) => {
                return Reply::text(
                    parsed,
                    format!(
                        "The {} of dead letter {} waited more than {} and was dropped; ask \
                         again if you still want it.",
                        a.verb(),
                        a.id(),
                        wait(self.config.pending_ttl)
                    ),
                );
            }
            Taken::Nothing => {
                return Reply::text(parsed, "There is nothing waiting for your confirmation.");
            }
        };
        let result = match &action {
            PendingAction::ReplayDeadLetter { id, .. } => self.tools.replay_dead_letter(*id).await,
            PendingAction::DiscardDeadLetter { id, .. } => {
                self.tools.discard_dead_letter(*id).await
            }
        };
        match result {
            Ok(done) => {
                let text = match (done, &action) {
                    (true, PendingAction::ReplayDeadLetter { id, .. }) => {
                        format!("Done: dead letter {id} was handed back for delivery.")
                    }
                    (true, PendingAction::DiscardDeadLetter { id, .. }) => {
                        format!("Done: dead letter {id} was discarded.")
                    }
                    (false, a) => format!(
                        "Dead letter {} was no longer pending, so nothing was {}ed.",
                        a.id(),
                        a.verb()
                    ),
                };
                Reply::text(parsed, text).with(ReplyData::ActionDone { action, done })
            }
            Err(e) => Reply::failed(parsed, &format!("to {} the dead letter", action.verb()), &e),
        }
    }

    fn cancel(&self, conversation: &str, parsed: &Parsed, now: DateTime<Utc>) -> Reply {
        match self.pending.take(conversation, now) {
            Taken::Ready(a) | Taken::Expired(a) => Reply::text(
                parsed,
                format!(
                    "Cancelled: dead letter {} will not be {}ed.",
                    a.id(),
                    a.verb()
                ),
            ),
            Taken::Nothing => Reply::text(parsed, "There is nothing to cancel."),
        }
    }

    /// Calls the tools an intent needs and phrases the answer.
    async fn run(&self, turn: &Turn<'_>, parsed: &Parsed) -> Reply {
        let (conversation, catalog, now) = (turn.conversation, turn.catalog, turn.now);
        let first_product = catalog.first().map(|p| p.name.as_str());
        let ask = |text: &str| Reply::text(parsed, text);
        match &parsed.intent {
            Intent::OrderStatus { order_id } | Intent::WhyFailed { order_id } => {
                let Some(id) = order_id else {
                    return ask("Which order? Give me its id (the first 8 characters are enough).");
                };
                let why = matches!(parsed.intent, Intent::WhyFailed { .. });
                match self.tools.order(id).await {
                    Ok(Lookup::Found(o)) => {
                        let text = if why {
                            answer::why_failed(&o)
                        } else {
                            answer::order_status(&o)
                        };
                        Reply::text(parsed, text).with(ReplyData::Order(o))
                    }
                    Ok(Lookup::NotFound) => ask(&format!("I found no order matching {id}.")),
                    Ok(Lookup::Ambiguous(ids)) => {
                        Reply::text(parsed, answer::ambiguous("order", id, &ids))
                            .with(ReplyData::Candidates(ids))
                    }
                    Err(e) => Reply::failed(parsed, "the order", &e),
                }
            }
            Intent::OrderCount { period } | Intent::Revenue { period } => {
                let defaulted = period.is_none();
                let period = period.clone().unwrap_or_else(|| Period::today(now));
                match self.tools.order_stats(&period).await {
                    Ok(stats) => {
                        let text = if matches!(parsed.intent, Intent::Revenue { .. }) {
                            answer::revenue(&period, defaulted, &stats)
                        } else {
                            answer::order_count(&period, defaulted, &stats)
                        };
                        Reply::text(parsed, text).with(ReplyData::Stats { period, stats })
                    }
                    Err(e) => Reply::failed(parsed, "the order figures", &e),
                }
            }
            Intent::Stock { product } | Intent::Forecast { product, .. } => {
                let Some(product) = product else {
                    if let Some(e) = turn.catalog_error {
                        return Reply::failed(parsed, "the product list", e);
                    }
                    return self.which_product(parsed, catalog);
                };
                if let Intent::Forecast { days, .. } = &parsed.intent {
                    let days = days.unwrap_or(self.config.forecast_days);
                    return match self.tools.forecast(product, days).await {
                        Ok(f) => {
                            Reply::text(parsed, answer::forecast(&f)).with(ReplyData::Forecast(f))
                        }
                        Err(e) => {
                            Reply::failed(parsed, &format!("a forecast for {}", product.name), &e)
                        }
                    };
                }
                match self.tools.stock(product).await {
                    Ok(s) => Reply::text(parsed, answer::stock(&s)).with(ReplyData::Stock(s)),
                    Err(e) => Reply::failed(parsed, &format!("the stock of {}", product.name), &e),
                }
            }
            Intent::Recommendations { customer_id } => {
                let Some(id) = customer_id else {
                    return ask("For which customer? Give me their id.");
                };
                match self
                    .tools
                    .recommendations(id, self.config.recommendations)
                    .await
                {
                    Ok(Lookup::Found(r)) => Reply::text(parsed, answer::recommendations(&r))
                        .with(ReplyData::Recommendations(r)),
                    Ok(Lookup::NotFound) => ask(&format!("I found no customer matching {id}.")),
                    Ok(Lookup::Ambiguous(ids)) => {
                        Reply::text(parsed, answer::ambiguous("customer", id, &ids))
                            .with(ReplyData::Candidates(ids))
                    }
                    Err(e) => Reply::failed(parsed, "recommendations", &e),
                }
            }
            Intent::Anomalies => match self.tools.anomalies().await {
                Ok(list) => {
                    Reply::text(parsed, answer::anomalies(&list)).with(ReplyData::Anomalies(list))
                }
                Err(e) => Reply::failed(parsed, "the anomalies", &e),
            },
            Intent::ListDeadLetters => self.list_dead_letters(parsed, None).await,
            Intent::ReplayDeadLetter { id } | Intent::DiscardDeadLetter { id } => {
                let replay = matches!(parsed.intent, Intent::ReplayDeadLetter { .. });
                match id {
                    Some(id) => self.propose(conversation, parsed, id, replay, now).await,
                    None => {
                        let verb = if replay { "replay" } else { "discard" };
                        self.list_dead_letters(parsed, Some(verb)).await
                    }
                }
            }
            Intent::Help => Reply::text(parsed, answer::help(first_product))
                .with(ReplyData::Examples(answer::examples(first_product))),
            Intent::Unknown => Reply::text(parsed, answer::unknown(first_product))
                .with(ReplyData::Examples(answer::examples(first_product))),
            // Handled before: a yes or no is never an intent to run.
            Intent::Confirm | Intent::Cancel => {
                ask("There is nothing waiting for your confirmation.")
            }
        }
    }

    fn which_product(&self, parsed: &Parsed, catalog: &[Product]) -> Reply {
        if catalog.is_empty() {
            return Reply::text(parsed, "I know no products yet.");
        }
        let names: Vec<&str> = catalog.iter().take(10).map(|p| p.name.as_str()).collect();
        let more = if catalog.len() > names.len() {
            ", ..."
        } else {
            ""
        };
        Reply::text(
            parsed,
            format!("Which product? I know: {}{more}.", names.join(", ")),
        )
        .with(ReplyData::Products(catalog.to_vec()))
    }

    async fn list_dead_letters(&self, parsed: &Parsed, asking_to: Option<&str>) -> Reply {
        match self.tools.dead_letters(self.config.dead_letter_limit).await {
            Ok(list) => {
                let mut text = answer::dead_letters(&list);
                if let (Some(verb), false) = (asking_to, list.is_empty()) {
                    text = format!("Which dead letter should I {verb}? Give me its id.\n{text}");
                }
                Reply::text(parsed, text).with(ReplyData::DeadLetters(list))
            }
            Err(e) => Reply::failed(parsed, "the dead letters", &e),
        }
    }

    /// Looks the dead letter up and stores the action for confirmation.
    async fn propose(
        &self,
        conversation: &str,
        parsed: &Parsed,
        id: &IdRef,
        replay: bool,
        now: DateTime<Utc>,
    ) -> Reply {
        let letter = match self.tools.dead_letter(id).await {
            Ok(Lookup::Found(d)) => d,
            Ok(Lookup::NotFound) => {
                return Reply::text(parsed, format!("I found no dead letter matching {id}."));
            }
            Ok(Lookup::Ambiguous(ids)) => {
                return Reply::text(parsed, answer::ambiguous("dead letter", id, &ids))
                    .with(ReplyData::Candidates(ids));
            }
            Err(e) => return Reply::failed(parsed, "the dead letter", &e),
        };
        if letter.status != DeadLetterStatus::Pending {
            let text = format!(
                "Dead letter {} is already {}; there is nothing to do.",
                letter.id,
                letter.status.as_str()
            );
            return Reply::text(parsed, text).with(ReplyData::DeadLetter(letter));
        }
        let summary = answer::dead_letter_summary(&letter);
        let (action, what) = if replay {
            (
                PendingAction::ReplayDeadLetter {
                    id: letter.id,
                    summary: summary.clone(),
                },
                "hand it back for delivery to",
            )
        } else {
            (
                PendingAction::DiscardDeadLetter {
                    id: letter.id,
                    summary: summary.clone(),
                },
                "drop it for good from",
            )
        };
        let text = format!(
            "I will {} dead letter {} ({summary}): I {what} {}. Reply \"yes\" to go ahead or \
             \"no\" to cancel.",
            action.verb(),
            letter.id,
            letter.subscription
        );
        self.pending.put(conversation, action.clone(), now);
        let mut reply = Reply::text(parsed, text).with(ReplyData::DeadLetter(letter));
        reply.pending = Some(action);
        reply
    }
}
