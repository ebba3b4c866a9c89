//! One subscriber's deliveries: JetStream's continuous pull read inline within the prefetch,
//! merged with local redeliveries and released lanes.

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
    // Redeliveries of ordered retries and released lanes arrive through a channel; the
    // main flow is read inline, in the caller's task, with no hand-off per message.
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
        side: tx.downgrade(),
    };
    let main = futures_util::stream::unfold(
        Pull {
            run,
            consumer,
            messages: None,
            failures: 0,
        },
        |mut pull| async move {
            let delivery = pull.next().await;
            Some((Ok(delivery), pull))
        },
    );
    let side = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    // `tx` itself is dropped here: the side channel stays open while the release loop runs
    // (it ends when the stream is dropped) and ackers hold weak senders.
    drop(tx);
    Ok(Box::pin(futures_util::stream::select(main, side)))
}

struct Run {
    /// Set on ordered subscriptions.
    parking: Option<Arc<Parking>>,
    inner: Arc<Inner>,
    sub: Subscription,
    /// Set when the consumer's filter is wider than the patterns.
    patterns: Option<Vec<TopicPattern>>,
    /// One per unsettled delivery: at most `prefetch` at once.
    permits: Arc<Semaphore>,
    /// Where ackers send local redeliveries (ordered retries).
    side: mpsc::WeakSender<Result<Delivery>>,
}

/// The main flow: JetStream's continuous pull (it asks for the next batch before the current
/// one runs out), read when the caller asks for a delivery and holds fewer than `prefetch`.
struct Pull {
    run: Run,
    consumer: PullConsumer,
    messages: Option<pull::Stream>,
    failures: u32,
}

impl Pull {
    /// The next delivery; retries the pull with backoff through broker faults, so it only
    /// ends when the caller drops the stream.
    async fn next(&mut self) -> Delivery {
        loop {
            let permit = match self.run.permits.clone().acquire_owned().await {
                Ok(p) => p,
                // The semaphore is never closed; wait as if it were exhausted.
                Err(_) => std::future::pending().await,
            };
            let msg = loop {
                if self.messages.is_none() {
                    let opened = self
                        .consumer
                        .stream()
                        .max_messages_per_batch(usize::from(self.run.sub.prefetch.max(1)))
                        .expires(self.run.inner.config.pull_wait)
                        .messages()
                        .await;
                    match opened {
                        Ok(m) => self.messages = Some(m),
                        Err(e) => {
                            tracing::warn!(error = %e, subscription = %self.run.sub.name, "nats: pull failed, retrying");
                            self.back_off().await;
                            continue;
                        }
                    }
                }
                let next = match self.messages.as_mut() {
                    Some(m) => m.next().await,
                    None => continue,
                };
                match next {
                    Some(Ok(msg)) => {
                        self.failures = 0;
                        break msg;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, subscription = %self.run.sub.name, "nats: pull interrupted, pulling again");
                        self.messages = None;
                        self.back_off().await;
                    }
                    None => {
                        self.messages = None;
                    }
                }
            };
            if let Some(delivery) = self.run.handle(msg, Some(permit)).await {
                return delivery;
            }
        }
    }

    async fn back_off(&mut self) {
        tokio::time::sleep(self.run.inner.config.backoff(self.failures)).await;
        self.failures = self.failures.saturating_add(1);
    }
}

impl Run {
    async fn handle(
        &self,
        msg: async_nats::jetstream::Message,
        permit: Option<OwnedSemaphorePermit>,
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
            self.side.clone(),
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
