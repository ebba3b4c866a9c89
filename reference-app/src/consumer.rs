//! Running a message handler on a subscription: bounded concurrency, retry and dead letters by
//! the retry policy, resubscription after a broker fault, and a graceful stop that lets the
//! deliveries in flight finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use saga_ai::healing::{
    ActionKind, Failure, FailureClass, HealingAction, PoisonClassifier, PolicyName,
};
use saga_core::broker::{Settled, Subscriber, Subscription};
use saga_core::{Envelope, HandlerError, RetryPolicy};

use crate::healing::{HealingOutcome, HealingRecord};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Handles one message. Handlers mark the inbox in their own unit of work, so a repeat of a
/// message they already handled returns `Ok` without effect.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles the message; an error is retried or dead-lettered by the policy.
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError>;
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
        let name = self.subscription.name.clone();
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
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
                        let handler = handler.clone();
                        let policy = self.policy.clone();
                        let hook = self.on_settled.clone();
                        let poison = self.poison.clone();
                        let name = name.clone();
                        in_flight.spawn(async move {
                            let envelope = delivery.envelope.clone();
                            let span = crate::trace_context::delivery_span(&name, &envelope);
                            let mut outcome = handler.handle(&envelope).instrument(span).await;
                            if let Err(e) = &outcome {
                                tracing::warn!(subscription = %name, event_type = %envelope.event_type,
                                    event_id = %envelope.event_id, attempt = delivery.attempt, error = %e,
                                    "handler failed");
                            }
                            let mut poisoned = None;
                            if let Some(watch) = &poison {
                                outcome = match outcome {
                                    Ok(()) => {
                                        watch.handled(&envelope.event_id);
                                        Ok(())
                                    }
                                    Err(e) => {
                                        let (e, id) = watch.judge(&name, &envelope, delivery.attempt, e);
                                        poisoned = id;
                                        Err(e)
                                    }
                                };
                            }
                            let settled = delivery.settle(outcome, &policy).await;
                            if let (Some(watch), Some(id)) = (&poison, poisoned) {
                                watch.settled(id, &name, &settled);
                            }
                            match settled {
                                Ok(settled) => {
                                    if let Some(hook) = hook {
                                        hook(&name, &envelope.event_type, &settled);
                                    }
                                }
                                Err(e) => tracing::warn!(subscription = %name, error = %e,
                                    "settling a delivery failed; it will be delivered again"),
                            }
                            drop(permit);
                        });
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

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)))
}
