//! Idempotency-key cases: new, in flight, completed, mismatch, abandon, expiry, races.

use chrono::Duration;

use crate::error::{Error, ErrorKind};
use crate::idempotency::{BeginOutcome, StoredResponse};

use super::TestStores;
use super::support::{Must, far_future, must_fail, now, race, skip, unique};

fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        content_type: "application/json".to_owned(),
        // Not valid UTF-8 on purpose: the body is bytes, stored as bytes.
        body: vec![b'{', b'}', 0, 0xff, 0xfe, b'\n'],
    }
}

/// A new key is `New`; begun again with the same fingerprint while running, `InFlight`.
pub async fn idempotency_new_key_then_in_flight(stores: TestStores) {
    let (scope, key) = (unique("POST /orders"), unique("key"));
    let expires = far_future(&stores);
    let store = &stores.idempotency;
    assert_eq!(
        store
            .begin(&scope, &key, "fp-1", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::New,
        "an unseen key must be New"
    );
    assert_eq!(
        store
            .begin(&scope, &key, "fp-1", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::InFlight,
        "the same request again while the first runs must be InFlight"
    );
}

/// After `complete`, the same request gets the stored response back, byte for byte.
pub async fn idempotency_completed_key_returns_response(stores: TestStores) {
    let (scope, key) = (unique("POST /orders"), unique("key"));
    let expires = far_future(&stores);
    let store = &stores.idempotency;
    store
        .begin(&scope, &key, "fp-1", expires)
        .await
        .must("idempotency.begin");
    store
        .complete(&scope, &key, &response())
        .await
        .must("idempotency.complete");
    for _ in 0..2 {
        assert_eq!(
            store
                .begin(&scope, &key, "fp-1", expires)
                .await
                .must("idempotency.begin"),
            BeginOutcome::Completed(response()),
            "a completed key must return the stored response (status, content type, bytes)"
        );
    }
}

/// The same key with another fingerprint is `Mismatch`, in flight and after completion,
/// and does not disturb the original.
pub async fn idempotency_other_fingerprint_is_mismatch(stores: TestStores) {
    let (scope, key) = (unique("POST /orders"), unique("key"));
    let expires = far_future(&stores);
    let store = &stores.idempotency;
    store
        .begin(&scope, &key, "fp-1", expires)
        .await
        .must("idempotency.begin");
    assert_eq!(
        store
            .begin(&scope, &key, "fp-2", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::Mismatch,
        "another body under an in-flight key must be Mismatch"
    );
    store
        .complete(&scope, &key, &response())
        .await
        .must("idempotency.complete");
    assert_eq!(
        store
            .begin(&scope, &key, "fp-2", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::Mismatch,
        "another body under a completed key must be Mismatch"
    );
    assert_eq!(
        store
            .begin(&scope, &key, "fp-1", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::Completed(response()),
        "a mismatching request must not disturb the original's response"
    );
}

/// An abandoned key is free again: the next begin is `New`.
pub async fn idempotency_abandon_releases_key(stores: TestStores) {
    let (scope, key) = (unique("POST /orders"), unique("key"));
    let expires = far_future(&stores);
    let store = &stores.idempotency;
    store
        .begin(&scope, &key, "fp-1", expires)
        .await
        .must("idempotency.begin");
    store
        .abandon(&scope, &key)
        .await
        .must("idempotency.abandon");
    assert_eq!(
        store
            .begin(&scope, &key, "fp-1", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::New,
        "after abandon the same request must be New again"
    );
    store
        .abandon(&scope, &key)
        .await
        .must("idempotency.abandon");
    assert_eq!(
        store
            .begin(&scope, &key, "fp-2", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::New,
        "after abandon any request may take the key"
    );
}

/// A key whose `expires_at` is at or before the clock's now counts as new, whether it was
/// in flight or completed, and whatever the fingerprint.
pub async fn idempotency_expired_key_is_new(stores: TestStores) {
    const CASE: &str = "idempotency_expired_key_is_new";
    if !stores.features.idempotency_expiry {
        skip(
            CASE,
            "the adapter does not judge expiry by the injected clock (features.idempotency_expiry = false)",
        );
        return;
    }
    let scope = unique("POST /orders");
    let (running, done, other) = (unique("running"), unique("done"), unique("other"));
    let expires = now(&stores) + Duration::seconds(60);
    let store = &stores.idempotency;
    for key in [&running, &done, &other] {
        store
            .begin(&scope, key, "fp-1", expires)
            .await
            .must("idempotency.begin");
    }
    store
        .complete(&scope, &done, &response())
        .await
        .must("idempotency.complete");

    stores.clock.advance(Duration::seconds(59));
    assert_eq!(
        store
            .begin(&scope, &running, "fp-1", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::InFlight,
        "a key one second before its expiry is still in flight"
    );
    stores.clock.advance(Duration::seconds(1));
    let later = now(&stores) + Duration::seconds(60);
    assert_eq!(
        store
            .begin(&scope, &running, "fp-1", later)
            .await
            .must("idempotency.begin"),
        BeginOutcome::New,
        "a key is expired (new) when expires_at == now"
    );
    assert_eq!(
        store
            .begin(&scope, &done, "fp-1", later)
            .await
            .must("idempotency.begin"),
        BeginOutcome::New,
        "an expired completed key must be New, not replay its old response"
    );
    assert_eq!(
        store
            .begin(&scope, &other, "fp-2", later)
            .await
            .must("idempotency.begin"),
        BeginOutcome::New,
        "an expired key is New for any fingerprint"
    );
    assert_eq!(
        store
            .begin(&scope, &running, "fp-1", later)
            .await
            .must("idempotency.begin"),
        BeginOutcome::InFlight,
        "a re-begun key is in flight again, with its new expiry"
    );
}

/// Of 16 concurrent begins of one new key exactly one is `New`; the rest are `InFlight`.
pub async fn idempotency_concurrent_begins_have_one_new(stores: TestStores) {
    const CASE: &str = "idempotency_concurrent_begins_have_one_new";
    if !stores.features.concurrent_writers {
        skip(
            CASE,
            "the adapter does not run concurrent writers (features.concurrent_writers = false)",
        );
        return;
    }
    let (scope, key) = (unique("POST /orders"), unique("key"));
    let expires = far_future(&stores);
    let store = stores.idempotency.clone();
    let answers = race(16, move |_| {
        let store = store.clone();
        let (scope, key) = (scope.clone(), key.clone());
        async move { store.begin(&scope, &key, "fp-1", expires).await }
    })
    .await;
    let mut new = 0;
    for answer in answers {
        match answer.must("concurrent idempotency.begin") {
            BeginOutcome::New => new += 1,
            BeginOutcome::InFlight => {}
            other => panic!("a losing concurrent begin must be InFlight, got {other:?}"),
        }
    }
    assert_eq!(
        new, 1,
        "exactly one of 16 concurrent begins of a new key must be New"
    );
}

/// The same key in two scopes is two keys.
pub async fn idempotency_scopes_are_independent(stores: TestStores) {
    let (orders, payments) = (unique("POST /orders"), unique("POST /payments"));
    let key = unique("key");
    let expires = far_future(&stores);
    let store = &stores.idempotency;
    store
        .begin(&orders, &key, "fp-1", expires)
        .await
        .must("idempotency.begin");
    store
        .complete(&orders, &key, &response())
        .await
        .must("idempotency.complete");
    assert_eq!(
        store
            .begin(&payments, &key, "fp-2", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::New,
        "a key used in one scope must be new in another"
    );
    store
        .abandon(&payments, &key)
        .await
        .must("idempotency.abandon");
    assert_eq!(
        store
            .begin(&orders, &key, "fp-1", expires)
            .await
            .must("idempotency.begin"),
        BeginOutcome::Completed(response()),
        "abandoning a key in one scope must not touch another scope"
    );
}

/// Completing a key never begun is `Error::NotFound`.
pub async fn idempotency_complete_unknown_is_not_found(stores: TestStores) {
    let (scope, key) = (unique("POST /orders"), unique("key"));
    let err = must_fail(
        stores.idempotency.complete(&scope, &key, &response()).await,
        "completing a key never begun",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "completing an unknown key must be Error::NotFound, got {err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
}
