//! Dead-letter cases: storing, listing, and replay/discard that happen once.

use chrono::Duration;
use uuid::Uuid;

use crate::dead_letter::{DeadLetter, DeadLetterFilter, DeadLetterStatus, ReplayOutcome};
use crate::error::{Error, ErrorKind};

use super::TestStores;
use super::support::{Must, envelope, must_fail, now, race, skip, unique};

/// A pending letter of `subscription`, dead-lettered `offset_s` seconds from the clock's now.
fn letter(stores: &TestStores, subscription: &str, offset_s: i64) -> DeadLetter {
    let at = now(stores) + Duration::seconds(offset_s);
    DeadLetter::new(
        subscription,
        envelope(stores, &unique("order"), 1),
        "attempts exhausted",
        5,
        Some("connection refused".to_owned()),
        at,
    )
}

/// Puts a fresh pending letter and returns its id.
async fn put_one(stores: &TestStores) -> Uuid {
    let letter = letter(stores, &unique("billing"), 0);
    let id = letter.id;
    stores
        .dead_letters
        .put(letter)
        .await
        .must("dead_letters.put");
    id
}

/// A put letter reads back equal; `list` filters by subscription and status, oldest first
/// (by time, not by id), and honours its limit.
pub async fn dead_letter_put_get_list(stores: TestStores) {
    let billing = unique("billing");
    let shipping = unique("shipping");
    // Ids grow in creation order; dead_lettered_at does not, so sorting by id is caught.
    let middle = letter(&stores, &billing, 20);
    let oldest = letter(&stores, &billing, 10);
    let newest = letter(&stores, &billing, 30);
    let other = letter(&stores, &shipping, 0);
    for l in [&middle, &oldest, &newest, &other] {
        stores
            .dead_letters
            .put(l.clone())
            .await
            .must("dead_letters.put");
    }
    assert_eq!(
        stores
            .dead_letters
            .get(middle.id)
            .await
            .must("dead_letters.get"),
        middle,
        "a stored dead letter must read back equal"
    );

    let list = |subscription: Option<&str>, status, limit| {
        let store = stores.dead_letters.clone();
        let filter = DeadLetterFilter {
            subscription: subscription.map(str::to_owned),
            status,
            limit,
        };
        async move {
            store
                .list(&filter)
                .await
                .must("dead_letters.list")
                .into_iter()
                .map(|l| l.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(Some(&billing), None, None).await,
        vec![oldest.id, middle.id, newest.id],
        "list by subscription must return its letters oldest first"
    );
    assert_eq!(
        list(Some(&billing), None, Some(2)).await,
        vec![oldest.id, middle.id],
        "list must honour its limit, keeping the oldest"
    );
    assert_eq!(
        list(Some(&shipping), Some(DeadLetterStatus::Pending), None).await,
        vec![other.id],
        "list by subscription and status"
    );

    stores
        .dead_letters
        .discard(middle.id)
        .await
        .must("dead_letters.discard");
    assert_eq!(
        list(Some(&billing), Some(DeadLetterStatus::Pending), None).await,
        vec![oldest.id, newest.id],
        "a discarded letter is no longer listed as pending"
    );
    assert_eq!(
        list(Some(&billing), Some(DeadLetterStatus::Discarded), None).await,
        vec![middle.id],
        "a discarded letter is listed as discarded"
    );
    let all = list(None, None, None).await;
    for id in [oldest.id, middle.id, newest.id, other.id] {
        assert!(all.contains(&id), "an unfiltered list must include {id}");
    }
    let whole = stores
        .dead_letters
        .list(&DeadLetterFilter {
            subscription: Some(shipping.clone()),
            status: None,
            limit: None,
        })
        .await
        .must("dead_letters.list");
    assert_eq!(whole, vec![other], "list must return whole letters");
}

/// `get`, `replay` and `discard` of an unknown id are `Error::NotFound`.
pub async fn dead_letter_unknown_is_not_found(stores: TestStores) {
    let id = Uuid::now_v7();
    let err = must_fail(
        stores.dead_letters.get(id).await,
        "get of an unknown dead letter",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "get of an unknown dead letter must be Error::NotFound, got {err:?}"
    );
    let err = must_fail(
        stores.dead_letters.replay(id).await,
        "replay of an unknown dead letter",
    );
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "replay of an unknown dead letter: {err:?}"
    );
    let err = must_fail(
        stores.dead_letters.discard(id).await,
        "discard of an unknown dead letter",
    );
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "discard of an unknown dead letter: {err:?}"
    );
}

/// The first replay hands the letter back (now `Replayed`); the second is
/// `AlreadyDone(Replayed)` and changes nothing.
pub async fn dead_letter_replay_happens_once(stores: TestStores) {
    let original = letter(&stores, &unique("billing"), 0);
    stores
        .dead_letters
        .put(original.clone())
        .await
        .must("dead_letters.put");
    stores.clock.advance(Duration::seconds(60));

    match stores
        .dead_letters
        .replay(original.id)
        .await
        .must("dead_letters.replay")
    {
        ReplayOutcome::Replayed(replayed) => {
            assert_eq!(
                replayed.id, original.id,
                "replay must hand back the same letter"
            );
            assert_eq!(
                replayed.envelope, original.envelope,
                "replay must hand back the message"
            );
            assert_eq!(replayed.subscription, original.subscription);
            assert_eq!(
                replayed.status,
                DeadLetterStatus::Replayed,
                "a replayed letter is Replayed"
            );
        }
        other => panic!("the first replay of a pending letter must be Replayed, got {other:?}"),
    }
    let after_first = stores
        .dead_letters
        .get(original.id)
        .await
        .must("dead_letters.get");
    assert_eq!(
        after_first.status,
        DeadLetterStatus::Replayed,
        "the stored letter is Replayed"
    );

    let second = stores
        .dead_letters
        .replay(original.id)
        .await
        .must("dead_letters.replay");
    assert_eq!(
        second,
        ReplayOutcome::AlreadyDone(DeadLetterStatus::Replayed),
        "a second replay must be a no-op"
    );
    assert_eq!(
        stores
            .dead_letters
            .get(original.id)
            .await
            .must("dead_letters.get"),
        after_first,
        "a second replay must change nothing"
    );
    assert!(
        !stores
            .dead_letters
            .discard(original.id)
            .await
            .must("dead_letters.discard"),
        "a replayed letter cannot be discarded"
    );
}

/// Discard works once; a discarded letter cannot be replayed.
pub async fn dead_letter_discarded_cannot_be_replayed(stores: TestStores) {
    let id = put_one(&stores).await;
    assert!(
        stores
            .dead_letters
            .discard(id)
            .await
            .must("dead_letters.discard"),
        "discarding a pending letter returns true"
    );
    assert!(
        !stores
            .dead_letters
            .discard(id)
            .await
            .must("dead_letters.discard"),
        "discarding twice returns false"
    );
    assert_eq!(
        stores
            .dead_letters
            .replay(id)
            .await
            .must("dead_letters.replay"),
        ReplayOutcome::AlreadyDone(DeadLetterStatus::Discarded),
        "replaying a discarded letter must be AlreadyDone(Discarded)"
    );
    assert_eq!(
        stores
            .dead_letters
            .get(id)
            .await
            .must("dead_letters.get")
            .status,
        DeadLetterStatus::Discarded,
        "the letter stays discarded"
    );
}

/// `pending_count` counts pending letters only.
pub async fn dead_letter_pending_count_follows_status(stores: TestStores) {
    let count = || {
        let store = stores.dead_letters.clone();
        async move {
            store
                .pending_count()
                .await
                .must("dead_letters.pending_count")
        }
    };
    assert_eq!(count().await, 0, "a fresh store has no pending letters");
    let ids = [
        put_one(&stores).await,
        put_one(&stores).await,
        put_one(&stores).await,
    ];
    assert_eq!(count().await, 3, "three put, three pending");
    stores
        .dead_letters
        .replay(ids[0])
        .await
        .must("dead_letters.replay");
    assert_eq!(count().await, 2, "a replayed letter is not pending");
    stores
        .dead_letters
        .discard(ids[1])
        .await
        .must("dead_letters.discard");
    assert_eq!(count().await, 1, "a discarded letter is not pending");
}

/// Of 16 concurrent replays of one letter exactly one hands it back.
pub async fn dead_letter_concurrent_replays_have_one_winner(stores: TestStores) {
    const CASE: &str = "dead_letter_concurrent_replays_have_one_winner";
    if !stores.features.concurrent_writers {
        skip(
            CASE,
            "the adapter does not run concurrent writers (features.concurrent_writers = false)",
        );
        return;
    }
    let id = put_one(&stores).await;
    let store = stores.dead_letters.clone();
    let answers = race(16, move |_| {
        let store = store.clone();
        async move { store.replay(id).await }
    })
    .await;
    let mut replayed = 0;
    for answer in answers {
        match answer.must("concurrent dead_letters.replay") {
            ReplayOutcome::Replayed(_) => replayed += 1,
            ReplayOutcome::AlreadyDone(DeadLetterStatus::Replayed) => {}
            other => {
                panic!("a losing concurrent replay must be AlreadyDone(Replayed), got {other:?}")
            }
        }
    }
    assert_eq!(
        replayed, 1,
        "exactly one of 16 concurrent replays must hand the letter back"
    );
}
