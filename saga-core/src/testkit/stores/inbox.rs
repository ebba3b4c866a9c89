//! Inbox cases: first mark wins, per consumer, atomic under a race.

use uuid::Uuid;

use super::TestStores;
use super::support::{Must, race, skip, unique};

/// The first `try_mark` of a pair returns true, the next false; `is_processed` agrees.
pub async fn inbox_first_mark_wins(stores: TestStores) {
    let consumer = unique("billing");
    let event = Uuid::now_v7();
    assert!(
        !stores
            .inbox
            .is_processed(&consumer, event)
            .await
            .must("inbox.is_processed"),
        "an unseen message is not processed"
    );
    assert!(
        stores
            .inbox
            .try_mark(&consumer, event)
            .await
            .must("inbox.try_mark"),
        "the first try_mark must return true"
    );
    assert!(
        !stores
            .inbox
            .try_mark(&consumer, event)
            .await
            .must("inbox.try_mark"),
        "a second try_mark of the same pair must return false (duplicate)"
    );
    assert!(
        stores
            .inbox
            .is_processed(&consumer, event)
            .await
            .must("inbox.is_processed"),
        "a marked message is processed"
    );
    assert!(
        !stores
            .inbox
            .is_processed(&consumer, Uuid::now_v7())
            .await
            .must("inbox.is_processed"),
        "marking one message must not mark another"
    );
}

/// Each consumer has its own marks for the same message.
pub async fn inbox_consumers_are_independent(stores: TestStores) {
    let billing = unique("billing");
    let shipping = unique("shipping");
    let event = Uuid::now_v7();
    assert!(
        stores
            .inbox
            .try_mark(&billing, event)
            .await
            .must("inbox.try_mark"),
        "first mark for billing"
    );
    assert!(
        !stores
            .inbox
            .is_processed(&shipping, event)
            .await
            .must("inbox.is_processed"),
        "billing's mark must not count for shipping"
    );
    assert!(
        stores
            .inbox
            .try_mark(&shipping, event)
            .await
            .must("inbox.try_mark"),
        "the first mark of another consumer must return true"
    );
}

/// Of 32 concurrent `try_mark` calls for one pair, exactly one returns true.
pub async fn inbox_concurrent_marks_have_one_winner(stores: TestStores) {
    const CASE: &str = "inbox_concurrent_marks_have_one_winner";
    if !stores.features.concurrent_writers {
        skip(
            CASE,
            "the adapter does not run concurrent writers (features.concurrent_writers = false)",
        );
        return;
    }
    let consumer = unique("billing");
    let event = Uuid::now_v7();
    let inbox = stores.inbox.clone();
    let answers = race(32, move |_| {
        let inbox = inbox.clone();
        let consumer = consumer.clone();
        async move { inbox.try_mark(&consumer, event).await }
    })
    .await;
    let wins = answers
        .into_iter()
        .map(|a| a.must("concurrent inbox.try_mark"))
        .filter(|first| *first)
        .count();
    assert_eq!(
        wins, 1,
        "exactly one of 32 concurrent try_mark calls must return true"
    );
}
