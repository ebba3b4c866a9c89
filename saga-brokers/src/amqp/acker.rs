//! Settling one AMQP delivery: ack, retry through a delay queue (or in place when ordered),
//! dead-letter into the store; a dropped delivery is handed out again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::BasicAckOptions;
use saga_core::broker::Acker;
use saga_core::{DeadLetter, Delivery, Envelope, Result};
use tokio::sync::mpsc;

use super::broker::{Inner, Outgoing};
use super::connection::backend;
use super::gate::Gate;
use super::{convert, topology};

/// What every delivery of one subscriber shares.
pub(crate) struct Origin {
    pub(crate) inner: Arc<Inner>,
    pub(crate) subscription: Arc<str>,
    pub(crate) queue: String,
    pub(crate) ordered: bool,
    /// The subscriber's stream. Once it is gone its channel closes and RabbitMQ requeues
    /// whatever the channel held.
    pub(crate) stream: mpsc::WeakSender<Result<Delivery>>,
    /// The per-key gate of an ordered subscriber.
    pub(crate) gate: Option<Arc<Gate>>,
    /// The gate generation (channel) the delivery came through.
    pub(crate) generation: u64,
}

/// Settles one delivery.
pub(crate) struct AmqpAcker {
    origin: Arc<Origin>,
    acker: Option<lapin::Acker>,
    /// Shared with the [`Delivery`]: a retry or dead letter needs it, an ack does not.
    envelope: Arc<Envelope>,
    attempt: u32,
}

impl AmqpAcker {
    pub(crate) fn delivery(
        origin: Arc<Origin>,
        acker: lapin::Acker,
        envelope: Arc<Envelope>,
        attempt: u32,
    ) -> Delivery {
        let name = origin.subscription.clone();
        let me = Self {
            origin,
            acker: Some(acker),
            envelope: envelope.clone(),
            attempt,
        };
        Delivery::new(envelope, attempt, name, Box::new(me))
    }

    fn take(&mut self) -> Result<lapin::Acker> {
        self.acker
            .take()
            .ok_or_else(|| saga_core::Error::Closed("delivery already settled".into()))
    }

    /// Hands the still-unacked message out again on the same stream (after `delay`), as the
    /// next attempt; if the stream is gone by then it is dropped, and the closing channel
    /// requeues it.
    fn redeliver_locally(&self, acker: lapin::Acker, delay: Duration) {
        let Some(tx) = self.origin.stream.upgrade() else {
            return;
        };
        let again = Self::delivery(
            self.origin.clone(),
            acker,
            self.envelope.clone(),
            self.attempt.saturating_add(1),
        );
        let max = self.origin.inner.config().max_deliveries;
        tokio::spawn(async move {
            if again.attempt > max {
                let reason = format!(
                    "delivered {} times without being settled (limit {max})",
                    again.attempt
                );
                let _ = again.dead_letter(reason, None).await;
                return;
            }
            tokio::time::sleep(delay).await;
            let _ = tx.send(Ok(again)).await;
        });
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        let acker = self.take()?;
        acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(backend)?;
        if let Some(gate) = &self.origin.gate {
            gate.acked(self.origin.generation, &self.envelope.aggregate_id);
        }
        Ok(())
    }

    async fn retry(mut self: Box<Self>, delay: Duration) -> Result<()> {
        let acker = self.take()?;
        if self.origin.ordered {
            // Ordered: keep the message unacked (prefetch 1 holds the rest of the queue behind
            // it) and hand it out again after `delay`, ahead of everything else.
            self.redeliver_locally(acker, delay);
            return Ok(());
        }
        let inner = &self.origin.inner;
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let bucket = topology::bucket_ms(delay_ms);
        let retry_queue = inner.retry_queue(&self.origin.queue, bucket).await?;
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
        inner.publish_confirmed(std::slice::from_ref(&copy)).await?;
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
            self.origin.subscription.to_string(),
            Envelope::clone(&self.envelope),
            reason,
            self.attempt,
            last_error,
            chrono::Utc::now(),
        );
        let gate = self.origin.gate.clone();
        let (generation, key) = (self.origin.generation, self.envelope.aggregate_id.clone());
        if let Some(gate) = &gate {
            // Parked before the letter exists, so its replayed copy cannot overtake the park.
            gate.parked(generation, &key, self.envelope.event_id);
        }
        if let Err(e) = self.origin.inner.dead_letters.put(letter).await {
            // Not stored: hand the message back rather than lose it.
            if let Some(gate) = &gate {
                gate.unpark(generation, &key);
            }
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
        // Dropped unsettled: the handler gave up on it. While the stream lives, hand it out
        // again right away (a broker requeue could also land it in this stream's buffer and
        // count a delivery no handler saw); once the stream is gone its channel's close
        // requeues it.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.redeliver_locally(acker, Duration::ZERO);
        }
    }
}
