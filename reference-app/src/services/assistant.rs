//! The AI service's chat assistant (`POST /chat`): `saga-ai`'s [`Assistant`] over the shop's
//! live data, through [`ShopTools`].
//!
//! | tool | answers from |
//! |------|--------------|
//! | products, stock, forecast, recommendations, anomalies | the AI service's own projections (`ai_insights`) |
//! | order, order stats | the order service over HTTP: `GET /orders/{id}`, `/orders/{id}/saga-logs`, `GET /orders?id_prefix=` (an id given by its start), `GET /orders/stats?from=&to=` (counts and revenue of every order of a period) |
//! | dead letters, replay, discard | the order service's operator routes, `/dead-letters` |
//!
//! The actions (replay, discard) run with the credentials of the `POST /chat` request that
//! confirms them: its `Authorization` header goes on to the order service, so that with
//! `--admin-token` set a confirmation without the token changes nothing and is answered 401.
//!
//! The order service's base URL is the system's ([`crate::cli::Upstreams::order_url`]: known
//! in the embedded system, `--order-url` for `serve ai`). A call that fails or takes longer
//! than [`HTTP_TIMEOUT`] makes the tool answer [`ToolError::Unavailable`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use saga_ai::anomaly::AnomalyReport;
use saga_ai::assistant::llm::{LlmClient, LlmConfig};
use saga_ai::assistant::{
    Assistant, CustomerRecommendations, DemandOutlook, Failure, IdRef, Intent, Lookup, OrderEvent,
    OrderInfo, OrderStats, Outcome, PendingAction, Period, Product, Recommendation, ReplyData,
    StockInfo, ToolError, Tools, Via,
};
use saga_ai::forecast::stockout::cumulative_demand;
use saga_core::Envelope;
use saga_core::dead_letter::{DeadLetter, DeadLetterStatus};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ai::anomalies::anomalous;
use crate::ai::demand::MAX_HORIZON_DAYS;
use crate::ai::recommendations::Strategy;
use crate::api::json::ApiJson;
use crate::api::order::{OrderResponse, OrderStatus};
use crate::api::problem::{FieldError, Problem};
use crate::error::AppError;
use crate::services::ai_insights::Insights;
use crate::services::order::{DeadLetterResponse, SagaLogResponse};
use crate::services::order_stats::OrderStatsResponse;

/// How long one call to the order service may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// The most dead letters read to resolve an id prefix.
const DEAD_LETTER_WINDOW: usize = 1000;
/// Ids offered when a prefix is ambiguous.
const CANDIDATES: usize = 10;
/// The longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// The longest conversation id, in characters.
pub const MAX_CONVERSATION_CHARS: usize = 128;

tokio::task_local! {
    /// The `POST /chat` request being answered: its credentials, and whether the order
    /// service refused an action for the lack of them.
    static CALLER: Caller;
}

/// Who asked, for the actions the answer runs.
#[derive(Debug, Clone, Default)]
struct Caller {
    authorization: Option<axum::http::HeaderValue>,
    refused: Arc<std::sync::atomic::AtomicBool>,
}

/// The [`Tools`] of the shop: the AI service's projections and the order service's routes.
#[derive(Clone)]
pub struct ShopTools {
    insights: Insights,
    order_url: String,
    http: reqwest::Client,
}

fn down(what: &str, e: impl std::fmt::Display) -> ToolError {
    tracing::warn!(error = %e, "assistant: {what} failed");
    ToolError::Unavailable(what.to_owned())
}

fn db_down(e: AppError) -> ToolError {
    down("the AI service's projections", e)
}

fn model_down(p: Problem) -> ToolError {
    down("the AI service's models", p.detail)
}

impl ShopTools {
    /// Tools over `insights` and the order service at `order_url`.
    pub(crate) fn new(insights: Insights, order_url: &str) -> Result<Self, AppError> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT)
            .pool_idle_timeout(crate::http::CLIENT_IDLE_TIMEOUT)
            .build()
            .map_err(|e| AppError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            insights,
            order_url: order_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Sends `method` to the order service's `path`: the decoded answer, `None` on 404,
    /// `Err(status)` on another 4xx (409 for a dead letter no longer pending).
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<Result<Option<T>, StatusCode>, ToolError> {
        let url = format!("{}{path}", self.order_url);
        let mut request = self.http.request(method, &url);
        if let Ok(Some(auth)) = CALLER.try_with(|c| c.authorization.clone()) {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let r = request
            .send()
            .await
            .map_err(|e| down("the order service", e))?;
        let status = r.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(Ok(None));
        }
        if status.is_client_error() {
            return Ok(Err(status));
        }
        if !status.is_success() {
            return Err(down("the order service", format!("{url}: {status}")));
        }
        let body = r
            .json()
            .await
            .map_err(|e| down("the order service", format!("{url}: {e}")))?;
        Ok(Ok(Some(body)))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ToolError> {
        self.call(reqwest::Method::GET, path)
            .await?
            .map_err(|s| down("the order service", format!("GET {path}: {s}")))
    }

    /// The orders whose id starts with `prefix`, newest first, a few more than
    /// [`CANDIDATES`] at most (the order service searches all of them).
    async fn orders_starting(&self, prefix: &str) -> Result<Vec<OrderResponse>, ToolError> {
        let limit = CANDIDATES + 1;
        Ok(self
            .get(&format!("/orders?id_prefix={prefix}&limit={limit}"))
            .await?
            .unwrap_or_default())
    }

    /// One order with its saga log, `None` if the order service does not know it.
    async fn order_info(&self, id: Uuid) -> Result<Option<OrderInfo>, ToolError> {
        let Some(order) = self.get::<OrderResponse>(&format!("/orders/{id}")).await? else {
            return Ok(None);
        };
        let log: Vec<SagaLogResponse> = self
            .get(&format!("/orders/{id}/saga-logs"))
            .await?
            .unwrap_or_default();
        Ok(Some(order_info(order, &log)))
    }

    /// Replays or discards dead letter `id`: `Ok(false)` when it was no longer pending.
    async fn act(&self, id: Uuid, verb: &str) -> Result<bool, ToolError> {
        let path = format!("/dead-letters/{id}/{verb}");
        match self
            .call::<DeadLetterResponse>(reqwest::Method::POST, &path)
            .await?
        {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Err(ToolError::Refused(format!("there is no dead letter {id}"))),
            Err(StatusCode::CONFLICT) => Ok(false),
            Err(StatusCode::UNAUTHORIZED) => {
                let _ = CALLER.try_with(|c| {
                    c.refused.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                Err(ToolError::Refused(format!(
                    "to {verb} a dead letter the request needs the admin token"
                )))
            }
            Err(s) => Err(down("the order service", format!("POST {path}: {s}"))),
        }
    }
}

/// How an order's status ended.
fn outcome_of(status: OrderStatus) -> Outcome {
    match status {
        OrderStatus::Confirmed => Outcome::Succeeded,
        OrderStatus::Cancelled | OrderStatus::Failed => Outcome::Failed,
        OrderStatus::Pending | OrderStatus::InventoryReserved | OrderStatus::PaymentProcessing => {
            Outcome::InProgress
        }
    }
}

/// The status's name in the API (`payment_processing`).
fn status_name(status: OrderStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status:?}"))
}

/// The saga log's details without their label (`reason: card declined` -> `card declined`).
fn reason_text(details: &str) -> &str {
    details
        .split_once(": ")
        .filter(|(label, _)| ["detail", "reason"].contains(label))
        .map_or(details, |(_, text)| text)
}

/// The compensation that undoes `step`.
fn compensation_of(step: &str) -> String {
    use crate::order_saga::steps::{PROCESS_PAYMENT, RESERVE_INVENTORY};
    match step {
        RESERVE_INVENTORY => "release_inventory".to_owned(),
        PROCESS_PAYMENT => "refund_payment".to_owned(),
        other => format!("undo_{other}"),
    }
}

/// An order as the assistant shows it, from the order service's answers.
fn order_info(order: OrderResponse, log: &[SagaLogResponse]) -> OrderInfo {
    let outcome = outcome_of(order.status);
    let failure = (outcome == Outcome::Failed).then(|| {
        let failed = log
            .iter()
            .find(|l| l.status == "failed" && l.step != "order");
        let ended = log
            .iter()
            .rev()
            .find(|l| l.step == "order" && l.details.is_some());
        let reason = failed
            .or(ended)
            .and_then(|l| l.details.as_deref())
            .map(reason_text)
            .map_or_else(
                || format!("the order was {}", status_name(order.status)),
                str::to_owned,
            );
        Failure {
            step: failed.map(|l| l.step.clone()),
            reason,
            compensations: log
                .iter()
                .filter(|l| l.status == "compensated")
                .map(|l| compensation_of(&l.step))
                .collect(),
        }
    });
    OrderInfo {
        id: order.id,
        customer_id: order.customer_id,
        status: status_name(order.status),
        outcome,
        total_cents: order.total_amount.cents(),
        currency: "USD".to_owned(),
        created_at: order.created_at,
        failure,
        history: log
            .iter()
            .map(|l| OrderEvent {
                at: l.created_at,
                event: l.event_type.clone(),
            })
            .collect(),
    }
}

/// The toolkit's dead letter from the operator routes' answer.
fn dead_letter_of(d: DeadLetterResponse) -> Result<DeadLetter, ToolError> {
    let status = match d.status.as_str() {
        "pending" => DeadLetterStatus::Pending,
        "replayed" => DeadLetterStatus::Replayed,
        "discarded" => DeadLetterStatus::Discarded,
        other => {
            return Err(down(
                "the order service",
                format!("dead letter {} has an unknown status `{other}`", d.id),
            ));
        }
    };
    Ok(DeadLetter {
        id: d.id,
        subscription: d.subscription,
        envelope: Envelope {
            event_id: d.event_id,
            event_type: d.event_type,
            aggregate_id: d.aggregate_id,
            correlation_id: d.correlation_id,
            causation_id: d.causation_id,
            timestamp: d.sent_at,
            version: d.version,
            source: d.source,
            headers: d.headers,
            payload: d.payload,
        },
        reason: d.reason,
        attempts: d.attempts,
        last_error: d.last_error,
        dead_lettered_at: d.dead_lettered_at,
        status,
        updated_at: d.updated_at,
    })
}

/// Resolves `id` among `ids` (newest first).
fn resolve(id: &IdRef, ids: impl Iterator<Item = Uuid>) -> Lookup<Uuid> {
    let found: Vec<Uuid> = ids.filter(|c| id.matches(c)).take(CANDIDATES).collect();
    match found.as_slice() {
        [] => Lookup::NotFound,
        [one] => Lookup::Found(*one),
        _ => Lookup::Ambiguous(found),
    }
}

/// The assistant's figures from the order service's counts.
fn stats_of(s: &OrderStatsResponse) -> OrderStats {
    OrderStats {
        orders: s.orders,
        succeeded: s.succeeded,
        failed: s.failed,
        in_progress: s.in_progress,
        revenue_cents: s.revenue.cents(),
        currency: "USD".to_owned(),
    }
}

/// The query of `GET /orders/stats` for `period`.
fn stats_query(period: &Period) -> String {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!("from={}&to={}", at(period.start), at(period.end))
}

#[async_trait]
impl Tools for ShopTools {
    async fn products(&self) -> Result<Vec<Product>, ToolError> {
        let names = self.insights.product_names().await.map_err(db_down)?;
        Ok(names
            .into_iter()
            .map(|(id, name)| Product::new(id, name))
            .collect())
    }

    async fn order(&self, id: &IdRef) -> Result<Lookup<OrderInfo>, ToolError> {
        let id = match id {
            IdRef::Full(id) => *id,
            IdRef::Prefix(prefix) => {
                let orders = self.orders_starting(prefix).await?;
                match resolve(id, orders.iter().map(|o| o.id)) {
                    Lookup::Found(one) => one,
                    Lookup::NotFound => return Ok(Lookup::NotFound),
                    Lookup::Ambiguous(ids) => return Ok(Lookup::Ambiguous(ids)),
                }
            }
        };
        Ok(match self.order_info(id).await? {
            Some(info) => Lookup::Found(info),
            None => Lookup::NotFound,
        })
    }

    async fn order_stats(&self, period: &Period) -> Result<OrderStats, ToolError> {
        let path = format!("/orders/stats?{}", stats_query(period));
        let stats: OrderStatsResponse = self
            .get(&path)
            .await?
            .ok_or_else(|| down("the order service", format!("GET {path}: 404")))?;
        Ok(stats_of(&stats))
    }

    async fn stock(&self, product: &Product) -> Result<StockInfo, ToolError> {
        match self.insights.stock(&product.id).await.map_err(db_down)? {
            None => Err(ToolError::Refused(format!(
                "the AI service has not seen product {} in the catalog",
                product.name
            ))),
            Some((None, _)) => Err(ToolError::Refused(format!(
                "the inventory has not told the stock of {}",
                product.name
            ))),
            Some((Some(available), reserved)) => Ok(StockInfo {
                product: product.clone(),
                available,
                reserved,
            }),
        }
    }

    async fn forecast(&self, product: &Product, days: u32) -> Result<DemandOutlook, ToolError> {
        if !(1..=MAX_HORIZON_DAYS).contains(&days) {
            return Err(ToolError::Refused(format!(
                "forecasts reach 1 to {MAX_HORIZON_DAYS} days ahead, not {days}"
            )));
        }
        let fit = self
            .insights
            .demand(&product.id, days)
            .await
            .map_err(model_down)?
            .ok_or_else(|| {
                ToolError::Refused(format!(
                    "the AI service has not seen product {} in the catalog",
                    product.name
                ))
            })?;
        let (Some(forecast), Some(method)) = (fit.forecast, fit.answer.method) else {
            return Err(ToolError::Refused(format!(
                "no forecast of {}: {}",
                product.name, fit.answer.explanation
            )));
        };
        let total = cumulative_demand(&forecast, days as usize)
            .map_err(|e| down("the demand forecaster", e))?;
        let tail = (1.0 - forecast.level) / 2.0;
        Ok(DemandOutlook {
            product: product.clone(),
            days,
            expected: total.mean(),
            lower: total.quantile(tail),
            upper: total.quantile(1.0 - tail),
            level: forecast.level,
            stockout: fit.risk,
            method,
        })
    }

    async fn recommendations(
        &self,
        customer: &IdRef,
        k: usize,
    ) -> Result<Lookup<CustomerRecommendations>, ToolError> {
        let customer_id = match customer {
            IdRef::Full(id) => *id,
            IdRef::Prefix(_) => {
                let known = self
                    .insights
                    .customers(|c| customer.matches(c), CANDIDATES)
                    .await
                    .map_err(db_down)?;
                match resolve(customer, known.into_iter()) {
                    Lookup::Found(one) => one,
                    Lookup::NotFound => return Ok(Lookup::NotFound),
                    Lookup::Ambiguous(ids) => return Ok(Lookup::Ambiguous(ids)),
                }
            }
        };
        let (strategy, items, _, _) = self
            .insights
            .recommend(customer_id, k)
            .await
            .map_err(model_down)?;
        let names = self.insights.product_names().await.map_err(db_down)?;
        Ok(Lookup::Found(CustomerRecommendations {
            customer_id,
            items: items
                .into_iter()
                .map(|(id, score)| Recommendation {
                    product: Product::new(id.clone(), names.get(&id).cloned().unwrap_or(id)),
                    score,
                })
                .collect(),
            personalised: strategy == Strategy::Personalized,
        }))
    }

    async fn anomalies(&self) -> Result<Vec<AnomalyReport>, ToolError> {
        let mut reports = self
            .insights
            .score_sagas(|detector, _, traces| {
                Ok(anomalous(detector, traces)
                    .map_err(crate::ai::AiAppError::Scoring)?
                    .into_iter()
                    .map(|(report, _)| report)
                    .collect::<Vec<_>>())
            })
            .await
            .map_err(model_down)?;
        reports.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(reports)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, ToolError> {
        let limit = limit.clamp(1, DEAD_LETTER_WINDOW);
        let list: Vec<DeadLetterResponse> = self
            .get(&format!("/dead-letters?status=pending&limit={limit}"))
            .await?
            .unwrap_or_default();
        let mut letters = list
            .into_iter()
            .map(dead_letter_of)
            .collect::<Result<Vec<_>, _>>()?;
        letters.sort_by_key(|l| l.dead_lettered_at);
        Ok(letters)
    }

    async fn dead_letter(&self, id: &IdRef) -> Result<Lookup<DeadLetter>, ToolError> {
        let id = match id {
            IdRef::Full(id) => *id,
            IdRef::Prefix(_) => {
                let all: Vec<DeadLetterResponse> = self
                    .get(&format!(
                        "/dead-letters?status=all&limit={DEAD_LETTER_WINDOW}"
                    ))
                    .await?
                    .unwrap_or_default();
                match resolve(id, all.iter().map(|d| d.id)) {
                    Lookup::Found(one) => one,
                    Lookup::NotFound => return Ok(Lookup::NotFound),
                    Lookup::Ambiguous(ids) => return Ok(Lookup::Ambiguous(ids)),
                }
            }
        };
        match self
            .get::<DeadLetterResponse>(&format!("/dead-letters/{id}"))
            .await?
        {
            Some(d) => Ok(Lookup::Found(dead_letter_of(d)?)),
            None => Ok(Lookup::NotFound),
        }
    }

    async fn replay_dead_letter(&self, id: Uuid) -> Result<bool, ToolError> {
        self.act(id, "replay").await
    }

    async fn discard_dead_letter(&self, id: Uuid) -> Result<bool, ToolError> {
        self.act(id, "discard").await
    }
}

/// The state of `POST /chat`: the assistant, trained once at start.
pub(crate) type ChatState = Arc<Assistant<ShopTools>>;

/// Builds the assistant over `tools`, training its parser off the async threads; with `llm`,
/// the language model picks its tools and phrases its answers (the same tools are called).
pub(crate) async fn assistant(
    tools: ShopTools,
    llm: Option<LlmConfig>,
) -> Result<ChatState, AppError> {
    let client = llm
        .map(|config| {
            tracing::info!(url = %config.url, model = %config.model, key = config.api_key.is_some(),
                "assistant: a language model picks the tools and phrases the answers");
            LlmClient::new(config)
        })
        .transpose()
        .map_err(|e| AppError::Config(format!("--llm-url: {e}")))?;
    let built = tokio::task::spawn_blocking(move || Assistant::new(tools))
        .await
        .map_err(|e| AppError::Config(format!("the assistant's training task: {e}")))?
        .map_err(|e| AppError::Config(format!("the assistant's parser: {e}")))?;
    Ok(Arc::new(match client {
        Some(client) => built.with_llm(client),
        None => built,
    }))
}

/// `POST /chat`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The question or answer ("yes" confirms a pending action), 1 to 2000 characters.
    pub message: String,
    /// The conversation it belongs to (1 to 128 characters); a new one when absent. A pending
    /// action waits in its conversation for the next message.
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// The answer of `POST /chat`: the assistant's reply (`saga_ai::assistant::Reply`) and the
/// conversation to send the next message in.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChatResponse {
    /// The conversation (the one given, or a new one).
    pub conversation_id: String,
    /// The answer, plain text.
    pub text: String,
    /// What the message was taken to ask: `{"intent": ..., ...entities}` as `saga-ai` defines
    /// it.
    #[schema(value_type = Object)]
    pub intent: Intent,
    /// The parser's probability of that intent.
    pub confidence: f64,
    /// The data behind the answer, `{"kind": ..., "value": ...}` (an order, stats, stock, a
    /// forecast, recommendations, anomalies, dead letters, an action done, products,
    /// examples).
    #[schema(value_type = Option<Object>, required = true)]
    pub data: Option<ReplyData>,
    /// The action now waiting for "yes" in this conversation, if this reply proposed one.
    #[schema(value_type = Option<Object>, required = true)]
    pub pending: Option<PendingAction>,
    /// What failed, when a tool could not answer.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Who understood and phrased it: `parser` (offline) or `llm`.
    #[schema(value_type = String)]
    pub via: Via,
}

/// `POST /chat`: the assistant's answer to one message. A confirmed action the order service
/// refuses for want of the admin token answers 401 (the action is dropped: ask again with
/// `Authorization: Bearer <token>`).
pub(crate) async fn chat(
    State(assistant): State<ChatState>,
    headers: axum::http::HeaderMap,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    let mut errors = Vec::new();
    let chars = request.message.chars().count();
    if request.message.trim().is_empty() {
        errors.push(FieldError::new("message", "must not be empty"));
    } else if chars > MAX_MESSAGE_CHARS {
        errors.push(FieldError::new(
            "message",
            format!("must be at most {MAX_MESSAGE_CHARS} characters, got {chars}"),
        ));
    }
    if let Some(c) = &request.conversation_id
        && (c.trim().is_empty() || c.chars().count() > MAX_CONVERSATION_CHARS)
    {
        errors.push(FieldError::new(
            "conversation_id",
            format!("must be 1 to {MAX_CONVERSATION_CHARS} characters"),
        ));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let conversation_id = request
        .conversation_id
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let caller = Caller {
        authorization: headers.get(axum::http::header::AUTHORIZATION).cloned(),
        refused: Arc::default(),
    };
    let refused = caller.refused.clone();
    let reply = CALLER
        .scope(caller, assistant.reply(&conversation_id, &request.message))
        .await;
    if refused.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(crate::http::unauthorized());
    }
    Ok(Json(ChatResponse {
        conversation_id,
        text: reply.text,
        intent: reply.intent,
        confidence: reply.confidence,
        data: reply.data,
        pending: reply.pending,
        error: reply.error,
        via: reply.via,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn labelled_details_lose_their_label() {
        assert_eq!(reason_text("reason: card declined"), "card declined");
        assert_eq!(reason_text("detail: no stock"), "no stock");
        assert_eq!(reason_text("tracking_number: T1"), "tracking_number: T1");
    }

    #[test]
    fn a_prefix_resolves_to_one_none_or_several() {
        let a: Uuid = "0190a3b2-7c1d-7e00-8000-000000000001".parse().unwrap();
        let b: Uuid = "0190a3b2-7c1d-7e00-8000-000000000002".parse().unwrap();
        let c: Uuid = "0290a3b2-7c1d-7e00-8000-000000000002".parse().unwrap();
        let p = |t: &str| IdRef::parse_token(t).unwrap();
        assert_eq!(
            resolve(&p("0290a3b2"), [a, b, c].into_iter()),
            Lookup::Found(c)
        );
        assert_eq!(
            resolve(&p("0390a3b2"), [a, b, c].into_iter()),
            Lookup::NotFound
        );
        assert_eq!(
            resolve(&p("0190a3b2"), [a, b, c].into_iter()),
            Lookup::Ambiguous(vec![a, b])
        );
    }

    #[test]
    fn periods_become_the_stats_query() {
        let period = Period {
            start: Utc.with_ymd_and_hms(2025, 6, 11, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2025, 6, 12, 0, 0, 0).unwrap(),
            label: "today".to_owned(),
        };
        assert_eq!(
            stats_query(&period),
            "from=2025-06-11T00:00:00.000000Z&to=2025-06-12T00:00:00.000000Z"
        );
    }
}
