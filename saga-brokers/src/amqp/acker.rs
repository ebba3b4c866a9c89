//! Settling one AMQP delivery: ack, retry through a delay queue (or in place when ordered),
//! dead-letter into the store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use saga_core::broker::Acker;
use saga_core::{DeadLetter, Delivery, Envelope, Result};
use tokio::sync::mpsc;

use super::broker::{Inner, Outgoing};
use super::connection::backend;
use super::{convert, topology};

/// Settles one delivery; dropping it unsettled nacks it with requeue.
pub(crate) struct AmqpAcker {
    inner: Arc<Inner>,
    acker: Option<lapin::Acker>,
    envelope: Envelope,
    attempt: u32,
    subscription: String,
    queue: String,
    /// Set on ordered subscriptions: where an in-place retry is delivered again.
    redeliver: Option<mpsc::Sender<Result<Delivery>>>,
    /// The stream this delivery came through; once it is gone, its channel closes and
    /// RabbitMQ requeues what it held, so a drop needs no nack of its own.
    stream: mpsc::WeakSender<Result<Delivery>>,
}

impl AmqpAcker {
    pub(crate) fn new(
        inner: Arc<Inner>,
        acker: lapin::Acker,
        envelope: Envelope,
        attempt: u32,
        subscription: String,
        queue: String,
        redeliver: Option<mpsc::Sender<Result<Delivery>>>,
        stream: mpsc::WeakSender<Result<Delivery>>,
    ) -> Self {
        Self {
            inner,
            acker: Some(acker),
            envelope,
            attempt,
            subscription,
            queue,
            redeliver,
            stream,
        }
    }

    fn take(&mut self) -> Result<lapin::Acker> {
        self.acker
            .take()
            .ok_or_else(|| saga_core::Error::Closed("delivery already settled".into()))
    }
}

fn requeue() -> BasicNackOptions {
    BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        let acker = self.take()?;
        acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn retry(mut self: Box<Self>, delay: Duration) -> Result<()> {
        let acker = self.take()?;
        if let Some(tx) = self.redeliver.clone() {
            // Ordered: keep the message unacked (prefetch 1 holds the rest of the queue behind
            // it) and hand it out again after `delay`, ahead of everything else.
            let again = AmqpAcker::new(
                self.inner.clone(),
                acker,
                self.envelope.clone(),
                self.attempt.saturating_add(1),
                self.subscription.clone(),
                self.queue.clone(),
                Some(tx.clone()),
                self.stream.clone(),
            );
            let delivery = Delivery::new(
                self.envelope.clone(),
                again.attempt,
                self.subscription.clone(),
                Box::new(again),
            );
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                // If the stream is gone, the delivery is dropped and so nacked with requeue.
                let _ = tx.send(Ok(delivery)).await;
            });
            return Ok(());
        }
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let bucket = topology::bucket_ms(delay_ms);
        let retry_queue = self.inner.retry_queue(&self.queue, bucket).await?;
        let properties = convert::properties(&self.envelope, Some(self.attempt.saturating_add(1)))
            .with_expiration(delay_ms.max(1).to_string().into());
        let copy = Outgoing {
            exchange: String::new(),
            routing_key: retry_queue,
            body: self.envelope.to_json()?,
            properties,
        };
        // The copy is confirmed before the original is acked: a crash in between duplicates,
        // never loses.
        self.inner
            .publish_confirmed(std::slice::from_ref(&copy))
            .await?;
        acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn dead_letter(
        mut self: Box<Self>,
        reason: String,
        last_error: Option<String>,
    ) -> Result<()> {
        let acker = self.take()?;
        let letter = DeadLetter::new(
            self.subscription.clone(),
            self.envelope.clone(),
            reason,
            self.attempt,
            last_error,
            chrono::Utc::now(),
        );
        if let Err(e) = self.inner.dead_letters.put(letter).await {
            // Not stored: hand the message back rather than lose it.
            self.acker = Some(acker);
            return Err(e);
        }
        acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(backend)
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        // Dropped unsettled: the consumer gave up on it; deliver it again. If the whole stream
        // is being dropped too (checked after a yield, so a drop of the stream right after
        // the delivery counts), the channel's close requeues it: a nack as well would count
        // a second delivery.
        let stream = self.stream.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                tokio::task::yield_now().await;
                let open = stream.upgrade().is_some_and(|tx| !tx.is_closed());
                if open {
                    let _ = acker.nack(requeue()).await;
                }
            });
        }
    }
}
