//! The broker handle: publishing with confirms, subscribing, replaying dead letters.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Channel};
use saga_core::broker::DeadLetterReplay;
use saga_core::dead_letter::ReplayOutcome;
use saga_core::{
    DeadLetterStore, DeliveryStream, Envelope, Error, Publisher, Result, Subscriber, Subscription,
};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::config::AmqpConfig;
use super::connection::{Connector, backend};
use super::{convert, gate, subscriber, topology};

/// A message ready to go out.
pub(crate) struct Outgoing {
    /// Exchange (`""` for the default exchange, i.e. straight into a queue).
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) body: Vec<u8>,
    pub(crate) properties: BasicProperties,
}

pub(crate) struct Inner {
    pub(crate) connector: Connector,
    pub(crate) dead_letters: Arc<dyn DeadLetterStore>,
    publish_channel: Mutex<Option<Channel>>,
    /// Queues this handle declared (work and retry), for `delete_topology`.
    pub(crate) declared: StdMutex<BTreeSet<String>>,
}

/// RabbitMQ as a [`Publisher`] and [`Subscriber`]; cheap to clone (one shared connection).
///
/// See the [module documentation](super) for the mapping and its guarantees.
#[derive(Clone)]
pub struct AmqpBroker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("exchange", &self.inner.connector.config().exchange)
            .finish_non_exhaustive()
    }
}

impl AmqpBroker {
    /// Connects, declares the exchange and checks the connection works. Fails (transient) if
    /// RabbitMQ does not answer.
    pub async fn connect(
        config: AmqpConfig,
        dead_letters: Arc<dyn DeadLetterStore>,
    ) -> Result<Self> {
        if config.exchange.is_empty() || config.exchange.len() > 200 {
            return Err(Error::InvalidArgument(format!(
                "exchange name `{}` must have 1 to 200 bytes",
                config.exchange
            )));
        }
        let broker = Self {
            inner: Arc::new(Inner {
                connector: Connector::new(config),
                dead_letters,
                publish_channel: Mutex::new(None),
                declared: StdMutex::new(BTreeSet::new()),
            }),
        };
        let ch = broker.inner.connector.channel().await?;
        topology::declare_exchange(&ch, broker.config()).await?;
        let _ = ch.close(200, "declared".into()).await;
        Ok(broker)
    }

    /// The settings.
    pub fn config(&self) -> &AmqpConfig {
        self.inner.connector.config()
    }

    /// The dead-letter store deliveries are dead-lettered into.
    pub fn dead_letters(&self) -> &Arc<dyn DeadLetterStore> {
        &self.inner.dead_letters
    }

    /// Deletes every queue this handle declared and the exchange (tests, demos). Messages in
    /// them are lost.
    pub async fn delete_topology(&self) -> Result<()> {
        let ch = self.inner.connector.channel().await?;
        let queues: Vec<String> = {
            let set = self
                .inner
                .declared
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            set.iter().cloned().collect()
        };
        for q in queues {
            ch.queue_delete(q.into(), QueueDeleteOptions::default())
                .await
                .map_err(backend)?;
        }
        ch.exchange_delete(
            self.config().exchange.clone().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .map_err(backend)?;
        let _ = ch.close(200, "deleted".into()).await;
        Ok(())
    }

    /// Closes the connection; later calls open a new one.
    pub async fn close(&self) {
        *self.inner.publish_channel.lock().await = None;
        self.inner.connector.close().await;
    }
}

impl Inner {
    pub(crate) fn config(&self) -> &AmqpConfig {
        self.connector.config()
    }

    pub(crate) fn remember(&self, queue: &str) {
        self.declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(queue.to_owned());
    }

    /// Publishes all messages with confirms, reconnecting and publishing all of them again
    /// (with backoff) until `reconnect_timeout` passes.
    pub(crate) async fn publish_confirmed(&self, messages: &[Outgoing]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.config().reconnect_timeout;
        let mut n = 0;
        loop {
            match self.try_publish(messages).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, attempt = n, "amqp: publish failed, publishing the batch again");
                    *self.publish_channel.lock().await = None;
                    tokio::time::sleep(self.config().backoff(n)).await;
                    n += 1;
                }
            }
        }
    }

    async fn try_publish(&self, messages: &[Outgoing]) -> Result<()> {
        let mut slot = self.publish_channel.lock().await;
        let ch = match slot.as_ref() {
            Some(ch) if ch.status().connected() => ch.clone(),
            _ => {
                let ch = self.connector.channel().await?;
                ch.confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(backend)?;
                topology::declare_exchange(&ch, self.config()).await?;
                *slot = Some(ch.clone());
                ch
            }
        };
        let mut confirms = Vec::with_capacity(messages.len());
        for m in messages {
            let confirm = ch
                .basic_publish(
                    m.exchange.clone().into(),
                    m.routing_key.clone().into(),
                    BasicPublishOptions::default(),
                    &m.body,
                    m.properties.clone(),
                )
                .await
                .map_err(backend)?;
            confirms.push(confirm);
        }
        // Held across the waits: a batch's confirms are awaited before the next batch starts,
        // so the channel's order is the batches' order.
        for confirm in confirms {
            let confirmation = confirm.await.map_err(backend)?;
            if confirmation.is_nack() {
                return Err(Error::transient(std::io::Error::other(
                    "RabbitMQ refused (nacked) a message",
                )));
            }
        }
        drop(slot);
        Ok(())
    }

    /// Declares the retry queue for `bucket` once per handle.
    pub(crate) async fn retry_queue(&self, work_queue: &str, bucket: u64) -> Result<String> {
        let name = topology::retry_queue(work_queue, bucket);
        let known = self
            .declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&name);
        if !known {
            let ch = self.connector.channel_with_retry().await?;
            topology::declare_retry_queue(&ch, self.config(), work_queue, bucket).await?;
            let _ = ch.close(200, "declared".into()).await;
            self.remember(&name);
        }
        Ok(name)
    }
}

#[async_trait]
impl Publisher for AmqpBroker {
    async fn publish(&self, batch: &[Envelope]) -> Result<()> {
        let exchange = &self.config().exchange;
        let messages = batch
            .iter()
            .map(|e| {
                Ok(Outgoing {
                    exchange: exchange.clone(),
                    routing_key: e.event_type.clone(),
                    body: e.to_json()?,
                    properties: convert::properties(e, None),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.inner.publish_confirmed(&messages).await
    }
}

#[async_trait]
impl Subscriber for AmqpBroker {
    async fn subscribe(&self, subscription: &Subscription) -> Result<DeliveryStream> {
        subscriber::subscribe(self.inner.clone(), subscription).await
    }

    /// Deletes the subscription's work queue (with its bindings and messages) and the retry
    /// queue of every delay bucket (RabbitMQ deletes a missing queue without complaint);
    /// messages waiting out a retry delay go with them.
    async fn remove_subscription(&self, name: &str) -> Result<()> {
        let work = topology::work_queue(self.config(), name);
        let queues: Vec<String> = std::iter::once(work.clone())
            .chain(topology::retry_buckets().map(|b| topology::retry_queue(&work, b)))
            .collect();
        let ch = self.inner.connector.channel_with_retry().await?;
        for q in &queues {
            ch.queue_delete(q.clone().into(), QueueDeleteOptions::default())
                .await
                .map_err(backend)?;
        }
        let _ = ch.close(200, "removed".into()).await;
        let mut declared = self
            .inner
            .declared
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for q in &queues {
            declared.remove(q);
        }
        Ok(())
    }
}

#[async_trait]
impl DeadLetterReplay for AmqpBroker {
    /// Publishes the message straight into its subscription's queue (no other subscription
    /// sees it) as attempt 1.
    async fn replay_dead_letter(&self, id: Uuid) -> Result<bool> {
        match self.inner.dead_letters.replay(id).await? {
            ReplayOutcome::Replayed(letter) => {
                let queue = topology::work_queue(self.config(), &letter.subscription);
                let message = Outgoing {
                    exchange: String::new(),
                    routing_key: queue,
                    body: letter.envelope.to_json()?,
                    properties: convert::properties(&letter.envelope, None),
                };
                self.inner
                    .publish_confirmed(std::slice::from_ref(&message))
                    .await?;
                Ok(true)
            }
            ReplayOutcome::AlreadyDone(_) => Ok(false),
        }
    }

    /// Marks the letter discarded, then sends a marker through its subscription's queue that
    /// unparks its key in the (ordered) consumer; unordered consumers drop the marker.
    async fn discard_dead_letter(&self, id: Uuid) -> Result<bool> {
        let letter = self.inner.dead_letters.get(id).await?;
        if !self.inner.dead_letters.discard(id).await? {
            return Ok(false);
        }
        let marker = Outgoing {
            exchange: String::new(),
            routing_key: topology::work_queue(self.config(), &letter.subscription),
            body: Vec::new(),
            properties: gate::discard_marker(
                &letter.envelope.aggregate_id,
                letter.envelope.event_id,
            ),
        };
        self.inner
            .publish_confirmed(std::slice::from_ref(&marker))
            .await?;
        Ok(true)
    }
}
