//! Settling one JetStream delivery: ack, nak with delay (or retry in place when ordered),
//! dead-letter into the store and term.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use async_trait::async_trait;
use saga_core::broker::Acker;
use saga_core::{DeadLetter, Delivery, Envelope, Result};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::broker::{Inner, transient};
use super::parking::Parking;

/// Settles one delivery; dropping it unsettled naks it (delivered again at once).
pub(crate) struct NatsAcker {
    inner: Arc<Inner>,
    msg: Option<Message>,
    /// One of the subscriber's prefetch slots, freed when this is settled or dropped.
    permit: Option<OwnedSemaphorePermit>,
    attempt: u32,
    subscription: String,
    ordered: bool,
    /// The subscriber's stream, where a retry in place or a dropped delivery is handed out
    /// again.
    stream: mpsc::WeakSender<Result<Delivery>>,
    /// The parking of an ordered subscription.
    parking: Option<Arc<Parking>>,
}

impl NatsAcker {
    // One call site per kind of delivery; a parameter struct would only rename the fields.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        inner: Arc<Inner>,
        msg: Message,
        permit: Option<OwnedSemaphorePermit>,
        attempt: u32,
        subscription: String,
        ordered: bool,
        stream: mpsc::WeakSender<Result<Delivery>>,
        parking: Option<Arc<Parking>>,
    ) -> Self {
        Self {
            parking,
            inner,
            msg: Some(msg),
            permit,
            attempt,
            subscription,
            ordered,
            stream,
        }
    }

    fn take(&mut self) -> Result<Message> {
        self.msg
            .take()
            .ok_or_else(|| saga_core::Error::Closed("delivery already settled".into()))
    }
}

impl NatsAcker {
    /// Hands the unsettled message out again on the same stream after `delay`, as the next
    /// attempt, sending progress acks meanwhile; returns the message if the stream is gone.
    fn redeliver_locally(&mut self, msg: Message, delay: Duration) -> Option<Message> {
        let Some(tx) = self.stream.upgrade() else {
            return Some(msg);
        };
        let ack_wait = self.inner.config.ack_wait;
        let max = self.inner.config.max_deliveries;
        // Decoded again from the payload (it was decoded once when it came, so this holds):
        // keeping a copy beside every delivery would cost an envelope clone per message.
        let envelope = match decode(&msg) {
            Ok(e) => e,
            Err(_) => return Some(msg),
        };
        let again = NatsAcker::new(
            self.inner.clone(),
            msg,
            self.permit.take(),
            self.attempt.saturating_add(1),
            self.subscription.clone(),
            self.ordered,
            self.stream.clone(),
            self.parking.clone(),
        );
        tokio::spawn(async move {
            let attempt = again.attempt;
            let name = again.subscription.clone();
            let again = Box::new(again);
            if attempt > max {
                let reason =
                    format!("delivered {attempt} times without being settled (limit {max})");
                let _ = again.dead_letter(reason, None).await;
                return;
            }
            let step = (ack_wait / 2).max(Duration::from_millis(10));
            let mut left = delay;
            while left > step {
                tokio::time::sleep(step).await;
                left -= step;
                if let Some(m) = again.msg.as_ref() {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
            }
            tokio::time::sleep(left).await;
            // If the stream is gone by now, the delivery is dropped and so nakked.
            let _ = tx
                .send(Ok(Delivery::new(envelope, attempt, name, again)))
                .await;
        });
        None
    }
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        let msg = self.take()?;
        msg.ack()
            .await
            .map_err(|e| transient(std::io::Error::other(e.to_string())))
    }

    async fn retry(mut self: Box<Self>, delay: Duration) -> Result<()> {
        let msg = self.take()?;
        if self.ordered {
            // Ordered: keep the message (max_ack_pending = 1 holds the rest back), tell
            // JetStream we are still on it, and hand it out again after `delay`.
            if let Some(msg) = self.redeliver_locally(msg, delay) {
                return msg
                    .ack_with(AckKind::Nak(Some(delay)))
                    .await
                    .map_err(|e| transient(std::io::Error::other(e.to_string())));
            }
            return Ok(());
        }
        msg.ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| transient(std::io::Error::other(e.to_string())))
    }

    async fn dead_letter(
        mut self: Box<Self>,
        reason: String,
        last_error: Option<String>,
    ) -> Result<()> {
        let msg = self.take()?;
        let envelope = match decode(&msg) {
            Ok(e) => e,
            Err(e) => {
                self.msg = Some(msg);
                return Err(e);
            }
        };
        let key_envelope = self.parking.is_some().then(|| envelope.clone());
        let letter = DeadLetter::new(
            self.subscription.clone(),
            envelope,
            reason,
            self.attempt,
            last_error,
            chrono::Utc::now(),
        );
        let mut parked_at = None;
        if let (Some(parking), Some(envelope)) = (&self.parking, &key_envelope) {
            // Ordered: the message heads its key's lane first, so the key is parked before
            // the next message can come.
            match parking.append(envelope).await {
                Ok(seq) => parked_at = Some(seq),
                Err(e) => {
                    self.msg = Some(msg);
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.inner.dead_letters.put(letter).await {
            if let (Some(parking), Some(seq)) = (&self.parking, parked_at)
                && let Err(undo) = parking.remove(seq).await
            {
                // Left in the lane without a letter: the next release delivers it again.
                tracing::error!(error = %undo, "nats: could not lift the park of a dead letter that was not stored");
            }
            self.msg = Some(msg);
            return Err(e);
        }
        msg.ack_with(AckKind::Term)
            .await
            .map_err(|e| transient(std::io::Error::other(e.to_string())))
    }
}

/// The envelope a delivered message carries (it decoded once already when it came in).
fn decode(msg: &Message) -> Result<Envelope> {
    Envelope::from_json(&msg.payload)
}

impl Drop for NatsAcker {
    fn drop(&mut self) {
        let Some(msg) = self.msg.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Dropped unsettled: nak it so JetStream delivers it again now (to any subscriber).
        handle.spawn(async move {
            let _ = msg.ack_with(AckKind::Nak(None)).await;
        });
    }
}
