//! An OpenAI-compatible chat-completions client (feature `llm`, off by default) that picks the
//! tool for a message by function calling and phrases the answer from the tool's data.
//!
//! The model never acts on its own: it only chooses among the same functions the offline
//! parser maps to, with arguments the assistant checks (ids are parsed, products matched
//! against the catalog, periods read by the same period parser); "yes" and "no" are always
//! read by the offline parser; replaying or discarding a dead letter still needs the user's
//! confirmation; and answers that propose or report an action, help and "I can't answer that"
//! keep the assistant's own text. When the model cannot be reached or answers something
//! unusable, the reply comes from the offline parser and says so in [`Reply::error`].
//!
//! Plain `http://` only: the workspace builds reqwest without TLS. Point `url` at a local
//! server (llama.cpp, Ollama, vLLM: `http://localhost:11434/v1`) or at a TLS-terminating
//! proxy in front of a hosted API.
//!
//! ```no_run
//! # async fn demo(tools: impl saga_ai::assistant::Tools) -> Result<(), Box<dyn std::error::Error>> {
//! use saga_ai::assistant::Assistant;
//! use saga_ai::assistant::llm::{LlmClient, LlmConfig};
//! let config = LlmConfig::new("http://localhost:11434/v1", "llama3.1")
//!     .with_api_key_env("SAGA_LLM_API_KEY")?;
//! let assistant = Assistant::new(tools)?.with_llm(LlmClient::new(config)?);
//! let reply = assistant.reply("conversation-1", "how did sales go yesterday?").await;
//! # Ok(()) }
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::chat::{Assistant, Reply, ReplyData, Turn, Via};
use super::ids::IdRef;
use super::intent::{Intent, Parsed};
use super::period::{MAX_HORIZON_DAYS, find_period};
use super::product::{Product, find_product};
use super::text::tokenize;
use super::tools::Tools;

/// Where and how to reach the model.
#[derive(Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// The API's base URL (`http://localhost:11434/v1`) or its full chat-completions URL.
    pub url: String,
    /// The model name sent with each request.
    pub model: String,
    /// Sent as a bearer token when set.
    pub api_key: Option<String>,
    /// Longest wait for one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl LlmConfig {
    /// A configuration without a key and a 20-second timeout.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(20),
        }
    }

    /// Reads the key from the environment variable `var`; [`LlmError::Config`] when it is not
    /// set (a named key that is missing is a mistake, not a keyless server).
    pub fn with_api_key_env(mut self, var: &str) -> Result<Self, LlmError> {
        let key = std::env::var(var)
            .map_err(|_| LlmError::Config(format!("environment variable {var} is not set")))?;
        self.api_key = Some(key);
        Ok(self)
    }

    fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_owned()
        } else {
            format!("{base}/chat/completions")
        }
    }
}

/// What went wrong talking to the model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The configuration cannot work (an `https://` URL, a missing key variable).
    #[error("language model configuration: {0}")]
    Config(String),
    /// The request did not complete (connection refused, timeout).
    #[error("language model request failed: {0}")]
    Http(String),
    /// The server answered with an error status.
    #[error("language model answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer is not a chat completion this client understands.
    #[error("language model answer not understood: {0}")]
    Malformed(String),
}

/// A chat-completions client.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
}

const PICK_PROMPT: &str = "You route questions about an e-commerce order system to functions. \
Call exactly one function when one fits the question; call none when none fits (the system \
then says it cannot answer). Never answer from your own knowledge. Pass ids exactly as written, \
periods as short English (\"yesterday\", \"last 7 days\", \"since 2025-06-01\") and product \
names as written.";

const PHRASE_PROMPT: &str = "You phrase answers of an operations assistant. Use only the facts \
in the data and the draft; keep every number, id and name exactly; add nothing; at most three \
sentences, plain text.";

fn string_param(name: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": { name: { "type": "string", "description": description } },
        "required": [name]
    })
}

fn no_params() -> Value {
    json!({ "type": "object", "properties": {} })
}

/// The functions offered to the model, one per intent the parser knows (but yes and no).
fn functions() -> Value {
    let order = string_param("order_id", "the order id or its first characters");
    let period = string_param("period", "the time range, in short English");
    let product = string_param("product", "the product name as written");
    let letter = string_param("id", "the dead letter id or its first characters");
    let defs = [
        ("order_status", "Where an order stands.", order.clone()),
        ("why_failed", "Why an order failed or was cancelled.", order),
        (
            "order_count",
            "How many orders were placed in a period.",
            period.clone(),
        ),
        (
            "revenue",
            "Revenue of completed orders in a period.",
            period,
        ),
        ("stock", "Stock of a product.", product.clone()),
        (
            "forecast",
            "Demand forecast and stock-out risk of a product.",
            json!({
                "type": "object",
                "properties": {
                    "product": { "type": "string", "description": "the product name as written" },
                    "days": { "type": "integer", "description": "how many days ahead" }
                },
                "required": ["product"]
            }),
        ),
        (
            "recommendations",
            "Top product recommendations for a customer.",
            string_param("customer_id", "the customer id or its first characters"),
        ),
        ("anomalies", "Sagas that look abnormal now.", no_params()),
        ("list_dead_letters", "Pending dead letters.", no_params()),
        (
            "replay_dead_letter",
            "Replay a dead letter (the user confirms it afterwards).",
            letter.clone(),
        ),
        (
            "discard_dead_letter",
            "Discard a dead letter (the user confirms it afterwards).",
            letter,
        ),
        ("help", "What the assistant can do.", no_params()),
    ];
    Value::Array(
        defs.into_iter()
            .map(|(name, description, parameters)| {
                json!({
                    "type": "function",
                    "function": { "name": name, "description": description, "parameters": parameters }
                })
            })
            .collect(),
    )
}

/// The intent of a function call, its arguments checked like a typed message would be.
/// `None` for an unknown function.
pub(crate) fn intent_of_call(
    name: &str,
    args: &Value,
    catalog: &[Product],
    now: DateTime<Utc>,
) -> Option<Intent> {
    let text = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or_default();
    let id = |key: &str| IdRef::parse_token(text(key).trim());
    let period = |key: &str| find_period(&tokenize(text(key)), now).map(|(p, _)| p);
    let product = |key: &str| {
        let tokens = tokenize(text(key));
        find_product(&tokens, &vec![false; tokens.len()], catalog).map(|(m, _)| m.product)
    };
    Some(match name {
        "order_status" => Intent::OrderStatus {
            order_id: id("order_id"),
        },
        "why_failed" => Intent::WhyFailed {
            order_id: id("order_id"),
        },
        "order_count" => Intent::OrderCount {
            period: period("period"),
        },
        "revenue" => Intent::Revenue {
            period: period("period"),
        },
        "stock" => Intent::Stock {
            product: product("product"),
        },
        "forecast" => Intent::Forecast {
            product: product("product"),
            days: args
                .get("days")
                .and_then(Value::as_u64)
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| (1..=MAX_HORIZON_DAYS).contains(d)),
        },
        "recommendations" => Intent::Recommendations {
            customer_id: id("customer_id"),
        },
        "anomalies" => Intent::Anomalies,
        "list_dead_letters" => Intent::ListDeadLetters,
        "replay_dead_letter" => Intent::ReplayDeadLetter { id: id("id") },
        "discard_dead_letter" => Intent::DiscardDeadLetter { id: id("id") },
        "help" => Intent::Help,
        _ => return None,
    })
}

impl LlmClient {
    /// A client for `config`. [`LlmError::Config`] for a URL that is not `http://`.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        if !config.url.starts_with("http://") {
            return Err(LlmError::Config(format!(
                "{} is not an http:// URL (this build has no TLS: use a local server or a \
                 TLS-terminating proxy)",
                config.url
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(Self { http, config })
    }

    async fn complete(&self, body: Value) -> Result<Value, LlmError> {
        let mut request = self.http.post(self.config.endpoint()).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| LlmError::Http(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| LlmError::Http(e.to_string()))?;
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        let value: Value =
            serde_json::from_str(&text).map_err(|e| LlmError::Malformed(e.to_string()))?;
        value
            .pointer("/choices/0/message")
            .cloned()
            .ok_or_else(|| LlmError::Malformed("no choices[0].message".to_owned()))
    }

    /// The intent the model picks for `message` by calling a function; `Ok(None)` when it
    /// calls none.
    pub async fn pick(
        &self,
        message: &str,
        catalog: &[Product],
        now: DateTime<Utc>,
    ) -> Result<Option<Intent>, LlmError> {
        let names: Vec<&str> = catalog.iter().map(|p| p.name.as_str()).collect();
        let system = format!(
            "{PICK_PROMPT} Products: {}. Now: {}.",
            names.join(", "),
            now.to_rfc3339()
        );
        let reply = self
            .complete(json!({
                "model": self.config.model,
                "temperature": 0,
                "messages": [
                    { "role": "system", "content": system },
                    { "role": "user", "content": message }
                ],
                "tools": functions(),
                "tool_choice": "auto"
            }))
            .await?;
        let Some(call) = reply.pointer("/tool_calls/0/function") else {
            return Ok(None);
        };
        let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
        let args: Value = match call.get("arguments") {
            Some(Value::String(s)) if !s.trim().is_empty() => serde_json::from_str(s)
                .map_err(|e| LlmError::Malformed(format!("arguments of {name}: {e}")))?,
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => json!({}),
        };
        intent_of_call(name, &args, catalog, now)
            .map(Some)
            .ok_or_else(|| LlmError::Malformed(format!("unknown function {name:?}")))
    }

    /// The answer rephrased from the reply's own text and data.
    pub async fn phrase(&self, message: &str, reply: &Reply) -> Result<String, LlmError> {
        let data = serde_json::to_string(&reply.data).unwrap_or_default();
        let user = format!(
            "Question: {message}\nDraft answer: {}\nData: {data}",
            reply.text
        );
        let answer = self
            .complete(json!({
                "model": self.config.model,
                "temperature": 0,
                "messages": [
                    { "role": "system", "content": PHRASE_PROMPT },
                    { "role": "user", "content": user }
                ]
            }))
            .await?;
        answer
            .get("content")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| LlmError::Malformed("no content".to_owned()))
    }
}

impl<T: Tools> Assistant<T> {
    /// The same assistant, with `client` picking tools and phrasing answers.
    pub fn with_llm(mut self, client: LlmClient) -> Self {
        self.llm = Some(client);
        self
    }

    pub(crate) async fn reply_with_llm(
        &self,
        llm: &LlmClient,
        turn: &Turn<'_>,
        parsed: Parsed,
    ) -> Reply {
        // Yes and no stay with the offline parser: a model never confirms an action.
        if matches!(parsed.intent, Intent::Confirm | Intent::Cancel) {
            return self.answer(turn, parsed).await;
        }
        let (parsed, picked, failure) = match llm.pick(turn.message, turn.catalog, turn.now).await {
            Ok(Some(intent)) => {
                let picked = Parsed {
                    intent,
                    confidence: 1.0,
                    entities: parsed.entities,
                };
                (picked, true, None)
            }
            Ok(None) => (parsed, false, None),
            Err(e) => (parsed, false, Some(e)),
        };
        let mut reply = self.answer(turn, parsed).await;
        if let Some(e) = failure {
            reply.error = Some(format!("{e}; answered offline"));
            return reply;
        }
        let rephrasable = reply.pending.is_none()
            && reply.error.is_none()
            && !matches!(
                reply.data,
                None | Some(ReplyData::ActionDone { .. } | ReplyData::Examples(_))
            );
        if picked {
            reply.via = Via::Llm;
        }
        if rephrasable {
            match llm.phrase(turn.message, &reply).await {
                Ok(text) => {
                    reply.text = text;
                    reply.via = Via::Llm;
                }
                Err(e) => reply.error = Some(format!("{e}; answer phrased offline")),
            }
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_map_to_checked_intents() {
        let now = "2025-06-11T15:30:00Z".parse().unwrap();
        let catalog = [Product::new("p-7", "Desk Lamp")];
        let intent = |name: &str, args: Value| intent_of_call(name, &args, &catalog, now);
        assert_eq!(
            intent("stock", json!({"product": "desk lamps"})),
            Some(Intent::Stock {
                product: Some(catalog[0].clone())
            })
        );
        let Some(Intent::Revenue { period: Some(p) }) =
            intent("revenue", json!({"period": "yesterday"}))
        else {
            panic!("no period")
        };
        assert_eq!(p.label, "yesterday");
        assert_eq!(
            intent(
                "forecast",
                json!({"product": "nothing we sell", "days": 100000})
            ),
            Some(Intent::Forecast {
                product: None,
                days: None
            })
        );
        assert_eq!(
            intent("replay_dead_letter", json!({"id": "not an id"})),
            Some(Intent::ReplayDeadLetter { id: None })
        );
        assert_eq!(intent("drop_database", json!({})), None);
        assert_eq!(functions().as_array().map(Vec::len), Some(12));
    }

    #[test]
    fn https_and_missing_keys_are_configuration_errors() {
        let https = LlmConfig::new("https://api.example.com/v1", "m");
        assert!(matches!(LlmClient::new(https), Err(LlmError::Config(_))));
        let missing = LlmConfig::new("http://localhost:1/v1", "m")
            .with_api_key_env("SAGA_AI_TEST_SURELY_UNSET_VARIABLE");
        assert!(matches!(missing, Err(LlmError::Config(_))));
        let c = LlmConfig::new("http://localhost:1/v1/", "m");
        assert_eq!(c.endpoint(), "http://localhost:1/v1/chat/completions");
        assert!(
            !format!(
                "{:?}",
                LlmConfig {
                    api_key: Some("sk-secret".into()),
                    ..c
                }
            )
            .contains("sk-secret")
        );
    }
}
