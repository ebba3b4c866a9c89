//! Quickstart: a three-step order saga on the in-memory implementations.
//!
//! Run with `cargo run -p examples --example quickstart`.
//!
//! Three participants (inventory, payment, shipping) subscribe to their commands on the
//! in-memory broker and reply; the orchestrator subscribes to the replies and drives the saga
//! with the pure transition function, keeping instances and logs in the in-memory saga store.
//! The payment participant declines any charge above 1,000.00, so the first order completes and
//! the second one is compensated: its inventory reservation is released. Both saga logs are
//! printed at the end.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use saga_core::memory::{MemoryBroker, MemoryDeadLetterStore, MemorySagaStore};
use saga_core::saga::{
    Orchestrator, SagaDefinition, SagaLogStore, SagaStatus, SagaStore, StepDefinition,
};
use saga_core::{
    Envelope, HandlerError, Publisher, RetryPolicy, Subscriber, Subscription, SystemClock,
};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The order saga: reserve stock, charge the card, ship; undo in reverse on failure.
fn order_saga() -> anyhow::Result<SagaDefinition> {
    Ok(SagaDefinition::new(
        "order",
        vec![
            StepDefinition::new(
                "reserve_inventory",
                "inventory.reserve.requested",
                "inventory.reserved",
                "inventory.reserve.failed",
            )
            .compensate_with("inventory.release.requested", Some("inventory.released"))
            .deadline(Duration::from_secs(30)),
            StepDefinition::new(
                "process_payment",
                "payment.requested",
                "payment.processed",
                "payment.failed",
            )
            .compensate_with("payment.refund.requested", Some("payment.refunded"))
            .deadline(Duration::from_secs(30)),
            StepDefinition::new(
                "schedule_shipping",
                "shipping.schedule.requested",
                "shipping.scheduled",
                "shipping.failed",
            )
            .deadline(Duration::from_secs(30)),
        ],
    )?)
}

/// A participant's decision: the reply to a command, or an error for the broker to retry.
type Decide = fn(&Envelope) -> Result<(&'static str, serde_json::Value), HandlerError>;

fn inventory(cmd: &Envelope) -> Result<(&'static str, serde_json::Value), HandlerError> {
    match cmd.event_type.as_str() {
        "inventory.reserve.requested" => Ok((
            "inventory.reserved",
            json!({"reservation": cmd.aggregate_id}),
        )),
        "inventory.release.requested" => Ok(("inventory.released", json!({}))),
        other => Err(HandlerError::permanent(format!(
            "inventory cannot handle {other}"
        ))),
    }
}

fn payment(cmd: &Envelope) -> Result<(&'static str, serde_json::Value), HandlerError> {
    let total = cmd.payload["total_cents"].as_i64().unwrap_or_default();
    match cmd.event_type.as_str() {
        "payment.requested" if total > 100_000 => Ok((
            "payment.failed",
            json!({"reason": format!("card limit exceeded: {:.2}", total as f64 / 100.0)}),
        )),
        "payment.requested" => Ok(("payment.processed", json!({"charged_cents": total}))),
        "payment.refund.requested" => Ok(("payment.refunded", json!({}))),
        other => Err(HandlerError::permanent(format!(
            "payment cannot handle {other}"
        ))),
    }
}

fn shipping(cmd: &Envelope) -> Result<(&'static str, serde_json::Value), HandlerError> {
    Ok((
        "shipping.scheduled",
        json!({"tracking": format!("TRK-{}", &cmd.aggregate_id)}),
    ))
}

/// Runs a participant: every command it gets is answered with a reply caused by it.
async fn participant(
    broker: MemoryBroker,
    name: &'static str,
    patterns: &[&str],
    decide: Decide,
) -> anyhow::Result<()> {
    let mut deliveries = broker
        .subscribe(&Subscription::new(name, patterns.iter().copied()))
        .await?;
    let policy = RetryPolicy::default();
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        let outcome = match decide(&delivery.envelope) {
            Ok((reply_type, payload)) => {
                let reply =
                    Envelope::new(reply_type, delivery.envelope.aggregate_id.clone(), payload)
                        .with_source(name)
                        .caused_by(&delivery.envelope);
                broker.publish(&[reply]).await.map_err(HandlerError::from)
            }
            Err(e) => Err(e),
        };
        delivery.settle(outcome, &policy).await?;
    }
    Ok(())
}

/// Runs the orchestrator: applies every reply and reports sagas that ended.
async fn orchestrator(
    broker: MemoryBroker,
    saga: Orchestrator,
    sagas: MemorySagaStore,
    ended: mpsc::Sender<Uuid>,
) -> anyhow::Result<()> {
    let def = saga.definition();
    let replies: Vec<String> = def
        .steps()
        .iter()
        .flat_map(|s| {
            [
                Some(s.on_success.clone()),
                Some(s.on_failure.clone()),
                s.compensation.as_ref().and_then(|c| c.reply.clone()),
            ]
        })
        .flatten()
        .collect();
    let mut deliveries = broker
        .subscribe(&Subscription::new("order-saga", replies))
        .await?;
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        let outcome = saga
            .handle_reply(&delivery.envelope)
            .await
            .map_err(HandlerError::from);
        let saga_id = delivery.envelope.correlation_id;
        delivery
            .settle(outcome.map(|_| ()), &RetryPolicy::default())
            .await?;
        if sagas.load(saga_id).await?.is_terminal() {
            ended.send(saga_id).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    let broker = MemoryBroker::new(
        Arc::new(MemoryDeadLetterStore::new(clock.clone())),
        clock.clone(),
    );
    let sagas = MemorySagaStore::new();
    let saga = Orchestrator::new(
        order_saga()?,
        Arc::new(sagas.clone()),
        Arc::new(sagas.clone()),
        Arc::new(broker.clone()),
        clock,
    );

    // Everyone subscribes before the first order, so no command is published to nobody.
    let (ended_tx, mut ended) = mpsc::channel(8);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(participant(
        broker.clone(),
        "inventory",
        &["inventory.*.requested"],
        inventory,
    ));
    tasks.spawn(participant(
        broker.clone(),
        "payment",
        &["payment.requested", "payment.refund.requested"],
        payment,
    ));
    tasks.spawn(participant(
        broker.clone(),
        "shipping",
        &["shipping.*.requested"],
        shipping,
    ));
    tasks.spawn(orchestrator(
        broker.clone(),
        saga.clone(),
        sagas.clone(),
        ended_tx,
    ));
    while broker.queued("order-saga").is_none()
        || broker.queued("inventory").is_none()
        || broker.queued("payment").is_none()
        || broker.queued("shipping").is_none()
    {
        tokio::task::yield_now().await;
    }

    let orders = [("order-A", 4_500), ("order-B", 250_000)];
    let mut ids = Vec::new();
    for (order, total_cents) in orders {
        let id = Uuid::now_v7();
        saga.start(
            id,
            order,
            json!({"order_id": order, "total_cents": total_cents}),
        )
        .await?;
        println!(
            "started saga {id} for {order} (total {:.2})",
            total_cents as f64 / 100.0
        );
        ids.push(id);
    }

    let mut done = 0;
    while done < ids.len() {
        tokio::time::timeout(Duration::from_secs(10), ended.recv())
            .await
            .context("the sagas did not end within 10 s")?
            .context("the orchestrator stopped")?;
        done += 1;
    }
    broker.close();

    println!(
        "\n{}",
        saga_core::saga::visualize::to_mermaid(saga.definition())
    );
    for id in ids {
        let instance = sagas.load(id).await?;
        println!(
            "saga {id} ({}): {}",
            instance.aggregate_id,
            instance.status.as_str()
        );
        if let Some(reason) = &instance.failure {
            println!("  failure: {reason}");
        }
        for entry in sagas.entries(id).await? {
            println!(
                "  {:<13} {:<18} {:<28} {}",
                entry.status.as_str(),
                entry.step,
                entry.event_type,
                entry.detail.unwrap_or_default()
            );
        }
        println!();
        if !matches!(
            instance.status,
            SagaStatus::Completed | SagaStatus::Compensated
        ) {
            bail!("saga {id} ended {:?}", instance.status);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}
