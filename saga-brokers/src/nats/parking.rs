//! Poison parking of ordered subscriptions, and dead-letter replay to one subscription.
//!
//! A second stream, `<stream>_PARKED`, holds one **lane** per parked key of each ordered
//! subscription (subject `_SAGA_PARKED.<stream>.<consumer>.<key>`) and one **release** subject
//! per subscription (`_SAGA_RELEASE.<stream>.<consumer>`). No subscription of the main stream
//! sees either.
//!
//! * Dead-lettering a delivery of an ordered subscription first appends its message to the
//!   key's lane (it becomes the lane's head), then stores the dead letter, then terminates it.
//! * A key is parked while its lane holds messages: the subscriber appends each later message
//!   of the key to the lane (and acks it in the main stream) instead of handing it out.
//! * Replaying or discarding the dead letter marks it in the store and publishes the key on the
//!   subscription's release subject. Each ordered subscriber pulls that subject through a
//!   durable consumer with one signal in flight and **drains** the key's lane in order: a head
//!   whose latest dead letter is pending stops the drain (still parked), a discarded one is
//!   removed unseen, anything else (the replayed poison, the parked messages) is handed to the
//!   handlers one at a time and removed once acked. The signal is acked when the lane is empty
//!   or parked again; a subscriber dying mid-drain leaves it unacked, so another one resumes.
//! * Every subscriber, ordered or not, runs the release consumer: replaying a letter of an
//!   unordered subscription (whose lane is empty) appends the message to the lane first, so
//!   the same drain delivers it to that subscription only.
//! * Limits: a drained message is handed out as attempt 1 (counted locally from there; a drain
//!   resumed after a crash starts again at 1), a retry of one waits in the draining subscriber,
//!   and a replay is delivered only while some subscriber of its subscription runs.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_trait::async_trait;
use futures_util::StreamExt;
use saga_core::broker::Acker;
use saga_core::dead_letter::{DeadLetterFilter, DeadLetterStatus};
use saga_core::{DeadLetter, Delivery, Envelope, Result};
use tokio::sync::{mpsc, oneshot};

use super::broker::{Inner, transient};
use super::subject::durable_name;

/// The parking stream's name for the main stream `stream`.
pub(crate) fn stream_name(stream: &str) -> String {
    format!("{stream}_PARKED")
}

/// The subjects of the parking stream.
pub(crate) fn stream_config(stream: &str) -> stream::Config {
    stream::Config {
        name: stream_name(stream),
        subjects: vec![
            format!("_SAGA_PARKED.{stream}.>"),
            format!("_SAGA_RELEASE.{stream}.>"),
        ],
        storage: stream::StorageType::File,
        ..stream::Config::default()
    }
}

fn lane(stream: &str, subscription: &str, key: &str) -> String {
    // `k` first: an empty key still needs a token.
    format!(
        "_SAGA_PARKED.{stream}.{}.k{}",
        durable_name(subscription),
        durable_name(key)
    )
}

fn release_subject(stream: &str, subscription: &str) -> String {
    format!("_SAGA_RELEASE.{stream}.{}", durable_name(subscription))
}

/// Publishes the key on the subscription's release subject: a subscriber drains its lane.
pub(crate) async fn signal_release(inner: &Inner, subscription: &str, key: &str) -> Result<()> {
    let subject = release_subject(&inner.config.stream, subscription);
    inner
        .js
        .publish(subject, key.to_owned().into())
        .await
        .map_err(transient)?
        .await
        .map_err(transient)?;
    Ok(())
}

/// Deletes a durable consumer of `stream`; one that does not exist is no error.
pub(crate) async fn delete_consumer(stream: &stream::Stream, name: &str) -> Result<()> {
    match stream.delete_consumer(name).await {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            stream::ConsumerErrorKind::JetStream(js)
                if js.error_code() == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND =>
            {
                Ok(())
            }
            _ => Err(transient(e)),
        },
    }
}

/// The parking of one ordered subscription.
pub(crate) struct Parking {
    inner: Arc<Inner>,
    subscription: String,
    stream: stream::Stream,
}

impl Parking {
    pub(crate) async fn open(inner: Arc<Inner>, subscription: &str) -> Result<Self> {
        let stream = inner
            .js
            .get_stream(stream_name(&inner.config.stream))
            .await
            .map_err(transient)?;
        Ok(Self {
            inner,
            subscription: subscription.to_owned(),
            stream,
        })
    }

    /// The name of the subscription's release consumer on the parking stream.
    fn release_consumer(subscription: &str) -> String {
        format!("release-{}", durable_name(subscription))
    }

    /// Deletes the subscription's release consumer and purges its lanes and release
    /// signals (part of removing the subscription).
    pub(crate) async fn remove_all(&self) -> Result<()> {
        delete_consumer(&self.stream, &Self::release_consumer(&self.subscription)).await?;
        let stream = &self.inner.config.stream;
        let sub = durable_name(&self.subscription);
        for filter in [
            format!("_SAGA_PARKED.{stream}.{sub}.>"),
            release_subject(stream, &self.subscription),
        ] {
            self.stream
                .purge()
                .filter(filter)
                .await
                .map_err(transient)?;
        }
        Ok(())
    }

    fn lane(&self, key: &str) -> String {
        lane(&self.inner.config.stream, &self.subscription, key)
    }

    /// The first message of the key's lane, if any.
    async fn head(&self, key: &str) -> Result<Option<StreamMessage>> {
        match self
            .stream
            .get_first_raw_message_by_subject(self.lane(key), 0)
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(transient(e)),
        }
    }

    /// Replay of `letter` (already marked replayed): if its key's lane is empty (an unordered
    /// subscription, which parks nothing) the message is appended to it; then the release is
    /// signalled and a subscriber of the subscription drains the lane, replayed message first.
    pub(crate) async fn replay(&self, letter: &DeadLetter) -> Result<()> {
        if !self.is_parked(&letter.envelope.aggregate_id).await? {
            self.append(&letter.envelope).await?;
        }
        signal_release(
            &self.inner,
            &self.subscription,
            &letter.envelope.aggregate_id,
        )
        .await
    }

    /// Whether the key is parked (its lane holds messages).
    pub(crate) async fn is_parked(&self, key: &str) -> Result<bool> {
        Ok(self.head(key).await?.is_some())
    }

    /// Appends the envelope to its key's lane; returns its sequence there.
    pub(crate) async fn append(&self, envelope: &Envelope) -> Result<u64> {
        let mut headers = HeaderMap::new();
        headers.insert("Saga-Event-Id", envelope.event_id.to_string().as_str());
        let ack = self
            .inner
            .js
            .publish_with_headers(
                self.lane(&envelope.aggregate_id),
                headers,
                envelope.to_json()?.into(),
            )
            .await
            .map_err(transient)?
            .await
            .map_err(transient)?;
        Ok(ack.sequence)
    }

    /// Parks a later message of a parked key: appended to the lane; if it turns out to be the
    /// lane's head (the lane drained meanwhile), a release is signalled so it is not stranded.
    pub(crate) async fn park_behind(&self, envelope: &Envelope) -> Result<()> {
        let seq = self.append(envelope).await?;
        if let Some(head) = self.head(&envelope.aggregate_id).await?
            && head.sequence == seq
        {
            signal_release(&self.inner, &self.subscription, &envelope.aggregate_id).await?;
        }
        Ok(())
    }

    /// The latest dead letter of this subscription for `event_id` (the store lists oldest
    /// first).
    async fn latest_letter(&self, event_id: uuid::Uuid) -> Result<Option<DeadLetter>> {
        let filter = DeadLetterFilter {
            subscription: Some(self.subscription.clone()),
            ..DeadLetterFilter::default()
        };
        let letters = self.inner.dead_letters.list(&filter).await?;
        Ok(letters
            .into_iter()
            .rev()
            .find(|l| l.envelope.event_id == event_id))
    }

    /// Hands the key's lane out in order until it is empty (`true`) or parked again (`false`).
    async fn drain(
        self: &Arc<Self>,
        key: &str,
        tx: &mpsc::Sender<Result<Delivery>>,
    ) -> Result<bool> {
        loop {
            let Some(head) = self.head(key).await? else {
                return Ok(true);
            };
            let envelope = match Envelope::from_json(&head.payload) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "nats: undecodable parked message removed");
                    self.remove(head.sequence).await?;
                    continue;
                }
            };
            match self
                .latest_letter(envelope.event_id)
                .await?
                .map(|l| l.status)
            {
                Some(DeadLetterStatus::Pending) => return Ok(false),
                Some(DeadLetterStatus::Discarded) => {
                    self.remove(head.sequence).await?;
                    continue;
                }
                _ => {}
            }
            let (done_tx, done_rx) = oneshot::channel();
            let acker = LaneAcker {
                parking: self.clone(),
                envelope: envelope.clone(),
                attempt: 1,
                stream: tx.downgrade(),
                done: Some(done_tx),
            };
            let delivery = Delivery::new(envelope, 1, self.subscription.clone(), Box::new(acker));
            if tx.send(Ok(delivery)).await.is_err() {
                return Err(saga_core::Error::Closed("the subscriber is gone".into()));
            }
            match done_rx.await {
                Ok(Outcome::Acked) => self.remove(head.sequence).await?,
                Ok(Outcome::DeadLettered) => return Ok(false),
                Err(_) => {
                    return Err(saga_core::Error::Closed(
                        "a parked delivery was lost with its subscriber".into(),
                    ));
                }
            }
        }
    }

    /// Removes one lane message.
    pub(crate) async fn remove(&self, sequence: u64) -> Result<()> {
        self.stream
            .delete_message(sequence)
            .await
            .map(|_| ())
            .map_err(transient)
    }

    /// Pulls release signals (one at a time across the subscription's subscribers) and drains
    /// the signalled lanes, until the subscriber's stream is gone.
    pub(crate) async fn run_releases(self: Arc<Self>, tx: mpsc::Sender<Result<Delivery>>) {
        let name = Self::release_consumer(&self.subscription);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: release_subject(&self.inner.config.stream, &self.subscription),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: self.inner.config.ack_wait,
            max_ack_pending: 1,
            ..pull::Config::default()
        };
        let mut failures = 0u32;
        let consumer: PullConsumer = loop {
            match self
                .stream
                .get_or_create_consumer(&name, config.clone())
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "nats: release consumer unavailable, retrying");
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(self.inner.config.backoff(failures)) => {}
                    }
                    failures = failures.saturating_add(1);
                }
            }
        };
        loop {
            let batch = tokio::select! {
                _ = tx.closed() => return,
                b = consumer.batch().max_messages(1).expires(self.inner.config.pull_wait).messages() => b,
            };
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "nats: release pull failed, retrying");
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(self.inner.config.backoff(0)) => {}
                    }
                    continue;
                }
            };
            let next = tokio::select! {
                _ = tx.closed() => return,
                n = batch.next() => n,
            };
            let Some(Ok(signal)) = next else {
                continue;
            };
            let key = String::from_utf8_lossy(&signal.payload).into_owned();
            let step = (self.inner.config.ack_wait / 2).max(Duration::from_millis(10));
            let drained = {
                let drain = self.drain(&key, &tx);
                tokio::pin!(drain);
                loop {
                    tokio::select! {
                        r = &mut drain => break r,
                        _ = tokio::time::sleep(step) => {
                            let _ = signal.ack_with(AckKind::Progress).await;
                        }
                    }
                }
            };
            match drained {
                Ok(_) => {
                    if let Err(e) = signal.ack().await {
                        tracing::warn!(error = %e, "nats: ack of a release signal failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, key = %key, "nats: draining a parked key stopped");
                    let _ = signal.ack_with(AckKind::Nak(None)).await;
                    if tx.is_closed() {
                        return;
                    }
                }
            }
        }
    }
}

enum Outcome {
    Acked,
    DeadLettered,
}

/// Settles a delivery drained from a lane; the drain waits for its outcome.
struct LaneAcker {
    parking: Arc<Parking>,
    envelope: Envelope,
    attempt: u32,
    stream: mpsc::WeakSender<Result<Delivery>>,
    done: Option<oneshot::Sender<Outcome>>,
}

impl LaneAcker {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(done) = self.done.take() {
            let _ = done.send(outcome);
        }
    }

    /// Hands the same lane message out again after `delay` as the next attempt.
    fn again(&mut self, delay: Duration) {
        let Some(done) = self.done.take() else {
            return;
        };
        let Some(tx) = self.stream.upgrade() else {
            return;
        };
        let next = LaneAcker {
            parking: self.parking.clone(),
            envelope: self.envelope.clone(),
            attempt: self.attempt.saturating_add(1),
            stream: self.stream.clone(),
            done: Some(done),
        };
        let max = self.parking.inner.config.max_deliveries;
        tokio::spawn(async move {
            let attempt = next.attempt;
            let envelope = next.envelope.clone();
            let name = next.parking.subscription.clone();
            let next = Box::new(next);
            if attempt > max {
                let reason =
                    format!("delivered {attempt} times without being settled (limit {max})");
                let _ = next.dead_letter(reason, None).await;
                return;
            }
            tokio::time::sleep(delay).await;
            let _ = tx
                .send(Ok(Delivery::new(envelope, attempt, name, next)))
                .await;
        });
    }
}

#[async_trait]
impl Acker for LaneAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        self.finish(Outcome::Acked);
        Ok(())
    }

    async fn retry(mut self: Box<Self>, delay: Duration) -> Result<()> {
        self.again(delay);
        Ok(())
    }

    async fn dead_letter(
        mut self: Box<Self>,
        reason: String,
        last_error: Option<String>,
    ) -> Result<()> {
        let letter = DeadLetter::new(
            self.parking.subscription.clone(),
            self.envelope.clone(),
            reason,
            self.attempt,
            last_error,
            chrono::Utc::now(),
        );
        // The message stays the lane's head: the key parks behind this new letter.
        self.parking.inner.dead_letters.put(letter).await?;
        self.finish(Outcome::DeadLettered);
        Ok(())
    }
}

impl Drop for LaneAcker {
    fn drop(&mut self) {
        if self.done.is_some() && tokio::runtime::Handle::try_current().is_ok() {
            self.again(Duration::ZERO);
        }
    }
}
