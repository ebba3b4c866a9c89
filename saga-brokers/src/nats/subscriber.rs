//! The pull loop of one subscriber: pull within the prefetch, forward, pull again.

use std::sync::Arc;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use futures_util::StreamExt;
use saga_core::{
    DeadLetter, Delivery, DeliveryStream, Envelope, Error, Result, Subscription, TopicPattern,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::acker::NatsAcker;
use super::broker::{Inner, transient};
use super::parking::Parking;
use super::subject;

/// Validates, creates (or joins) the durable consumer, starts the pull loop.
pub(crate) async fn subscribe(inner: Arc<Inner>, sub: &Subscription) -> Result<DeliveryStream> {
    if sub.name.is_empty() {
        return Err(Error::InvalidArgument(
            "the subscription name is empty".into(),
        ));
    }
    if sub.patterns.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "subscription `{}` has no patterns",
            sub.name
        )));
    }
    let (filter, client_side) = subject::filter(&inner.config.subject_prefix, &sub.patterns)?;
    let patterns = sub
        .patterns
        .iter()
        .map(|p| TopicPattern::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let durable = subject::durable_name(&sub.name);
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        filter_subject: filter,
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: inner.config.ack_wait,
        max_deliver: i64::from(inner.config.max_deliveries) + 1,
        max_ack_pending: if sub.ordered {
            1
        } else {
            i64::from(inner.config.max_ack_pending.max(1))
        },
        ..pull::Config::default()
    };
    let stream = inner
        .js
        .get_stream(&inner.config.stream)
        .await
        .map_err(transient)?;
    let consumer: PullConsumer = stream
        .get_or_create_consumer(&durable, config)
        .await
        .map_err(transient)?;
    let (tx, rx) = mpsc::channel(usize::from(sub.prefetch.max(1)));
    // Every subscriber drains released lanes (replays reach unordered subscriptions that
    // way too); only ordered ones park.
    let parking = Arc::new(Parking::open(inner.clone(), &sub.name).await?);
    tokio::spawn(parking.clone().run_releases(tx.clone()));
    let parking = sub.ordered.then_some(parking);
    let run = Run {
        parking,
        inner,
        sub: sub.clone(),
        patterns: client_side.then_some(patterns),
        permits: Arc::new(Semaphore::new(usize::from(sub.prefetch.max(1)))),
    };
    tokio::spawn(run.run(consumer, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Box::pin(stream))
}

struct Run {
    /// Set on ordered subscriptions.
    parking: Option<Arc<Parking>>,
    inner: Arc<Inner>,
    sub: Subscription,
    /// Set when the consumer's filter is wider than the patterns.
    patterns: Option<Vec<TopicPattern>>,
    permits: Arc<Semaphore>,
}

impl Run {
    async fn run(self, consumer: PullConsumer, tx: mpsc::Sender<Result<Delivery>>) {
        let mut failures = 0u32;
        loop {
            let first = tokio::select! {
                _ = tx.closed() => return,
                p = self.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let want = 1 + self.permits.available_permits();
            let batch = consumer
                .batch()
                .max_messages(want)
                .expires(self.inner.config.pull_wait)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, subscription = %self.sub.name, "nats: pull failed, retrying");
                    drop(first);
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(self.inner.config.backoff(failures)) => {}
                    }
                    failures = failures.saturating_add(1);
                    continue;
                }
            };
            failures = 0;
            let mut first = Some(first);
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => return,
                    next = batch.next() => next,
                };
                let msg = match next {
                    None => break,
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, subscription = %self.sub.name, "nats: pull ended");
                        break;
                    }
                };
                let permit = first
                    .take()
                    .or_else(|| self.permits.clone().try_acquire_owned().ok());
                if let Some(d) = self.handle(msg, permit, &tx).await
                    && tx.send(Ok(d)).await.is_err()
                {
                    return;
                }
            }
        }
    }

    async fn handle(
        &self,
        msg: async_nats::jetstream::Message,
        permit: Option<OwnedSemaphorePermit>,
        tx: &mpsc::Sender<Result<Delivery>>,
    ) -> Option<Delivery> {
        let attempt = msg
            .info()
            .ok()
            .and_then(|i| u32::try_from(i.delivered).ok())
            .unwrap_or(1)
            .max(1);
        let envelope = match Envelope::from_json(&msg.payload) {
            Ok(e) => e,
            Err(e) => {
                let id = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                let placeholder = undecodable(&id, msg.subject.as_str(), &msg.payload);
                self.dead_letter_here(
                    &msg,
                    placeholder,
                    format!("undecodable message: {e}"),
                    attempt,
                )
                .await;
                return None;
            }
        };
        if let Some(patterns) = &self.patterns
            && !patterns.iter().any(|p| p.matches(&envelope.event_type))
        {
            // Outside this subscription's patterns (the filter is wider): skip it.
            if let Err(e) = msg.ack().await {
                tracing::warn!(error = %e, "nats: ack of a filtered-out message failed");
            }
            return None;
        }
        if attempt > self.inner.config.max_deliveries {
            let reason = format!(
                "delivered {attempt} times without being settled (limit {})",
                self.inner.config.max_deliveries
            );
            if let Some(parking) = &self.parking
                && let Err(e) = parking.append(&envelope).await
            {
                tracing::warn!(error = %e, "nats: parking a message failed");
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                return None;
            }
            self.dead_letter_here(&msg, envelope, reason, attempt).await;
            return None;
        }
        if let Some(parking) = &self.parking {
            let parked = match parking.is_parked(&envelope.aggregate_id).await {
                Ok(false) => false,
                Ok(true) => match parking.park_behind(&envelope).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "nats: parking a message failed");
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                        return None;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "nats: checking the parked keys failed");
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    return None;
                }
            };
            if parked {
                // Parked behind its key's dead letter: it lives in the lane now.
                if let Err(e) = msg.ack().await {
                    tracing::warn!(error = %e, "nats: ack of a parked message failed");
                }
                return None;
            }
        }
        let acker = NatsAcker::new(
            self.inner.clone(),
            msg,
            permit,
            attempt,
            self.sub.name.clone(),
            self.sub.ordered,
            tx.downgrade(),
            self.parking.clone(),
        );
        Some(Delivery::new(
            envelope,
            attempt,
            self.sub.name.clone(),
            Box::new(acker),
        ))
    }

    async fn dead_letter_here(
        &self,
        msg: &async_nats::jetstream::Message,
        envelope: Envelope,
        reason: String,
        attempt: u32,
    ) {
        let letter = DeadLetter::new(
            self.sub.name.clone(),
            envelope,
            reason,
            attempt,
            None,
            chrono::Utc::now(),
        );
        match self.inner.dead_letters.put(letter).await {
            Ok(()) => {
                if let Err(e) = msg.ack_with(AckKind::Term).await {
                    tracing::warn!(error = %e, "nats: term after dead letter failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "nats: storing a dead letter failed"),
        }
    }
}

/// An envelope standing for bytes that were not one, so they can be dead-lettered and read.
fn undecodable(message_id: &str, subject: &str, data: &[u8]) -> Envelope {
    let mut e = Envelope::new(
        subject,
        message_id,
        serde_json::json!({ "raw": String::from_utf8_lossy(data) }),
    );
    if let Ok(id) = message_id.parse() {
        e = e.with_id(id);
    }
    e.with_header("saga-undecodable", "true")
}
