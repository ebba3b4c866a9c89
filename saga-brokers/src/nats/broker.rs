//! The broker handle: stream setup, pipelined publishing, subscribing.

use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use saga_core::broker::DeadLetterReplay;
use saga_core::dead_letter::ReplayOutcome;
use saga_core::{
    DeadLetterStore, DeliveryStream, Envelope, Error, Publisher, Result, Subscriber, Subscription,
};

use super::config::NatsConfig;
use super::{parking, subject, subscriber};

pub(crate) struct Inner {
    pub(crate) config: NatsConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) dead_letters: Arc<dyn DeadLetterStore>,
}

/// NATS JetStream as a [`Publisher`] and [`Subscriber`]; cheap to clone (one client).
///
/// See the [module documentation](super) for the mapping and its guarantees.
#[derive(Clone)]
pub struct NatsBroker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("stream", &self.inner.config.stream)
            .finish_non_exhaustive()
    }
}

pub(crate) fn transient(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::transient(e)
}

impl NatsBroker {
    /// Connects and creates the stream if it does not exist. Fails (transient) if NATS does
    /// not answer.
    pub async fn connect(
        config: NatsConfig,
        dead_letters: Arc<dyn DeadLetterStore>,
    ) -> Result<Self> {
        if config.stream.is_empty()
            || config
                .stream
                .contains(|c: char| c.is_whitespace() || ".*>/\\".contains(c))
        {
            return Err(Error::InvalidArgument(format!(
                "`{}` is not a valid JetStream stream name",
                config.stream
            )));
        }
        subject::subject("x", &config.subject_prefix)?;
        let client = async_nats::connect(config.url.as_str())
            .await
            .map_err(transient)?;
        let js = jetstream::new(client.clone());
        let stream_config = stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            storage: stream::StorageType::File,
            duplicate_window: config.duplicate_window,
            ..stream::Config::default()
        };
        // The JetStream API can time out while the server is busy: a few tries with backoff.
        for stream_config in [stream_config, parking::stream_config(&config.stream)] {
            let mut n = 0;
            loop {
                match js.get_or_create_stream(stream_config.clone()).await {
                    Ok(_) => break,
                    Err(e) if n >= 3 => return Err(transient(e)),
                    Err(e) => {
                        tracing::warn!(error = %e, attempt = n, "nats: creating the stream failed, retrying");
                        tokio::time::sleep(config.backoff(n)).await;
                        n += 1;
                    }
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                client,
                js,
                dead_letters,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &NatsConfig {
        &self.inner.config
    }

    /// The underlying client (e.g. to check its connection state).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The dead-letter store deliveries are dead-lettered into.
    pub fn dead_letters(&self) -> &Arc<dyn DeadLetterStore> {
        &self.inner.dead_letters
    }

    /// Deletes the stream, its parking stream and their consumers (tests, demos). Their
    /// messages are lost.
    pub async fn delete_stream(&self) -> Result<()> {
        self.inner
            .js
            .delete_stream(parking::stream_name(&self.inner.config.stream))
            .await
            .map_err(transient)?;
        self.inner
            .js
            .delete_stream(&self.inner.config.stream)
            .await
            .map(|_| ())
            .map_err(transient)
    }

    async fn try_publish(&self, messages: &[Outgoing]) -> Result<()> {
        let mut acks = Vec::with_capacity(messages.len());
        for m in messages {
            // Subject and body are shared (reference-counted) with a later attempt; the
            // headers are rebuilt.
            let ack = self
                .inner
                .js
                .publish_with_headers(m.subject.clone(), m.headers(), m.body.clone())
                .await
                .map_err(transient)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(transient)?;
        }
        Ok(())
    }
}

/// One message of a batch, ready to publish (again, after a connection failure).
struct Outgoing {
    subject: async_nats::Subject,
    /// Checked extra headers of the envelope, in order.
    extra: Vec<(String, String)>,
    message_id: String,
    body: bytes::Bytes,
}

impl Outgoing {
    fn of(prefix: &str, envelope: &Envelope) -> Result<Self> {
        let valid = |s: &str| !s.is_empty() && !s.contains(['\r', '\n']);
        Ok(Self {
            subject: subject::subject(prefix, &envelope.event_type)?.into(),
            extra: envelope
                .headers
                .iter()
                .filter(|(k, v)| valid(k) && !k.contains([':', ' ']) && k.is_ascii() && valid(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            message_id: envelope.event_id.to_string(),
            body: envelope.to_json()?.into(),
        })
    }

    /// The envelope's id as `Nats-Msg-Id` (JetStream's duplicate window and the consumer's
    /// inbox agree on it), then the envelope's own headers that NATS can carry.
    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", self.message_id.as_str());
        for (k, v) in &self.extra {
            h.insert(k.as_str(), v.as_str());
        }
        h
    }
}

#[async_trait]
impl Publisher for NatsBroker {
    async fn publish(&self, batch: &[Envelope]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let prefix = &self.inner.config.subject_prefix;
        let messages = batch
            .iter()
            .map(|e| Outgoing::of(prefix, e))
            .collect::<Result<Vec<_>>>()?;
        let deadline = tokio::time::Instant::now() + self.inner.config.reconnect_timeout;
        let mut n = 0;
        loop {
            match self.try_publish(&messages).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, attempt = n, "nats: publish failed, publishing the batch again");
                    tokio::time::sleep(self.inner.config.backoff(n)).await;
                    n += 1;
                }
            }
        }
    }
}

#[async_trait]
impl Subscriber for NatsBroker {
    async fn subscribe(&self, subscription: &Subscription) -> Result<DeliveryStream> {
        subscriber::subscribe(self.inner.clone(), subscription).await
    }

    /// Deletes the subscription's durable consumer (its pending and unacked messages stay in
    /// the stream for other subscriptions, as JetStream keeps them), its release consumer,
    /// and purges its parking lanes. A name subscribed again starts a new consumer that
    /// reads the stream from its start, like any new subscription here.
    async fn remove_subscription(&self, name: &str) -> Result<()> {
        let stream = self
            .inner
            .js
            .get_stream(&self.inner.config.stream)
            .await
            .map_err(transient)?;
        parking::delete_consumer(&stream, &subject::durable_name(name)).await?;
        parking::Parking::open(self.inner.clone(), name)
            .await?
            .remove_all()
            .await
    }
}

#[async_trait]
impl DeadLetterReplay for NatsBroker {
    /// Marks the letter replayed and signals its subscription's release subject: a subscriber
    /// of that subscription (only) hands the message out again from its key's parking lane
    /// (where an ordered subscription parked it; an unordered one's is appended there first),
    /// then the key's parked messages, in order. A republish to the main stream would reach
    /// every subscription of the subject, so there is none.
    async fn replay_dead_letter(&self, id: uuid::Uuid) -> Result<bool> {
        match self.inner.dead_letters.replay(id).await? {
            ReplayOutcome::Replayed(letter) => {
                parking::Parking::open(self.inner.clone(), &letter.subscription)
                    .await?
                    .replay(&letter)
                    .await?;
                Ok(true)
            }
            ReplayOutcome::AlreadyDone(_) => Ok(false),
        }
    }

    /// Marks the letter discarded and signals its subscription's release subject, so the
    /// key's parked messages flow (the poison is removed from the lane unseen).
    async fn discard_dead_letter(&self, id: uuid::Uuid) -> Result<bool> {
        let letter = self.inner.dead_letters.get(id).await?;
        if !self.inner.dead_letters.discard(id).await? {
            return Ok(false);
        }
        parking::signal_release(
            &self.inner,
            &letter.subscription,
            &letter.envelope.aggregate_id,
        )
        .await?;
        Ok(true)
    }
}
