//! The in-memory broker: the broker conformance suite, plus what only it can show exactly
//! (paused time, closing, queue sizes).
#![cfg(feature = "testkit")]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use saga_core::broker::DeadLetterReplay;
use saga_core::broker::DeliveryStream;
use saga_core::dead_letter::DeadLetterStore;
use saga_core::memory::MemoryBroker;
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::testkit::broker::{BrokerFeatures, TestBroker};
use saga_core::{
    Clock, Delivery, Envelope, Error, ManualClock, Publisher, Subscriber, Subscription, SystemClock,
};

fn memory_broker() -> MemoryBroker {
    MemoryBroker::new(
        Arc::new(MemoryDeadLetterStore::default()),
        Arc::new(SystemClock),
    )
}

async fn test_broker() -> TestBroker {
    let broker = memory_broker();
    TestBroker {
        publisher: Arc::new(broker.clone()),
        subscriber: Arc::new(broker.clone()),
        dead_letters: broker.dead_letters().clone(),
        replay: Some(Arc::new(broker) as Arc<dyn DeadLetterReplay>),
        features: BrokerFeatures::full(),
    }
}

saga_core::broker_conformance_tests!(test_broker);

fn msg(event_type: &str, key: &str, seq: u64) -> Envelope {
    Envelope::new(event_type, key, serde_json::json!({ "seq": seq }))
}

async fn subscribe(broker: &MemoryBroker, sub: &Subscription) -> DeliveryStream {
    match broker.subscribe(sub).await {
        Ok(s) => s,
        Err(e) => panic!("subscribe: {e}"),
    }
}

async fn next(stream: &mut DeliveryStream) -> Delivery {
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("stream failed: {e}"),
        Ok(None) => panic!("stream ended"),
        Err(_) => panic!("nothing arrived"),
    }
}

/// Polls the stream once without waiting (paused time does not move during it).
async fn poll_now(stream: &mut DeliveryStream) -> Option<Delivery> {
    futures_util::FutureExt::now_or_never(stream.next())
        .flatten()
        .and_then(Result::ok)
}

#[tokio::test(start_paused = true)]
async fn retry_delay_is_exact_under_paused_time() {
    let broker = memory_broker();
    let mut stream = subscribe(&broker, &Subscription::new("s", ["order.*"])).await;
    broker.publish(&[msg("order.placed", "o", 0)]).await.ok();
    let d = next(&mut stream).await;
    let start = tokio::time::Instant::now();
    d.retry(Duration::from_secs(30)).await.ok();

    tokio::time::advance(Duration::from_millis(29_999)).await;
    assert!(poll_now(&mut stream).await.is_none(), "delivered early");
    tokio::time::advance(Duration::from_millis(1)).await;
    let again = next(&mut stream).await;
    assert_eq!(again.attempt, 2);
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_consumer_wakes_when_the_delay_falls_due() {
    let broker = memory_broker();
    let mut stream = subscribe(&broker, &Subscription::new("s", ["order.*"])).await;
    broker.publish(&[msg("order.placed", "o", 0)]).await.ok();
    let d = next(&mut stream).await;
    let start = tokio::time::Instant::now();
    d.retry(Duration::from_secs(5)).await.ok();
    // With paused time the runtime auto-advances to the consumer's timer: no sleeping here.
    let again = next(&mut stream).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(again.attempt, 2);
}

#[tokio::test]
async fn dropped_delivery_is_redelivered_on_the_same_stream() {
    let broker = memory_broker();
    let mut stream = subscribe(&broker, &Subscription::new("s", ["order.*"])).await;
    let sent = msg("order.placed", "o", 0);
    broker.publish(std::slice::from_ref(&sent)).await.ok();
    drop(next(&mut stream).await);
    let again = next(&mut stream).await;
    assert_eq!((again.envelope.event_id, again.attempt), (sent.event_id, 2));
}

#[tokio::test]
async fn close_ends_streams_and_refuses_new_work() {
    let broker = memory_broker();
    let mut stream = subscribe(&broker, &Subscription::new("s", ["#"])).await;
    let waiter = tokio::spawn(async move { stream.next().await.is_none() });
    tokio::task::yield_now().await;
    broker.close();
    assert!(broker.is_closed());
    assert!(matches!(waiter.await, Ok(true)), "stream did not end");
    assert!(matches!(
        broker.publish(&[msg("a", "k", 0)]).await,
        Err(Error::Closed(_))
    ));
    assert!(matches!(
        broker.subscribe(&Subscription::new("s", ["#"])).await,
        Err(Error::Closed(_))
    ));
}

#[tokio::test]
async fn messages_before_the_first_subscribe_are_not_kept() {
    let broker = memory_broker();
    broker.publish(&[msg("order.placed", "o", 0)]).await.ok();
    assert_eq!(broker.queued("s"), None);
    let mut stream = subscribe(&broker, &Subscription::new("s", ["order.*"])).await;
    assert_eq!(broker.queued("s"), Some(0));
    let later = msg("order.placed", "o", 1);
    broker.publish(std::slice::from_ref(&later)).await.ok();
    assert_eq!(next(&mut stream).await.envelope.event_id, later.event_id);
}

#[tokio::test]
async fn resubscribing_with_other_settings_is_rejected() {
    let broker = memory_broker();
    let _s = subscribe(&broker, &Subscription::new("s", ["order.*"])).await;
    let other_patterns = broker
        .subscribe(&Subscription::new("s", ["payment.*"]))
        .await;
    assert!(matches!(other_patterns, Err(Error::InvalidArgument(_))));
    let now_ordered = broker
        .subscribe(&Subscription::new("s", ["order.*"]).ordered())
        .await;
    assert!(matches!(now_ordered, Err(Error::InvalidArgument(_))));
    assert!(
        broker
            .subscribe(&Subscription::new("s", ["order.*"]))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn no_patterns_is_invalid() {
    let broker = memory_broker();
    let none: [&str; 0] = [];
    assert!(matches!(
        broker.subscribe(&Subscription::new("s", none)).await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn acked_keys_are_forgotten() {
    let broker = memory_broker();
    let mut stream = subscribe(&broker, &Subscription::new("s", ["a"]).ordered()).await;
    let batch: Vec<Envelope> = (0..100).map(|i| msg("a", &format!("k{i}"), i)).collect();
    broker.publish(&batch).await.ok();
    assert_eq!(broker.queued("s"), Some(100));
    for _ in 0..100 {
        next(&mut stream).await.ack().await.ok();
    }
    assert_eq!(broker.queued("s"), Some(0));
    assert!(poll_now(&mut stream).await.is_none());
}

#[tokio::test]
async fn dead_letter_carries_the_clock_time() {
    let clock = ManualClock::at_epoch();
    let store = Arc::new(MemoryDeadLetterStore::default());
    let broker = MemoryBroker::new(store.clone(), Arc::new(clock.clone()));
    let mut stream = subscribe(&broker, &Subscription::new("s", ["a"])).await;
    broker.publish(&[msg("a", "k", 0)]).await.ok();
    next(&mut stream)
        .await
        .dead_letter("bad", Some("boom".into()))
        .await
        .ok();
    let letters = store.list(&Default::default()).await.unwrap_or_default();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].dead_lettered_at, clock.now());
}

#[tokio::test]
async fn replay_of_an_unknown_letter_is_not_found() {
    let broker = memory_broker();
    let missing = broker.replay_dead_letter(uuid::Uuid::now_v7()).await;
    assert!(matches!(missing, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn a_consumer_at_its_prefetch_limit_wakes_when_it_settles() {
    let broker = memory_broker();
    let mut stream = subscribe(&broker, &Subscription::new("s", ["a"]).with_prefetch(1)).await;
    let batch = [msg("a", "k", 0), msg("a", "k", 1)];
    broker.publish(&batch).await.ok();
    let first = next(&mut stream).await;
    // Waits at the limit while the first delivery is unsettled.
    let waiter = tokio::spawn(async move { next(&mut stream).await.envelope.event_id });
    tokio::task::yield_now().await;
    first.ack().await.ok();
    let second = tokio::time::timeout(Duration::from_secs(10), waiter).await;
    assert!(
        matches!(second, Ok(Ok(id)) if id == batch[1].event_id),
        "the second message did not arrive after the ack: {second:?}"
    );
}

#[tokio::test]
async fn close_ends_a_stream_waiting_at_its_prefetch_limit() {
    let broker = memory_broker();
    let mut stream = subscribe(&broker, &Subscription::new("s", ["a"]).with_prefetch(1)).await;
    broker
        .publish(&[msg("a", "k", 0), msg("a", "k", 1)])
        .await
        .ok();
    let held = next(&mut stream).await;
    let waiter = tokio::spawn(async move { stream.next().await.is_none() });
    tokio::task::yield_now().await;
    broker.close();
    let ended = tokio::time::timeout(Duration::from_secs(10), waiter).await;
    assert!(
        matches!(ended, Ok(Ok(true))),
        "stream did not end: {ended:?}"
    );
    drop(held);
}

#[tokio::test]
async fn every_idle_competitor_is_woken_by_a_batch() {
    let broker = memory_broker();
    let sub = Subscription::new("s", ["a"]).with_prefetch(1);
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let mut stream = subscribe(&broker, &sub).await;
        // Each holds its delivery (prefetch 1), so each of the three messages goes to another.
        waiters.push(tokio::spawn(async move {
            let held = next(&mut stream).await;
            (held, stream)
        }));
    }
    tokio::task::yield_now().await;
    let batch = [msg("a", "k", 0), msg("a", "k", 1), msg("a", "k", 2)];
    broker.publish(&batch).await.ok();
    let mut got = Vec::new();
    for waiter in waiters {
        match tokio::time::timeout(Duration::from_secs(10), waiter).await {
            Ok(Ok((held, stream))) => {
                got.push(held.envelope.event_id);
                held.ack().await.ok();
                drop(stream);
            }
            Ok(Err(e)) => panic!("an idle consumer failed: {e}"),
            Err(_) => panic!("an idle consumer got nothing"),
        }
    }
    got.sort();
    let mut want: Vec<_> = batch.iter().map(|e| e.event_id).collect();
    want.sort();
    assert_eq!(got, want);
}
