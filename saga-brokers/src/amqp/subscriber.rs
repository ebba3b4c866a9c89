//! The consume loop of one subscriber: attach to the queue, forward deliveries, re-attach after
//! a connection loss.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use saga_core::{DeadLetter, Delivery, DeliveryStream, Envelope, Result, Subscription};
use tokio::sync::{mpsc, oneshot};

use super::acker::{AmqpAcker, Origin};
use super::broker::Inner;
use super::connection::backend;
use super::gate::{self, Gate};
use super::{convert, topology};

/// Validates, declares the queue, starts the consume loop and returns its stream.
pub(crate) async fn subscribe(inner: Arc<Inner>, sub: &Subscription) -> Result<DeliveryStream> {
    topology::validate(inner.config(), sub)?;
    let sub = sub.clone();
    let (tx, rx) = mpsc::channel(usize::from(sub.prefetch.max(1)));
    let (ready_tx, ready_rx) = oneshot::channel();
    // Ordered: the single active consumer takes a window of messages and the gate hands out
    // one per key at a time, parking the keys of dead letters.
    let gate = sub
        .ordered
        .then(|| Arc::new(Gate::new(sub.name.clone(), tx.downgrade())));
    tokio::spawn(run(inner, sub, gate, tx, ready_tx));
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(saga_core::Error::Closed(
                "the AMQP consume task ended before it started".into(),
            ));
        }
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Box::pin(stream))
}

async fn attach(inner: &Inner, sub: &Subscription) -> Result<(Channel, Consumer, String)> {
    let ch = inner.connector.channel().await?;
    topology::declare_exchange(&ch, inner.config()).await?;
    let queue = topology::declare_work_queue(&ch, inner.config(), sub).await?;
    inner.remember(&queue);
    let qos = if sub.ordered {
        inner.config().ordered_window.max(1)
    } else {
        sub.prefetch.max(1)
    };
    ch.basic_qos(qos, BasicQosOptions::default())
        .await
        .map_err(backend)?;
    let consumer = ch
        .basic_consume(
            queue.clone().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(backend)?;
    Ok((ch, consumer, queue))
}

async fn run(
    inner: Arc<Inner>,
    sub: Subscription,
    gate: Option<Arc<Gate>>,
    tx: mpsc::Sender<Result<Delivery>>,
    ready: oneshot::Sender<Result<()>>,
) {
    let mut ready = Some(ready);
    let mut failures = 0u32;
    let name: Arc<str> = Arc::from(sub.name.as_str());
    loop {
        let attached = match attach(&inner, &sub).await {
            Ok(attached) => match &gate {
                Some(gate) => match gate.reset(inner.dead_letters.as_ref()).await {
                    Ok(generation) => Ok((attached, generation)),
                    Err(e) => {
                        let _ = attached.0.close(200, "re-attaching".into()).await;
                        Err(e)
                    }
                },
                None => Ok((attached, 0)),
            },
            Err(e) => Err(e),
        };
        let ((ch, mut consumer, queue), generation) = match attached {
            Ok(attached) => attached,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::warn!(error = %e, subscription = %sub.name, "amqp: cannot re-attach, retrying");
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(inner.config().backoff(failures)) => {}
                }
                failures = failures.saturating_add(1);
                continue;
            }
        };
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
        failures = 0;
        // What every delivery of this attachment shares, built once.
        let origin = Arc::new(Origin {
            inner: inner.clone(),
            subscription: Arc::clone(&name),
            queue,
            ordered: sub.ordered,
            stream: tx.downgrade(),
            gate: gate.clone(),
            generation,
        });
        loop {
            let next = tokio::select! {
                _ = tx.closed() => {
                    // The stream was dropped: closing the channel requeues what it held.
                    let _ = ch.close(200, "subscriber gone".into()).await;
                    return;
                }
                next = consumer.next() => next,
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, subscription = %sub.name, "amqp: consumer failed, re-attaching");
                    break;
                }
                None => {
                    tracing::warn!(subscription = %sub.name, "amqp: consumer ended, re-attaching");
                    break;
                }
            };
            if let Some(item) = handle(&inner, &sub, &origin, delivery).await
                && tx.send(Ok(item)).await.is_err()
            {
                let _ = ch.close(200, "subscriber gone".into()).await;
                return;
            }
        }
        let _ = ch.close(200, "re-attaching".into()).await;
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(inner.config().backoff(0)) => {}
        }
    }
}

/// Turns a lapin delivery into ours, or settles it here (undecodable, delivered too often, a
/// discard marker), or keeps it behind its key (ordered).
async fn handle(
    inner: &Arc<Inner>,
    sub: &Subscription,
    origin: &Arc<Origin>,
    d: lapin::message::Delivery,
) -> Option<Delivery> {
    if let Some((key, event_id)) = gate::as_discard_marker(&d.properties) {
        if let Some(gate) = &origin.gate {
            gate.discarded(&key, event_id);
        }
        if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
            tracing::warn!(error = %e, "amqp: ack of a discard marker failed");
        }
        return None;
    }
    let attempt = convert::attempt(&d.properties, d.redelivered);
    let envelope = match Envelope::from_json(&d.data) {
        Ok(envelope) => envelope,
        Err(e) => {
            let id = d
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            let placeholder = undecodable(&id, d.routing_key.as_str(), &d.data);
            let reason = format!("undecodable message: {e}");
            dead_letter_here(inner, sub, placeholder, reason, attempt, &d.acker).await;
            return None;
        }
    };
    if attempt > inner.config().max_deliveries {
        let reason = format!(
            "delivered {attempt} times without being settled (limit {})",
            inner.config().max_deliveries
        );
        if let Some(gate) = &origin.gate {
            gate.park_unadmitted(&envelope.aggregate_id, envelope.event_id);
        }
        dead_letter_here(inner, sub, envelope, reason, attempt, &d.acker).await;
        return None;
    }
    match &origin.gate {
        Some(gate) => gate.admit(origin.clone(), d.acker, envelope, attempt),
        None => Some(AmqpAcker::delivery(
            origin.clone(),
            d.acker,
            Arc::new(envelope),
            attempt,
        )),
    }
}

/// Stores a dead letter and acks; if the store fails, the message stays unacked and comes
/// back after the channel closes.
async fn dead_letter_here(
    inner: &Inner,
    sub: &Subscription,
    envelope: Envelope,
    reason: String,
    attempt: u32,
    acker: &lapin::Acker,
) {
    let letter = DeadLetter::new(
        sub.name.clone(),
        envelope,
        reason,
        attempt,
        None,
        chrono::Utc::now(),
    );
    match inner.dead_letters.put(letter).await {
        Ok(()) => {
            if let Err(e) = acker.ack(BasicAckOptions::default()).await {
                tracing::warn!(error = %e, "amqp: ack after dead letter failed");
            }
        }
        Err(e) => tracing::error!(error = %e, "amqp: storing a dead letter failed"),
    }
}

/// An envelope standing for bytes that were not one, so they can be dead-lettered and read.
pub(crate) fn undecodable(message_id: &str, routing_key: &str, data: &[u8]) -> Envelope {
    let mut e = Envelope::new(
        routing_key,
        message_id,
        serde_json::json!({ "raw": String::from_utf8_lossy(data) }),
    );
    if let Ok(id) = message_id.parse() {
        e = e.with_id(id);
    }
    e.with_header("saga-undecodable", "true")
}
