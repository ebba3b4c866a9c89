//! The transport traits: publish batches, subscribe with competing consumers, settle deliveries.
//!
//! A [`Delivery`] is settled exactly one way: [`Delivery::ack`], [`Delivery::retry`] after a
//! delay, or [`Delivery::dead_letter`]. A delivery dropped unsettled (the consumer died) is
//! delivered again.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::Result;
use crate::handler::HandlerError;
use crate::retry::{RetryDecision, RetryPolicy};

/// What a subscriber asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscription (consumer group) name; subscribers with the same name compete for
    /// messages, each message going to one of them.
    pub name: String,
    /// AMQP-style topic patterns over `event_type` (`order.*`, `payment.#`).
    pub patterns: Vec<String>,
    /// Per-key order: at most one message of an `aggregate_id` in flight, and a dead-lettered
    /// message parks the later messages of its key until it is replayed or discarded.
    pub ordered: bool,
    /// How many unsettled deliveries one subscriber may hold.
    pub prefetch: u16,
}

impl Subscription {
    /// An unordered subscription with prefetch 32.
    pub fn new(
        name: impl Into<String>,
        patterns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            patterns: patterns.into_iter().map(Into::into).collect(),
            ordered: false,
            prefetch: 32,
        }
    }

    /// Turns per-key ordering on.
    #[must_use]
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// Sets the prefetch (at least 1).
    #[must_use]
    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }
}

/// Sends messages to the broker.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes the batch in order and returns once the broker has confirmed every message
    /// (durably, where the adapter is durable). On error, any prefix may have been published;
    /// the caller publishes the whole batch again and consumers' inboxes absorb the repeats.
    async fn publish(&self, batch: &[Envelope]) -> Result<()>;
}

/// Hands dead letters back to the broker that produced them.
///
/// A broker that parks poison keys must unpark them on replay or discard, which a
/// [`DeadLetterStore`](crate::dead_letter::DeadLetterStore) alone cannot do; brokers that support it implement this trait.
#[async_trait]
pub trait DeadLetterReplay: Send + Sync {
    /// Marks the dead letter replayed and delivers its message again to its subscription only
    /// (at the head of its key, if ordered), unparking the key. Returns `false` if it was
    /// replayed or discarded before (nothing is delivered then).
    async fn replay_dead_letter(&self, id: Uuid) -> Result<bool>;

    /// Marks the dead letter discarded and unparks its key, so the later messages of the key
    /// flow in order. Returns `false` if it was not pending.
    async fn discard_dead_letter(&self, id: Uuid) -> Result<bool>;
}

/// A stream of deliveries for one subscriber.
pub type DeliveryStream = Pin<Box<dyn Stream<Item = Result<Delivery>> + Send>>;

/// Receives messages from the broker.
#[async_trait]
pub trait Subscriber: Send + Sync {
    /// Joins the subscription, creating it if needed, and streams its deliveries.
    async fn subscribe(&self, subscription: &Subscription) -> Result<DeliveryStream>;

    /// Deletes a subscription the application no longer uses (one it renamed, say): the
    /// broker stops collecting messages for the name and drops those it holds, parked and
    /// delayed ones included. Its dead letters stay in the dead-letter store. Removing a name
    /// that does not exist is not an error, so a service can retire an old name on every
    /// start. Stop the name's subscribers first: what they hold in flight is lost with it.
    /// The name can then be subscribed again, with other patterns or ordering if need be.
    async fn remove_subscription(&self, name: &str) -> Result<()>;
}

/// How an adapter settles one delivery; implemented by each broker adapter.
#[async_trait]
pub trait Acker: Send + Sync {
    /// Done: never deliver it again.
    async fn ack(self: Box<Self>) -> Result<()>;
    /// Acks at once, without I/O, if this adapter can (the in-memory broker): `Some` with
    /// the outcome, after which the acker is dropped; `None` (the default) and
    /// [`ack`](Self::ack) runs. Saves the boxed future of an async trait method per message.
    fn ack_now(&mut self) -> Option<Result<()>> {
        None
    }
    /// Deliver it again, not before `delay` has passed.
    async fn retry(self: Box<Self>, delay: Duration) -> Result<()>;
    /// Give up: store a dead letter with this reason and last error.
    async fn dead_letter(self: Box<Self>, reason: String, last_error: Option<String>)
    -> Result<()>;
}

/// One message handed to one subscriber.
pub struct Delivery {
    /// The message, shared with the broker that may have to deliver it again (the in-memory
    /// broker hands out its own copy instead of cloning it for each delivery). Read it through
    /// the `Arc`; [`Arc::unwrap_or_clone`] gives an owned [`Envelope`].
    pub envelope: Arc<Envelope>,
    /// Which delivery of this message this is, starting at 1.
    pub attempt: u32,
    /// The subscription it came through (shared with the adapter, not copied per delivery).
    pub subscription: Arc<str>,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("envelope", &self.envelope)
            .field("attempt", &self.attempt)
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

/// How a delivery was settled by [`Delivery::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Acked.
    Acked,
    /// Scheduled for another attempt after this delay.
    Retried(Duration),
    /// Dead-lettered with this reason.
    DeadLettered(String),
}

impl Delivery {
    /// Builds a delivery from an [`Envelope`] or an `Arc<Envelope>`; for adapters.
    pub fn new(
        envelope: impl Into<Arc<Envelope>>,
        attempt: u32,
        subscription: impl Into<Arc<str>>,
        acker: Box<dyn Acker>,
    ) -> Self {
        Self {
            envelope: envelope.into(),
            attempt,
            subscription: subscription.into(),
            acker,
        }
    }

    /// Acknowledges the message.
    pub async fn ack(mut self) -> Result<()> {
        if let Some(done) = self.acker.ack_now() {
            return done;
        }
        self.acker.ack().await
    }

    /// Asks for redelivery after `delay`.
    pub async fn retry(self, delay: Duration) -> Result<()> {
        self.acker.retry(delay).await
    }

    /// Dead-letters the message.
    pub async fn dead_letter(
        self,
        reason: impl Into<String>,
        last_error: Option<String>,
    ) -> Result<()> {
        self.acker.dead_letter(reason.into(), last_error).await
    }

    /// Settles by a handler's result: ack on success, otherwise retry or dead-letter as the
    /// policy decides for this attempt.
    pub async fn settle(
        self,
        outcome: std::result::Result<(), HandlerError>,
        policy: &RetryPolicy,
    ) -> Result<Settled> {
        match outcome {
            Ok(()) => {
                self.ack().await?;
                Ok(Settled::Acked)
            }
            Err(err) => match policy.decide(self.attempt, &err) {
                RetryDecision::Retry { delay } => {
                    self.retry(delay).await?;
                    Ok(Settled::Retried(delay))
                }
                RetryDecision::DeadLetter { reason } => {
                    self.dead_letter(reason.clone(), Some(err.to_string()))
                        .await?;
                    Ok(Settled::DeadLettered(reason))
                }
            },
        }
    }
}
