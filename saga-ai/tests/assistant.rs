//! The assistant over an in-memory implementation of its tools: answers from the data, the
//! confirmation flow of actions (confirm, cancel, expiry, other conversations, a message in
//! between), ambiguous ids, tool failures and the "I can't answer that" reply.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use saga_ai::anomaly::{Anomaly, AnomalyKind, AnomalyReport};
use saga_ai::assistant::{
    Assistant, CustomerRecommendations, DemandOutlook, Failure, IdRef, Intent, Lookup, OrderInfo,
    OrderStats, Outcome, PendingAction, Period, Product, Recommendation, Reply, ReplyData,
    StockInfo, ToolError, Tools,
};
use saga_core::Envelope;
use saga_core::dead_letter::{DeadLetter, DeadLetterStatus};
use uuid::Uuid;

const FAILED: &str = "0190a3b2-7c1d-7e00-8000-00000000a001";
const CONFIRMED: &str = "0190b7ee-0000-7000-8000-00000000b002";
const CUSTOMER: &str = "0190c0de-1111-7000-8000-000000000042";
const LETTER: &str = "0190de01-2222-7000-8000-000000000001";
const LETTER_TWIN: &str = "0190de01-3333-7000-8000-000000000002";
const DONE_LETTER: &str = "0190de99-4444-7000-8000-000000000003";

fn id(s: &str) -> Uuid {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    "2025-06-11T15:30:00Z".parse().unwrap()
}

/// Live data in memory, recording the calls that change something.
struct Shop {
    products: Vec<Product>,
    orders: Vec<OrderInfo>,
    letters: Mutex<Vec<DeadLetter>>,
    replayed: Mutex<Vec<Uuid>>,
    discarded: Mutex<Vec<Uuid>>,
    stats_down: bool,
}

fn letter(uuid: &str, status: DeadLetterStatus) -> DeadLetter {
    let envelope = Envelope::new("payment.requested", "order-17", serde_json::json!({}));
    DeadLetter {
        id: id(uuid),
        status,
        ..DeadLetter::new(
            "payment-service",
            envelope,
            "attempts exhausted",
            5,
            Some("gateway timeout".into()),
            now() - Duration::hours(2),
        )
    }
}

fn order(uuid: &str, outcome: Outcome) -> OrderInfo {
    let failure = (outcome == Outcome::Failed).then(|| Failure {
        step: Some("charge_payment".into()),
        reason: "card declined".into(),
        compensations: vec!["release_inventory".into()],
    });
    OrderInfo {
        id: id(uuid),
        customer_id: id(CUSTOMER),
        status: if failure.is_some() {
            "cancelled"
        } else {
            "confirmed"
        }
        .into(),
        outcome,
        total_cents: 5_000,
        currency: "USD".into(),
        created_at: now() - Duration::hours(1),
        failure,
        history: Vec::new(),
    }
}

impl Shop {
    fn new() -> Self {
        Self {
            products: vec![
                Product::new("p-lamp", "Desk Lamp"),
                Product::new("p-cam", "Webcam HD"),
            ],
            orders: vec![
                order(FAILED, Outcome::Failed),
                order(CONFIRMED, Outcome::Succeeded),
            ],
            letters: Mutex::new(vec![
                letter(LETTER, DeadLetterStatus::Pending),
                letter(LETTER_TWIN, DeadLetterStatus::Pending),
                letter(DONE_LETTER, DeadLetterStatus::Replayed),
            ]),
            replayed: Mutex::new(Vec::new()),
            discarded: Mutex::new(Vec::new()),
            stats_down: false,
        }
    }

    fn replayed(&self) -> Vec<Uuid> {
        self.replayed.lock().unwrap().clone()
    }

    fn discarded(&self) -> Vec<Uuid> {
        self.discarded.lock().unwrap().clone()
    }

    fn set_status(&self, id: Uuid, to: DeadLetterStatus) -> bool {
        let mut letters = self.letters.lock().unwrap();
        match letters.iter_mut().find(|d| d.id == id) {
            Some(d) if d.status == DeadLetterStatus::Pending => {
                d.status = to;
                true
            }
            _ => false,
        }
    }
}

fn lookup<T: Clone>(items: &[T], id: &IdRef, key: impl Fn(&T) -> Uuid) -> Lookup<T> {
    let found: Vec<&T> = items.iter().filter(|x| id.matches(&key(x))).collect();
    match found.as_slice() {
        [] => Lookup::NotFound,
        [one] => Lookup::Found((*one).clone()),
        many => Lookup::Ambiguous(many.iter().map(|x| key(x)).collect()),
    }
}

#[async_trait]
impl Tools for Shop {
    async fn products(&self) -> Result<Vec<Product>, ToolError> {
        Ok(self.products.clone())
    }

    async fn order(&self, id: &IdRef) -> Result<Lookup<OrderInfo>, ToolError> {
        Ok(lookup(&self.orders, id, |o| o.id))
    }

    async fn order_stats(&self, _period: &Period) -> Result<OrderStats, ToolError> {
        if self.stats_down {
            return Err(ToolError::Unavailable("analytics".into()));
        }
        Ok(OrderStats {
            orders: 12,
            succeeded: 9,
            failed: 2,
            in_progress: 1,
            revenue_cents: 123_456,
            currency: "USD".into(),
        })
    }

    async fn stock(&self, product: &Product) -> Result<StockInfo, ToolError> {
        Ok(StockInfo {
            product: product.clone(),
            available: 42,
            reserved: 3,
        })
    }

    async fn forecast(&self, product: &Product, days: u32) -> Result<DemandOutlook, ToolError> {
        Ok(DemandOutlook {
            product: product.clone(),
            days,
            expected: 5.0 * f64::from(days),
            lower: 3.0 * f64::from(days),
            upper: 7.0 * f64::from(days),
            level: 0.95,
            stockout: None,
            method: "theta".into(),
        })
    }

    async fn recommendations(
        &self,
        customer: &IdRef,
        k: usize,
    ) -> Result<Lookup<CustomerRecommendations>, ToolError> {
        if !customer.matches(&id(CUSTOMER)) {
            return Ok(Lookup::NotFound);
        }
        let items = self
            .products
            .iter()
            .take(k)
            .map(|p| Recommendation {
                product: p.clone(),
                score: 1.0,
            })
            .collect();
        Ok(Lookup::Found(CustomerRecommendations {
            customer_id: id(CUSTOMER),
            items,
            personalised: true,
        }))
    }

    async fn anomalies(&self) -> Result<Vec<AnomalyReport>, ToolError> {
        Ok(vec![AnomalyReport::new(
            "saga-9",
            vec![Anomaly {
                kind: AnomalyKind::StuckStep,
                score: 4.2,
                step: Some("charge_payment".into()),
                explanation: "charge_payment has had no reply for 12 minutes".into(),
            }],
        )])
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, ToolError> {
        let letters = self.letters.lock().unwrap();
        Ok(letters
            .iter()
            .filter(|d| d.status == DeadLetterStatus::Pending)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn dead_letter(&self, id: &IdRef) -> Result<Lookup<DeadLetter>, ToolError> {
        Ok(lookup(&self.letters.lock().unwrap(), id, |d| d.id))
    }

    async fn replay_dead_letter(&self, id: Uuid) -> Result<bool, ToolError> {
        let done = self.set_status(id, DeadLetterStatus::Replayed);
        self.replayed.lock().unwrap().push(id);
        Ok(done)
    }

    async fn discard_dead_letter(&self, id: Uuid) -> Result<bool, ToolError> {
        let done = self.set_status(id, DeadLetterStatus::Discarded);
        self.discarded.lock().unwrap().push(id);
        Ok(done)
    }
}

/// Asserts that the reply's text contains `needle`, showing the text otherwise.
fn has(reply: &Reply, needle: &str) {
    assert!(
        reply.text.contains(needle),
        "{:?} lacks {needle:?}",
        reply.text
    );
}

/// Asserts that the reply's text starts with `start`, showing the text otherwise.
fn starts(reply: &Reply, start: &str) {
    assert!(
        reply.text.starts_with(start),
        "{:?} does not start with {start:?}",
        reply.text
    );
}

fn assistant() -> Assistant<Shop> {
    Assistant::new(Shop::new()).unwrap()
}

#[tokio::test]
async fn a_replay_runs_only_after_yes() {
    let a = assistant();
    let ask = a
        .reply_at("c1", "please replay dead letter 0190de01-2222", now())
        .await;
    assert_eq!(ask.intent.kind().as_str(), "replay_dead_letter");
    starts(&ask, "I will replay dead letter");
    has(&ask, "gateway timeout");
    assert_eq!(
        ask.pending,
        Some(PendingAction::ReplayDeadLetter {
            id: id(LETTER),
            summary:
                "payment.requested for order-17 in payment-service, 5 attempt(s): gateway timeout"
                    .into()
        })
    );
    assert!(a.tools().replayed().is_empty(), "replayed before the yes");

    let yes = a
        .reply_at("c1", "yes go ahead", now() + Duration::seconds(20))
        .await;
    assert_eq!(yes.intent, Intent::Confirm);
    assert_eq!(a.tools().replayed(), vec![id(LETTER)]);
    has(&yes, "handed back for delivery");
    assert!(matches!(
        yes.data,
        Some(ReplyData::ActionDone { done: true, .. })
    ));

    let again = a.reply_at("c1", "yes", now() + Duration::seconds(30)).await;
    assert_eq!(
        again.text,
        "There is nothing waiting for your confirmation."
    );
    assert_eq!(a.tools().replayed().len(), 1);
}

#[tokio::test]
async fn no_cancels_and_nothing_runs() {
    let a = assistant();
    let ask = a.reply_at("c1", "discard 0190de01-2222", now()).await;
    assert!(ask.pending.is_some(), "{}", ask.text);
    let no = a.reply_at("c1", "no, leave it", now()).await;
    assert_eq!(no.intent, Intent::Cancel);
    starts(&no, "Cancelled");
    let yes = a.reply_at("c1", "yes", now()).await;
    assert_eq!(yes.text, "There is nothing waiting for your confirmation.");
    assert!(a.tools().discarded().is_empty());
    let no = a.reply_at("c1", "cancel", now()).await;
    assert_eq!(no.text, "There is nothing to cancel.");
}

#[tokio::test]
async fn a_confirmation_after_the_expiry_runs_nothing() {
    let a = assistant();
    a.reply_at("c1", "replay dead letter 0190de01-2222", now())
        .await;
    let late = a.reply_at("c1", "yes", now() + Duration::minutes(6)).await;
    has(&late, "waited more than 5 minutes and was dropped");
    assert!(a.tools().replayed().is_empty());
}

#[tokio::test]
async fn actions_are_per_conversation_and_dropped_by_another_question() {
    let a = assistant();
    a.reply_at("alice", "replay dead letter 0190de01-2222", now())
        .await;
    let bob = a.reply_at("bob", "yes", now()).await;
    assert_eq!(bob.text, "There is nothing waiting for your confirmation.");

    let between = a.reply_at("alice", "how many orders today?", now()).await;
    has(&between, "is cancelled");
    let yes = a.reply_at("alice", "yes", now()).await;
    assert_eq!(yes.text, "There is nothing waiting for your confirmation.");
    assert!(a.tools().replayed().is_empty());
}

#[tokio::test]
async fn a_letter_gone_by_the_confirmation_is_reported_not_replayed() {
    let a = assistant();
    a.reply_at("c1", "replay 0190de01-2222", now()).await;
    a.tools()
        .set_status(id(LETTER), DeadLetterStatus::Discarded);
    let yes = a.reply_at("c1", "yes", now()).await;
    has(&yes, "no longer pending");
    assert!(matches!(
        yes.data,
        Some(ReplyData::ActionDone { done: false, .. })
    ));
}

#[tokio::test]
async fn ambiguous_finished_and_missing_letters_propose_nothing() {
    let a = assistant();
    let twin = a.reply_at("c1", "replay dead letter 0190de01", now()).await;
    assert!(twin.pending.is_none());
    has(&twin, "matches several dead letters");
    assert!(matches!(twin.data, Some(ReplyData::Candidates(ref ids)) if ids.len() == 2));

    let done = a.reply_at("c1", "replay dead letter 0190de99", now()).await;
    assert!(done.pending.is_none());
    has(&done, "already replayed");

    let none = a.reply_at("c1", "replay dead letter 0190ffff", now()).await;
    has(&none, "no dead letter matching 0190ffff");

    let which = a.reply_at("c1", "replay a dead letter", now()).await;
    starts(&which, "Which dead letter should I replay?");
    assert!(matches!(which.data, Some(ReplyData::DeadLetters(ref l)) if l.len() == 2));
}

#[tokio::test]
async fn answers_come_from_the_tools_data() {
    let a = assistant();
    let why = a
        .reply_at("c1", "why did order 0190a3b2 fail?", now())
        .await;
    assert_eq!(
        why.text,
        format!(
            "Order {FAILED} failed at step charge_payment: card declined. Undone by: release_inventory."
        )
    );
    let fine = a.reply_at("c1", "why did 0190b7ee fail", now()).await;
    has(&fine, "has not failed: it is confirmed");

    let status = a.reply_at("c1", "status of order 0190b7ee", now()).await;
    has(&status, "is confirmed");
    has(&status, "50.00 USD");

    let revenue = a.reply_at("c1", "revenue yesterday", now()).await;
    assert_eq!(
        revenue.text,
        "Revenue yesterday: 1,234.56 USD from 9 completed orders. Average order: 137.17 USD."
    );
    let count = a.reply_at("c1", "how many orders?", now()).await;
    starts(&count, "12 orders today (no period given");

    let stock = a
        .reply_at("c1", "how many desk lmaps are left", now())
        .await;
    assert_eq!(
        stock.text,
        "Desk Lamp: 42 available, 3 reserved by running orders."
    );
    let which = a.reply_at("c1", "what's in stock?", now()).await;
    assert!(
        which
            .text
            .starts_with("Which product? I know: Desk Lamp, Webcam HD"),
        "{}",
        which.text
    );

    let forecast = a
        .reply_at("c1", "forecast webcam demand for the next 2 weeks", now())
        .await;
    has(&forecast, "next 14 days: 70 units");

    let recs = a
        .reply_at("c1", "recommendations for customer 0190c0de", now())
        .await;
    has(&recs, "Desk Lamp, Webcam HD");

    let anomalies = a.reply_at("c1", "any anomalies right now?", now()).await;
    has(&anomalies, "no reply for 12 minutes");

    let letters = a.reply_at("c1", "list dead letters", now()).await;
    starts(&letters, "2 pending dead letters");
}

#[tokio::test]
async fn unknown_questions_get_an_honest_answer_with_examples() {
    let a = assistant();
    let r = a
        .reply_at("c1", "what's the weather in paris?", now())
        .await;
    assert_eq!(r.intent, Intent::Unknown);
    starts(&r, "I can't answer that.");
    has(&r, "How many Desk Lamp are in stock?");
    assert!(matches!(r.data, Some(ReplyData::Examples(ref e)) if e.len() >= 5));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["intent"]["intent"], "unknown");
    assert_eq!(json["via"], "parser");
}

#[tokio::test]
async fn a_failing_tool_is_reported_not_papered_over() {
    let shop = Shop {
        stats_down: true,
        ..Shop::new()
    };
    let a = Assistant::new(shop).unwrap();
    let r = a.reply_at("c1", "revenue this week", now()).await;
    assert_eq!(r.error.as_deref(), Some("analytics is unavailable"));
    assert_eq!(
        r.text,
        "I could not get the order figures: analytics is unavailable."
    );
    assert!(r.data.is_none());
}

/// The language-model client against a loopback server that answers like an OpenAI-compatible
/// API: it picks the tool, the assistant runs it and checks it, the model phrases the answer;
/// actions still wait for the user's yes; an unreachable model falls back to the parser.
#[cfg(feature = "llm")]
mod llm {
    use std::sync::{Arc, Mutex};

    use saga_ai::assistant::Via;
    use saga_ai::assistant::llm::{LlmClient, LlmConfig};
    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    type Log = Arc<Mutex<Vec<(String, Value)>>>;

    /// Reads one HTTP/1.1 request: its head (lower case) and its JSON body.
    async fn read_request(stream: &mut TcpStream) -> (String, Value) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the request ended");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed inside the body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
        (head, body)
    }

    /// A server answering each request with the next of `responses`, logging the requests.
    async fn model_server(responses: Vec<Value>) -> (String, Log) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let log: Log = Arc::default();
        let requests = log.clone();
        tokio::spawn(async move {
            for response in responses {
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = read_request(&mut stream).await;
                requests.lock().unwrap().push(request);
                let body = response.to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(reply.as_bytes()).await.unwrap();
                stream.shutdown().await.ok();
            }
        });
        (url, log)
    }

    fn tool_call(name: &str, args: Value) -> Value {
        serde_json::json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call-1", "type": "function",
                "function": {"name": name, "arguments": args.to_string()}}]}}]})
    }

    fn text(content: &str) -> Value {
        serde_json::json!({"choices": [{"message": {"role": "assistant", "content": content}}]})
    }

    fn with_model(url: &str) -> Assistant<Shop> {
        let config = LlmConfig {
            api_key: Some("test-key".into()),
            ..LlmConfig::new(url, "test-model")
        };
        assistant().with_llm(LlmClient::new(config).unwrap())
    }

    #[tokio::test]
    async fn the_model_picks_the_tool_and_phrases_the_data() {
        let (url, log) = model_server(vec![
            tool_call("revenue", serde_json::json!({"period": "yesterday"})),
            text("Yesterday brought in 1,234.56 USD over 9 completed orders."),
        ])
        .await;
        let a = with_model(&url);
        let r = a.reply_at("c1", "how did sales go yesterday?", now()).await;
        assert_eq!(r.via, Via::Llm);
        assert_eq!(
            r.text,
            "Yesterday brought in 1,234.56 USD over 9 completed orders."
        );
        let Intent::Revenue { period: Some(p) } = &r.intent else {
            panic!("{:?}", r.intent)
        };
        assert_eq!(p.label, "yesterday");
        assert!(matches!(r.data, Some(ReplyData::Stats { .. })));
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2);
        assert!(
            log[0].0.starts_with("post /v1/chat/completions "),
            "{}",
            log[0].0
        );
        assert!(log[0].0.contains("authorization: bearer test-key"));
        assert_eq!(log[0].1["model"], "test-model");
        assert!(log[0].1["tools"].as_array().is_some_and(|t| t.len() == 12));
        let draft = log[1].1["messages"][1]["content"].as_str().unwrap();
        assert!(draft.contains("Revenue yesterday: 1,234.56 USD"), "{draft}");
    }

    #[tokio::test]
    async fn an_action_the_model_picks_still_waits_for_yes() {
        let (url, log) = model_server(vec![tool_call(
            "replay_dead_letter",
            serde_json::json!({"id": "0190de01-2222"}),
        )])
        .await;
        let a = with_model(&url);
        let ask = a
            .reply_at("c1", "push that payment message through again", now())
            .await;
        assert!(ask.pending.is_some(), "{}", ask.text);
        starts(&ask, "I will replay dead letter");
        assert!(a.tools().replayed().is_empty());
        // The yes is read offline: no second request reaches the model.
        let yes = a.reply_at("c1", "yes", now()).await;
        assert_eq!(yes.via, Via::Parser);
        assert_eq!(a.tools().replayed(), vec![id(LETTER)]);
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn no_tool_keeps_the_honest_answer_and_a_dead_model_falls_back() {
        let (url, log) = model_server(vec![text("It is sunny in Paris.")]).await;
        let a = with_model(&url);
        let r = a
            .reply_at("c1", "what's the weather in paris?", now())
            .await;
        starts(&r, "I can't answer that.");
        assert_eq!(log.lock().unwrap().len(), 1);

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", closed.local_addr().unwrap());
        drop(closed);
        let a = with_model(&url);
        let r = a.reply_at("c1", "revenue yesterday", now()).await;
        assert_eq!(r.via, Via::Parser);
        starts(&r, "Revenue yesterday: 1,234.56 USD");
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("answered offline"))
        );
    }
}
