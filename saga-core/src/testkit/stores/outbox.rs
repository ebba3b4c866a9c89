//! Outbox cases: sequence numbers, order, marking, pruning, counting.

use chrono::Duration;

use super::TestStores;
use super::support::{Must, envelope, now, unique};

/// `append` returns one sequence number per event, increasing within a call and across
/// calls; an empty append returns none.
pub async fn outbox_append_returns_increasing_seqs(stores: TestStores) {
    let aggregate = unique("order");
    let events: Vec<_> = (0..3).map(|n| envelope(&stores, &aggregate, n)).collect();
    let first = stores
        .outbox
        .append(&events)
        .await
        .must("outbox.append of 3");
    let more: Vec<_> = (3..5).map(|n| envelope(&stores, &aggregate, n)).collect();
    let second = stores.outbox.append(&more).await.must("outbox.append of 2");
    assert_eq!(first.len(), 3, "append of 3 events returned {first:?}");
    assert_eq!(second.len(), 2, "append of 2 events returned {second:?}");
    let all: Vec<i64> = first.iter().chain(&second).copied().collect();
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "outbox sequence numbers must increase in append order, got {all:?}"
    );
    let none = stores.outbox.append(&[]).await.must("outbox.append of 0");
    assert!(none.is_empty(), "an empty append returned seqs {none:?}");
}

/// `unpublished` returns records by `seq`, each aggregate's in the order they were appended,
/// with the envelopes as written, and honours its limit.
pub async fn outbox_unpublished_in_seq_order(stores: TestStores) {
    let a = unique("order-a");
    let b = unique("order-b");
    let batches = [
        vec![envelope(&stores, &a, 1), envelope(&stores, &b, 1)],
        vec![envelope(&stores, &a, 2)],
        vec![envelope(&stores, &b, 2), envelope(&stores, &a, 3)],
    ];
    let mut written = Vec::new();
    for batch in &batches {
        let seqs = stores.outbox.append(batch).await.must("outbox.append");
        written.extend(seqs.into_iter().zip(batch.iter().cloned()));
    }

    let records = stores
        .outbox
        .unpublished(100)
        .await
        .must("outbox.unpublished");
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.seq, r.envelope.event_id))
        .collect();
    let want: Vec<_> = written.iter().map(|(s, e)| (*s, e.event_id)).collect();
    assert_eq!(
        got, want,
        "unpublished must return every unpublished record by seq, in append order"
    );
    for (record, (_, envelope)) in records.iter().zip(&written) {
        assert_eq!(
            &record.envelope, envelope,
            "the outbox must hand back the envelope exactly as appended"
        );
        assert_eq!(
            record.published_at, None,
            "a fresh record has no published_at"
        );
    }

    let first_two = stores
        .outbox
        .unpublished(2)
        .await
        .must("outbox.unpublished(2)");
    let first_two: Vec<_> = first_two.iter().map(|r| r.seq).collect();
    assert_eq!(
        first_two,
        vec![written[0].0, written[1].0],
        "unpublished(2) must return the two lowest seqs"
    );
}

/// Marked records leave `unpublished`; marking again (or marking nothing) is harmless.
pub async fn outbox_mark_published_hides_records(stores: TestStores) {
    let aggregate = unique("order");
    let events: Vec<_> = (0..3).map(|n| envelope(&stores, &aggregate, n)).collect();
    let seqs = stores.outbox.append(&events).await.must("outbox.append");
    let t0 = now(&stores);
    stores
        .outbox
        .mark_published(&[seqs[0], seqs[2]], t0)
        .await
        .must("outbox.mark_published");
    let left: Vec<_> = stores
        .outbox
        .unpublished(100)
        .await
        .must("outbox.unpublished")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        left,
        vec![seqs[1]],
        "after marking the first and last record only the middle one is unpublished"
    );

    stores
        .outbox
        .mark_published(&[seqs[0], seqs[2]], t0 + Duration::seconds(5))
        .await
        .must("outbox.mark_published a second time");
    stores
        .outbox
        .mark_published(&[], t0)
        .await
        .must("outbox.mark_published of nothing");
    let left_again: Vec<_> = stores
        .outbox
        .unpublished(100)
        .await
        .must("outbox.unpublished")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left_again, left, "marking twice must change nothing");
    assert_eq!(
        stores
            .outbox
            .pending_count()
            .await
            .must("outbox.pending_count"),
        1,
        "one record is still pending"
    );
}

/// `prune_published(before)` deletes exactly the records published before `before`, and
/// never an unpublished one.
pub async fn outbox_prune_removes_only_published_before(stores: TestStores) {
    let aggregate = unique("order");
    let events: Vec<_> = (0..3).map(|n| envelope(&stores, &aggregate, n)).collect();
    let seqs = stores.outbox.append(&events).await.must("outbox.append");
    let t0 = now(&stores);
    stores
        .outbox
        .mark_published(&[seqs[0]], t0)
        .await
        .must("outbox.mark_published");
    stores
        .outbox
        .mark_published(&[seqs[1]], t0 + Duration::seconds(10))
        .await
        .must("outbox.mark_published");

    let pruned = stores
        .outbox
        .prune_published(t0 + Duration::seconds(5))
        .await
        .must("outbox.prune_published");
    assert_eq!(
        pruned, 1,
        "only the record published at t0 was published before t0+5s"
    );
    let exact = stores
        .outbox
        .prune_published(t0 + Duration::seconds(10))
        .await
        .must("outbox.prune_published");
    assert_eq!(
        exact, 0,
        "a record published exactly at `before` is not published before it"
    );
    let rest = stores
        .outbox
        .prune_published(t0 + Duration::days(365))
        .await
        .must("outbox.prune_published");
    assert_eq!(rest, 1, "the record published at t0+10s is pruned next");

    let left: Vec<_> = stores
        .outbox
        .unpublished(100)
        .await
        .must("outbox.unpublished")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        left,
        vec![seqs[2]],
        "pruning must never delete an unpublished record"
    );
}

/// `pending_count` counts unpublished records: up with appends, down with marks, untouched
/// by pruning.
pub async fn outbox_pending_count_follows_marks(stores: TestStores) {
    let count = |stores: &TestStores| {
        let outbox = stores.outbox.clone();
        async move { outbox.pending_count().await.must("outbox.pending_count") }
    };
    assert_eq!(
        count(&stores).await,
        0,
        "a fresh outbox has nothing pending"
    );
    let aggregate = unique("order");
    let events: Vec<_> = (0..3).map(|n| envelope(&stores, &aggregate, n)).collect();
    let seqs = stores.outbox.append(&events).await.must("outbox.append");
    assert_eq!(count(&stores).await, 3, "three appended, three pending");
    let t0 = now(&stores);
    stores
        .outbox
        .mark_published(&seqs[..1], t0)
        .await
        .must("outbox.mark_published");
    assert_eq!(count(&stores).await, 2, "one marked, two pending");
    stores
        .outbox
        .prune_published(t0 + Duration::seconds(1))
        .await
        .must("outbox.prune_published");
    assert_eq!(
        count(&stores).await,
        2,
        "pruning does not touch pending records"
    );
}
