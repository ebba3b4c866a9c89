//! Running a message handler on a subscription: bounded concurrency, retry and dead letters by
//! the retry policy, resubscription after a broker fault, and a graceful stop that lets the
//! deliveries in flight finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use saga_ai::healing::{
    ActionKind, Failure, FailureClass, HealingAction, PoisonClassifier, PolicyName,
};
use saga_core::broker::{Delivery, Settled, Subscriber, Subscription};
use saga_core::{Envelope, HandlerError, RetryPolicy};

use crate::healing::{HealingOutcome, HealingRecord};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Handles one message. Handlers mark the inbox in their own unit of work, so a repeat of a
/// message they already handled returns `Ok` without effect.
///
/// A handler of an unordered subscription may also take several messages at once
/// ([`Handler::batch_limit`], [`Handler::handle_batch`]): the consumer then hands it the
/// deliveries that are already waiting (never waiting for more), and the handler commits
/// them in one unit of work, one commit instead of one per message.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles the message; an error is retried or dead-lettered by the policy.
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError>;

    /// Most messages one [`Handler::handle_batch`] takes; 1 (the default) hands every message
    /// to [`Handler::handle`] alone.
    fn batch_limit(&self) -> usize {
        1
    }

    /// Handles `envelopes` in one unit of work: all of them take effect, or (on an error)
    /// none does. After an error the consumer hands each of them to [`Handler::handle`]
    /// alone, so that one bad message is retried or dead-lettered by itself and the others
    /// are not held back by it. The default handles them one by one.
    async fn handle_batch(&self, envelopes: &[Arc<Envelope>]) -> Result<(), HandlerError> {
        for envelope in envelopes {
            self.handle(envelope).await?;
        }
        Ok(())
    }
}

/// Called after each delivery is settled: subscription, event type, how it was settled.
pub type SettledHook = Arc<dyn Fn(&str, &str, &Settled) + Send + Sync>;

/// How a consumer runs.
#[derive(Clone)]
pub struct Consumer {
    /// The subscription.
    pub subscription: Subscription,
    /// Retry and dead-letter policy.
    pub policy: RetryPolicy,
    /// Most deliveries handled at once.
    pub concurrency: usize,
    /// Observer of settled deliveries (metrics).
    pub on_settled: Option<SettledHook>,
    /// Told once the subscription exists (so that nothing is published before it does).
    pub ready: Option<Arc<Ready>>,
    /// The poison-message policy, when it is on.
    pub poison: Option<Arc<PoisonWatch>>,
}

/// The poison-message policy of a consumer: each failure is classified; one that no retry
/// cures is dead-lettered at once with its diagnosis, and the decision is recorded.
pub struct PoisonWatch {
    classifier: PoisonClassifier,
    /// Earlier failures' messages per (message id), bounded.
    earlier: Mutex<HashMap<uuid::Uuid, Vec<String>>>,
    record: crate::healing::HealingSink,
}

/// How many messages' failures a watch remembers (beyond that it forgets them all: a
/// repeated error is then noticed a few attempts later).
const REMEMBERED: usize = 10_000;

impl PoisonWatch {
    /// A watch calling an error repeated `repeats` times poison, recording into `record`.
    pub fn new(repeats: u32, record: crate::healing::HealingSink) -> Self {
        Self {
            classifier: PoisonClassifier::new(repeats),
            earlier: Mutex::new(HashMap::new()),
            record,
        }
    }

    /// The error to settle a failed delivery with: `error` itself, or a permanent error
    /// carrying the diagnosis, with the id of the decision's record (its outcome follows
    /// once the delivery is settled: [`PoisonWatch::settled`]).
    pub fn judge(
        &self,
        subscription: &str,
        envelope: &Envelope,
        attempt: u32,
        error: HandlerError,
    ) -> (HandlerError, Option<uuid::Uuid>) {
        let mut earlier = self.earlier.lock().unwrap_or_else(|p| p.into_inner());
        let seen = earlier.get(&envelope.event_id).cloned().unwrap_or_default();
        let class = self.classifier.classify(&Failure {
            permanent: !error.is_transient(),
            message: error.message(),
            attempt,
            earlier: &seen,
        });
        match class {
            FailureClass::Transient => {
                if earlier.len() >= REMEMBERED {
                    earlier.clear();
                }
                earlier
                    .entry(envelope.event_id)
                    .or_default()
                    .push(error.message().to_owned());
                (error, None)
            }
            FailureClass::Poison(diagnosis) => {
                earlier.remove(&envelope.event_id);
                drop(earlier);
                let kind = serde_json::to_value(diagnosis.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let id = uuid::Uuid::now_v7();
                (self.record)(HealingRecord::Action {
                    id,
                    action: HealingAction::new(
                        PolicyName::PoisonMessage,
                        ActionKind::DeadLetter,
                        envelope.event_id.to_string(),
                        format!(
                            "{} on `{subscription}` failed at attempt {attempt}: {}",
                            envelope.event_type,
                            error.message()
                        ),
                        format!("dead-lettered at once as {kind}: {}", diagnosis.detail),
                        chrono::Utc::now(),
                    ),
                });
                (
                    HandlerError::permanent(format!(
                        "poison message ({kind}): {}",
                        diagnosis.detail
                    )),
                    Some(id),
                )
            }
        }
    }

    /// Records how the delivery judged poison under `action_id` was settled.
    pub fn settled(
        &self,
        action_id: uuid::Uuid,
        subscription: &str,
        result: &saga_core::Result<Settled>,
    ) {
        let outcome = match result {
            Ok(Settled::DeadLettered(_)) => format!(
                "stored as a dead letter of `{subscription}`: replay or discard it on the \
                 dead-letter page or with `reference-app dlq`"
            ),
            Ok(Settled::Retried(delay)) => format!("scheduled again in {delay:?}"),
            Ok(Settled::Acked) => "acked".to_owned(),
            Err(e) => format!("storing the dead letter failed ({e}): it will be delivered again"),
        };
        (self.record)(HealingRecord::Outcome(HealingOutcome {
            action_id,
            outcome,
            at: chrono::Utc::now(),
        }));
    }

    /// Forgets a message that was handled.
    fn handled(&self, id: &uuid::Uuid) {
        let mut earlier = self.earlier.lock().unwrap_or_else(|p| p.into_inner());
        if !earlier.is_empty() {
            earlier.remove(id);
        }
    }
}

/// Counts subscriptions that exist; a starter waits for all of them before publishing.
#[derive(Debug, Default)]
pub struct Ready {
    notify: tokio::sync::Notify,
    count: std::sync::atomic::AtomicUsize,
    expected: std::sync::atomic::AtomicUsize,
}

impl Ready {
    /// A new counter.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn signal(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Announces one more subscription to wait for.
    pub fn expect(&self) {
        self.expected
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Waits until every announced subscription exists, or `timeout` passes; returns whether
    /// they all do.
    pub async fn wait_all(&self, timeout: Duration) -> bool {
        let n = self.expected.load(std::sync::atomic::Ordering::SeqCst);
        self.wait_for(n, timeout).await
    }

    /// How many subscriptions exist.
    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` subscriptions exist or `timeout` passes; returns whether they do.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if self.count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() >= n;
            }
        }
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("subscription", &self.subscription)
            .field("policy", &self.policy)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer of `subscription` with five attempts (0.1 s to 5 s backoff) and 16 messages
    /// at once.
    pub fn new(subscription: Subscription) -> Self {
        let concurrency = usize::from(subscription.prefetch).clamp(1, 16);
        Self {
            subscription,
            policy: RetryPolicy::default()
                .with_max_attempts(5)
                .with_initial_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5)),
            concurrency,
            on_settled: None,
            ready: None,
            poison: None,
        }
    }

    /// Sets the poison-message policy.
    #[must_use]
    pub fn poison(mut self, watch: Option<Arc<PoisonWatch>>) -> Self {
        self.poison = watch;
        self
    }

    /// Signals `ready` once subscribed.
    #[must_use]
    pub fn signals(mut self, ready: &Arc<Ready>) -> Self {
        self.ready = Some(ready.clone());
        self
    }

    /// Sets the observer of settled deliveries.
    #[must_use]
    pub fn observed(mut self, hook: Option<SettledHook>) -> Self {
        self.on_settled = hook;
        self
    }

    /// Runs `handler` on the subscription until `shutdown`, then waits for the deliveries in
    /// flight.
    pub fn spawn(
        self,
        subscriber: Arc<dyn Subscriber>,
        handler: Arc<dyn Handler>,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(self.run(subscriber, handler, shutdown))
    }

    async fn run(
        self,
        subscriber: Arc<dyn Subscriber>,
        handler: Arc<dyn Handler>,
        shutdown: CancellationToken,
    ) {
        let name: Arc<str> = self.subscription.name.as_str().into();
        // Batches only where order does not matter (an ordered subscription hands out one
        // message per key at a time anyway), at most a prefetch of them; a batching consumer
        // holds up to its prefetch of deliveries, one-by-one consumers `concurrency`.
        let prefetch = usize::from(self.subscription.prefetch).max(1);
        let batch_limit = if self.subscription.ordered {
            1
        } else {
            handler.batch_limit().clamp(1, prefetch)
        };
        let held = if batch_limit > 1 {
            self.concurrency.max(prefetch)
        } else {
            self.concurrency.max(1)
        };
        let permits = Arc::new(Semaphore::new(held));
        let work = Arc::new(Work {
            name: name.clone(),
            handler: handler.clone(),
            policy: self.policy.clone(),
            hook: self.on_settled.clone(),
            poison: self.poison.clone(),
        });
        let mut in_flight = JoinSet::new();
        let mut failures = 0u32;
        let mut first_subscription = true;
        'outer: while !shutdown.is_cancelled() {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = subscriber.subscribe(&self.subscription) => s,
            };
            let mut stream = match stream {
                Ok(s) => {
                    failures = 0;
                    if let Some(ready) = self.ready.as_ref() {
                        if first_subscription {
                            ready.signal();
                        }
                    }
                    first_subscription = false;
                    s
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    tracing::warn!(subscription = %name, error = %e, ?wait, "subscribe failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            loop {
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break 'outer,
                    },
                };
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    next = stream.next() => next,
                };
                // Reap finished tasks so the set stays small.
                while in_flight.try_join_next().is_some() {}
                match next {
                    Some(Ok(delivery)) => {
                        let mut batch = vec![delivery];
                        let mut permits_held = vec![permit];
                        let mut ended = false;
                        if batch_limit > 1 {
                            // Take what is already waiting (never wait for more), while
                            // permits last: a stream's `next` may be dropped unfinished.
                            while batch.len() < batch_limit {
                                let Ok(more) = permits.clone().try_acquire_owned() else {
                                    break;
                                };
                                match stream.next().now_or_never() {
                                    Some(Some(Ok(d))) => {
                                        batch.push(d);
                                        permits_held.push(more);
                                    }
                                    Some(Some(Err(e))) => {
                                        tracing::warn!(subscription = %name, error = %e, "delivery stream error");
                                        break;
                                    }
                                    Some(None) => {
                                        ended = true;
                                        break;
                                    }
                                    None => break,
                                }
                            }
                        }
                        let work = work.clone();
                        in_flight.spawn(async move {
                            if batch.len() == 1 {
                                if let Some(delivery) = batch.pop() {
                                    work.one(delivery).await;
                                }
                            } else {
                                work.batch(batch).await;
                            }
                            drop(permits_held);
                        });
                        if ended {
                            tracing::warn!(subscription = %name, "delivery stream ended; resubscribing");
                            tokio::select! {
                                _ = shutdown.cancelled() => break 'outer,
                                _ = tokio::time::sleep(Duration::from_millis(200)) => continue 'outer,
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(subscription = %name, error = %e, "delivery stream error");
                        drop(permit);
                    }
                    None => {
                        tracing::warn!(subscription = %name, "delivery stream ended; resubscribing");
                        drop(permit);
                        tokio::select! {
                            _ = shutdown.cancelled() => break 'outer,
                            _ = tokio::time::sleep(Duration::from_millis(200)) => continue 'outer,
                        }
                    }
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
    }
}

/// What a spawned task needs to handle deliveries and settle them.
struct Work {
    name: Arc<str>,
    handler: Arc<dyn Handler>,
    policy: RetryPolicy,
    hook: Option<SettledHook>,
    poison: Option<Arc<PoisonWatch>>,
}

impl Work {
    /// Handles one delivery and settles it by its outcome.
    async fn one(&self, delivery: Delivery) {
        let envelope = delivery.envelope.clone();
        let span = crate::trace_context::delivery_span(&self.name, &envelope);
        let outcome = self.handler.handle(&envelope).instrument(span).await;
        if let Err(e) = &outcome {
            tracing::warn!(subscription = %self.name, event_type = %envelope.event_type,
                event_id = %envelope.event_id, attempt = delivery.attempt, error = %e,
                "handler failed");
        }
        self.settle(delivery, outcome).await;
    }

    /// Handles deliveries in one unit of work and acks them all; if that fails, handles
    /// each alone.
    async fn batch(&self, deliveries: Vec<Delivery>) {
        let envelopes: Vec<Arc<Envelope>> = deliveries.iter().map(|d| d.envelope.clone()).collect();
        let span = crate::trace_context::batch_span(&self.name, &envelopes);
        match self.handler.handle_batch(&envelopes).instrument(span).await {
            Ok(()) => {
                // Settled together, so that a broker that group-commits acks writes them in
                // one commit.
                futures_util::future::join_all(
                    deliveries.into_iter().map(|d| self.settle(d, Ok(()))),
                )
                .await;
            }
            Err(e) => {
                tracing::debug!(subscription = %self.name, messages = deliveries.len(), error = %e,
                    "batch failed; handling its messages one by one");
                futures_util::future::join_all(deliveries.into_iter().map(|d| self.one(d))).await;
            }
        }
    }

    /// Settles a delivery by the handler's outcome (through the poison watch, when on), and
    /// tells the observer.
    async fn settle(&self, delivery: Delivery, mut outcome: Result<(), HandlerError>) {
        let envelope = delivery.envelope.clone();
        let mut poisoned = None;
        if let Some(watch) = &self.poison {
            outcome = match outcome {
                Ok(()) => {
                    watch.handled(&envelope.event_id);
                    Ok(())
                }
                Err(e) => {
                    let (e, id) = watch.judge(&self.name, &envelope, delivery.attempt, e);
                    poisoned = id;
                    Err(e)
                }
            };
        }
        let settled = delivery.settle(outcome, &self.policy).await;
        if let (Some(watch), Some(id)) = (&self.poison, poisoned) {
            watch.settled(id, &self.name, &settled);
        }
        match settled {
            Ok(settled) => {
                if let Some(hook) = &self.hook {
                    hook(&self.name, &envelope.event_type, &settled);
                }
            }
            Err(e) => tracing::warn!(subscription = %self.name, error = %e,
                "settling a delivery failed; it will be delivered again"),
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_core::broker::Publisher;
    use saga_core::clock::SystemClock;
    use saga_core::dead_letter::DeadLetterFilter;
    use saga_core::memory::{MemoryBroker, MemoryDeadLetterStore};

    /// Records what it handled and how: batch sizes, and single calls. A message whose
    /// payload says `"bad": true` fails, alone or in a batch (which then fails as a whole).
    #[derive(Default)]
    struct Recorder {
        limit: usize,
        handled: Mutex<Vec<String>>,
        batches: Mutex<Vec<usize>>,
        singles: Mutex<usize>,
    }

    fn bad(envelope: &Envelope) -> bool {
        envelope.payload.get("bad").and_then(|v| v.as_bool()) == Some(true)
    }

    #[async_trait]
    impl Handler for Recorder {
        async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
            *self.singles.lock().unwrap() += 1;
            if bad(envelope) {
                return Err(HandlerError::permanent("bad message"));
            }
            self.handled
                .lock()
                .unwrap()
                .push(envelope.aggregate_id.clone());
            Ok(())
        }

        fn batch_limit(&self) -> usize {
            self.limit
        }

        async fn handle_batch(&self, envelopes: &[Arc<Envelope>]) -> Result<(), HandlerError> {
            self.batches.lock().unwrap().push(envelopes.len());
            if envelopes.iter().any(|e| bad(e)) {
                return Err(HandlerError::transient("the batch holds a bad message"));
            }
            let mut handled = self.handled.lock().unwrap();
            handled.extend(envelopes.iter().map(|e| e.aggregate_id.clone()));
            Ok(())
        }
    }

    /// Runs a consumer of `subscription` with `handler` until `expected` messages were
    /// settled (acked or dead-lettered), after publishing `messages` at once.
    async fn run(
        subscription: Subscription,
        handler: Arc<Recorder>,
        messages: Vec<Envelope>,
        expected: usize,
    ) -> Arc<MemoryBroker> {
        let dead = Arc::new(MemoryDeadLetterStore::default());
        let broker = Arc::new(MemoryBroker::new(dead, Arc::new(SystemClock)));
        let ready = Ready::new();
        ready.expect();
        let settled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = settled.clone();
        let hook: SettledHook = Arc::new(move |_, _, s| {
            if !matches!(s, Settled::Retried(_)) {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let shutdown = CancellationToken::new();
        let task = Consumer::new(subscription)
            .signals(&ready)
            .observed(Some(hook))
            .spawn(broker.clone(), handler, shutdown.clone());
        assert!(ready.wait_all(Duration::from_secs(5)).await);
        broker.publish(&messages).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while settled.load(std::sync::atomic::Ordering::SeqCst) < expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {expected} settled",
                settled.load(std::sync::atomic::Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        broker
    }

    fn messages(n: usize) -> Vec<Envelope> {
        (0..n)
            .map(|i| Envelope::new("thing.happened", format!("k-{i}"), serde_json::json!({})))
            .collect()
    }

    #[tokio::test]
    async fn waiting_messages_reach_a_batching_handler_together_each_once() {
        let handler = Arc::new(Recorder {
            limit: 16,
            ..Recorder::default()
        });
        let sub = Subscription::new("batched", ["thing.*"]).with_prefetch(32);
        run(sub, handler.clone(), messages(40), 40).await;
        let mut handled = handler.handled.lock().unwrap().clone();
        handled.sort();
        let mut want: Vec<String> = (0..40).map(|i| format!("k-{i}")).collect();
        want.sort();
        assert_eq!(handled, want, "every message handled exactly once");
        let batches = handler.batches.lock().unwrap().clone();
        assert_eq!(*handler.singles.lock().unwrap(), 0);
        assert_eq!(batches.iter().sum::<usize>(), 40);
        assert!(
            batches.iter().all(|&n| (2..=16).contains(&n)),
            "{batches:?}"
        );
        assert!(
            batches.len() < 40,
            "waiting messages share a batch: {batches:?}"
        );
    }

    #[tokio::test]
    async fn ordered_subscriptions_and_plain_handlers_get_one_message_at_a_time() {
        for (limit, ordered) in [(1, false), (16, true)] {
            let handler = Arc::new(Recorder {
                limit,
                ..Recorder::default()
            });
            let mut sub = Subscription::new("one-by-one", ["thing.*"]);
            if ordered {
                sub = sub.ordered();
            }
            run(sub, handler.clone(), messages(20), 20).await;
            assert_eq!(handler.handled.lock().unwrap().len(), 20);
            assert_eq!(
                *handler.singles.lock().unwrap(),
                20,
                "limit {limit}, ordered {ordered}"
            );
            assert!(handler.batches.lock().unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn a_failed_batch_is_handled_one_by_one_so_only_the_bad_message_fails() {
        let handler = Arc::new(Recorder {
            limit: 32,
            ..Recorder::default()
        });
        let mut batch = messages(12);
        batch[5] = Envelope::new("thing.happened", "k-bad", serde_json::json!({"bad": true}));
        let sub = Subscription::new("batched", ["thing.*"]).with_prefetch(32);
        let broker = run(sub, handler.clone(), batch, 12).await;
        let handled = handler.handled.lock().unwrap().clone();
        assert_eq!(handled.len(), 11, "{handled:?}");
        assert!(!handled.contains(&"k-bad".to_owned()));
        let letters = broker
            .dead_letters()
            .list(&DeadLetterFilter::default())
            .await
            .unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].envelope.aggregate_id, "k-bad");
        assert!(
            *handler.singles.lock().unwrap() >= 2,
            "the failed batch's messages were handled alone"
        );
    }
}
