//! Saga store and saga log cases: round trip, optimistic versions, due, list, log order.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::error::{Error, ErrorKind};
use crate::saga::instance::{SagaInstance, SagaStatus, StepState, StepStatus};
use crate::saga::log::{LogStatus, SagaLogEntry};
use crate::saga::store::SagaFilter;

use super::TestStores;
use super::support::{Must, must_fail, now, race, skip, unique};

/// A saga of definition `saga` with three steps in various states, created at `created_at`.
fn instance(saga: &str, status: SagaStatus, created_at: DateTime<Utc>) -> SagaInstance {
    let step = |status, commands: usize, at: Option<DateTime<Utc>>| StepState {
        status,
        command_ids: (0..commands).map(|_| Uuid::now_v7()).collect(),
        compensation_id: None,
        started_at: at,
        finished_at: None,
        result: at.map(|_| std::sync::Arc::new(serde_json::json!({ "reservation_id": "r-1" }))),
    };
    let mut steps = vec![
        step(StepStatus::Completed, 1, Some(created_at)),
        step(
            StepStatus::Started,
            2,
            Some(created_at + Duration::seconds(1)),
        ),
        step(StepStatus::NotStarted, 0, None),
    ];
    steps[0].finished_at = Some(created_at + Duration::seconds(1));
    steps[0].compensation_id = Some(Uuid::now_v7());
    SagaInstance {
        id: Uuid::now_v7(),
        saga: saga.to_owned(),
        aggregate_id: unique("order"),
        status,
        steps,
        data: std::sync::Arc::new(serde_json::json!({
            "order": { "total_minor": 12_500, "currency": "EUR", "items": [1, 2, 3] },
            "reserve": { "reservation_id": "r-1" },
            "note": "ünïcödé ✓",
        })),
        failure: Some("card declined".to_owned()),
        deadline: Some(created_at + Duration::seconds(30)),
        unsent: Vec::new(),
        version: 0,
        created_at,
        updated_at: created_at,
    }
}

/// The instance as the next transition would save it: one version up, one field changed.
fn next(mut saga: SagaInstance, at: DateTime<Utc>, marker: usize) -> SagaInstance {
    saga.version += 1;
    saga.updated_at = at;
    std::sync::Arc::make_mut(&mut saga.data)["marker"] = serde_json::json!(marker);
    saga
}

/// A created instance loads back equal, field for field.
pub async fn saga_create_load_round_trip(stores: TestStores) {
    let saga = instance(&unique("order-saga"), SagaStatus::Running, now(&stores));
    stores.sagas.create(&saga).await.must("sagas.create");
    let loaded = stores.sagas.load(saga.id).await.must("sagas.load");
    assert_eq!(loaded, saga, "a loaded saga must equal the one created");

    let mut bare = instance(&unique("order-saga"), SagaStatus::Running, now(&stores));
    bare.steps.clear();
    bare.failure = None;
    bare.deadline = None;
    bare.data = std::sync::Arc::new(serde_json::Value::Null);
    stores
        .sagas
        .create(&bare)
        .await
        .must("sagas.create (no steps, no deadline)");
    let loaded = stores.sagas.load(bare.id).await.must("sagas.load");
    assert_eq!(
        loaded, bare,
        "empty steps, null data and no deadline must round-trip too"
    );
}

/// Creating an id twice is `Error::AlreadyExists` (kind `Conflict`) and keeps the first.
pub async fn saga_create_twice_is_already_exists(stores: TestStores) {
    let saga = instance(&unique("order-saga"), SagaStatus::Running, now(&stores));
    stores.sagas.create(&saga).await.must("sagas.create");
    let mut again = saga.clone();
    again.data = std::sync::Arc::new(serde_json::json!({ "second": true }));
    let err = must_fail(
        stores.sagas.create(&again).await,
        "creating an existing saga id",
    );
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "a second create must be Error::AlreadyExists, got {err:?}"
    );
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "AlreadyExists is a conflict"
    );
    let loaded = stores.sagas.load(saga.id).await.must("sagas.load");
    assert_eq!(
        loaded, saga,
        "a refused create must leave the first instance as it was"
    );
}

/// Loading an id never created is `Error::NotFound`.
pub async fn saga_load_unknown_is_not_found(stores: TestStores) {
    let err = must_fail(
        stores.sagas.load(Uuid::now_v7()).await,
        "loading an unknown saga",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "loading an unknown saga must be Error::NotFound, got {err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// Saving with the stored version succeeds and stores the new version; saves chain.
pub async fn saga_save_with_current_version_succeeds(stores: TestStores) {
    let t0 = now(&stores);
    let saga = instance(&unique("order-saga"), SagaStatus::Running, t0);
    stores.sagas.create(&saga).await.must("sagas.create");

    let mut v1 = next(saga, t0 + Duration::seconds(1), 1);
    v1.status = SagaStatus::Compensating;
    v1.steps[1].status = StepStatus::Failed;
    stores
        .sagas
        .save(&v1, 0)
        .await
        .must("sagas.save from version 0");
    let loaded = stores.sagas.load(v1.id).await.must("sagas.load");
    assert_eq!(
        loaded, v1,
        "after a save the store must hold the saved instance"
    );
    assert_eq!(loaded.version, 1, "the saved version must be stored");

    let mut v2 = next(loaded, t0 + Duration::seconds(2), 2);
    v2.status = SagaStatus::Compensated;
    v2.deadline = None;
    stores
        .sagas
        .save(&v2, 1)
        .await
        .must("sagas.save from version 1");
    let loaded = stores.sagas.load(v2.id).await.must("sagas.load");
    assert_eq!(
        loaded, v2,
        "a second save from the new version must succeed"
    );
}

/// Saving with a stale version is `Error::VersionConflict` with expected/actual, and
/// changes nothing.
pub async fn saga_save_with_stale_version_is_refused(stores: TestStores) {
    let t0 = now(&stores);
    let saga = instance(&unique("order-saga"), SagaStatus::Running, t0);
    stores.sagas.create(&saga).await.must("sagas.create");
    let winner = next(saga.clone(), t0 + Duration::seconds(1), 1);
    stores
        .sagas
        .save(&winner, 0)
        .await
        .must("sagas.save from version 0");

    let mut loser = next(saga, t0 + Duration::seconds(2), 2);
    loser.status = SagaStatus::Failed;
    let err = must_fail(
        stores.sagas.save(&loser, 0).await,
        "saving from a stale version",
    );
    match &err {
        Error::VersionConflict {
            expected, actual, ..
        } => {
            assert_eq!(
                *expected, 0,
                "VersionConflict.expected is the caller's version"
            );
            assert_eq!(*actual, 1, "VersionConflict.actual is the stored version");
        }
        other => panic!("a stale save must be Error::VersionConflict, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let loaded = stores.sagas.load(winner.id).await.must("sagas.load");
    assert_eq!(loaded, winner, "a refused save must change nothing");

    let ahead = next(winner.clone(), t0 + Duration::seconds(3), 3);
    let err = must_fail(
        stores.sagas.save(&ahead, 7).await,
        "saving from a future version",
    );
    assert!(
        matches!(
            err,
            Error::VersionConflict {
                expected: 7,
                actual: 1,
                ..
            }
        ),
        "an expected version ahead of the stored one is a conflict too, got {err:?}"
    );
}

/// Of 16 concurrent saves from one loaded version exactly one wins; the rest get
/// `VersionConflict`, and the store holds the winner's instance.
pub async fn saga_concurrent_saves_have_one_winner(stores: TestStores) {
    const CASE: &str = "saga_concurrent_saves_have_one_winner";
    if !stores.features.concurrent_writers {
        skip(
            CASE,
            "the adapter does not run concurrent writers (features.concurrent_writers = false)",
        );
        return;
    }
    let t0 = now(&stores);
    let saga = instance(&unique("order-saga"), SagaStatus::Running, t0);
    stores.sagas.create(&saga).await.must("sagas.create");
    let loaded = stores.sagas.load(saga.id).await.must("sagas.load");

    let sagas = stores.sagas.clone();
    let contender = loaded.clone();
    let answers = race(16, move |i| {
        let sagas = sagas.clone();
        let mine = next(contender.clone(), t0 + Duration::seconds(1), i);
        async move { sagas.save(&mine, 0).await.map(|()| i) }
    })
    .await;

    let mut winners = Vec::new();
    for answer in answers {
        match answer {
            Ok(i) => winners.push(i),
            Err(Error::VersionConflict {
                expected: 0,
                actual: 1,
                ..
            }) => {}
            Err(other) => {
                panic!("a losing concurrent save must be VersionConflict 0 -> 1, got {other:?}")
            }
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 16 concurrent saves must win, won: {winners:?}"
    );
    let stored = stores.sagas.load(saga.id).await.must("sagas.load");
    assert_eq!(
        stored,
        next(loaded, t0 + Duration::seconds(1), winners[0]),
        "the store must hold the winning save"
    );
}

/// `due(now)` returns the non-terminal sagas whose deadline is at or before `now`, soonest
/// first, and honours its limit.
pub async fn saga_due_returns_due_sagas_soonest_first(stores: TestStores) {
    let t0 = now(&stores);
    let name = unique("order-saga");
    let with_deadline = |status, deadline: Option<i64>| {
        let mut saga = instance(&name, status, t0 - Duration::minutes(10));
        saga.deadline = deadline.map(|s| t0 + Duration::seconds(s));
        saga
    };
    let late = with_deadline(SagaStatus::Running, Some(-10));
    let compensating = with_deadline(SagaStatus::Compensating, Some(-5));
    let exactly_now = with_deadline(SagaStatus::Running, Some(0));
    let not_yet = with_deadline(SagaStatus::Running, Some(10));
    let no_deadline = with_deadline(SagaStatus::Running, None);
    let completed = with_deadline(SagaStatus::Completed, Some(-20));
    let compensated = with_deadline(SagaStatus::Compensated, Some(-20));
    let failed = with_deadline(SagaStatus::Failed, Some(-20));
    // Created in an order unlike deadline order, so an adapter sorting by id or creation fails.
    for saga in [
        &exactly_now,
        &completed,
        &not_yet,
        &compensating,
        &failed,
        &late,
        &no_deadline,
        &compensated,
    ] {
        stores.sagas.create(saga).await.must("sagas.create");
    }

    let due: Vec<Uuid> = stores
        .sagas
        .due(t0, 100)
        .await
        .must("sagas.due")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        due,
        vec![late.id, compensating.id, exactly_now.id],
        "due must return the running/compensating sagas with deadline <= now, soonest first \
         (not terminal ones, not future or missing deadlines)"
    );
    let first_two: Vec<Uuid> = stores
        .sagas
        .due(t0, 2)
        .await
        .must("sagas.due")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        first_two,
        vec![late.id, compensating.id],
        "due must honour its limit"
    );
    let loaded = stores.sagas.due(t0, 1).await.must("sagas.due");
    assert_eq!(
        loaded.first(),
        Some(&late),
        "due must return whole instances"
    );
}

/// `list` filters by definition and status, returns newest first, and honours its limit.
pub async fn saga_list_filters_newest_first(stores: TestStores) {
    let t0 = now(&stores);
    let orders = unique("order-saga");
    let refunds = unique("refund-saga");
    let at = |s: i64| t0 + Duration::seconds(s);
    let o1 = instance(&orders, SagaStatus::Completed, at(1));
    let o3 = instance(&orders, SagaStatus::Running, at(3));
    let o2 = instance(&orders, SagaStatus::Completed, at(2));
    let r1 = instance(&refunds, SagaStatus::Completed, at(4));
    for saga in [&o1, &o3, &o2, &r1] {
        stores.sagas.create(saga).await.must("sagas.create");
    }
    let list = |saga: Option<&str>, status: Option<SagaStatus>, limit: Option<usize>| {
        let sagas = stores.sagas.clone();
        let filter = SagaFilter {
            saga: saga.map(str::to_owned),
            status,
            limit,
        };
        async move {
            sagas
                .list(&filter)
                .await
                .must("sagas.list")
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };

    assert_eq!(
        list(Some(&orders), None, None).await,
        vec![o3.id, o2.id, o1.id],
        "list by definition must return that definition's sagas, newest first"
    );
    assert_eq!(
        list(Some(&orders), Some(SagaStatus::Completed), None).await,
        vec![o2.id, o1.id],
        "list by definition and status"
    );
    assert_eq!(
        list(Some(&orders), None, Some(2)).await,
        vec![o3.id, o2.id],
        "list must honour its limit, keeping the newest"
    );
    assert_eq!(
        list(Some(&refunds), Some(SagaStatus::Running), None).await,
        Vec::<Uuid>::new(),
        "no refund saga is running"
    );
    let all_completed = list(None, Some(SagaStatus::Completed), None).await;
    for id in [r1.id, o2.id, o1.id] {
        assert!(
            all_completed.contains(&id),
            "list by status alone must include {id}"
        );
    }
    assert!(
        !all_completed.contains(&o3.id),
        "list by status must leave out other statuses"
    );
    let listed = stores
        .sagas
        .list(&SagaFilter {
            saga: Some(refunds.clone()),
            status: None,
            limit: None,
        })
        .await
        .must("sagas.list");
    assert_eq!(listed, vec![r1], "list must return whole instances");
}

/// The saga log returns a saga's entries in append order (not time order), and only
/// that saga's; a saga with no entries has an empty log.
pub async fn saga_log_keeps_append_order_per_saga(stores: TestStores) {
    let t0 = now(&stores);
    let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
    let entry = |saga_id, step: &str, status, at_s: i64, detail: Option<&str>| SagaLogEntry {
        saga_id,
        step: step.to_owned(),
        event_type: format!("{step}.requested"),
        event_id: Uuid::now_v7(),
        status,
        at: t0 + Duration::seconds(at_s),
        detail: detail.map(str::to_owned),
    };
    let first_batch = vec![
        entry(one, "reserve", LogStatus::Started, 0, None),
        entry(two, "reserve", LogStatus::Started, 0, None),
        entry(
            one,
            "reserve",
            LogStatus::Completed,
            0,
            Some("same instant as the start"),
        ),
    ];
    let second_batch = vec![
        entry(one, "pay", LogStatus::Started, 5, None),
        entry(two, "reserve", LogStatus::Failed, 3, Some("out of stock")),
        // Appended last but stamped earlier: the log keeps append order, not time order.
        entry(one, "pay", LogStatus::Ignored, -1, Some("duplicate")),
    ];
    stores
        .saga_log
        .append(&first_batch)
        .await
        .must("saga_log.append");
    stores
        .saga_log
        .append(&second_batch)
        .await
        .must("saga_log.append");
    stores
        .saga_log
        .append(&[])
        .await
        .must("saga_log.append of nothing");
    // A long append (an adapter may split it into several statements) keeps its order too.
    let three = Uuid::now_v7();
    let long_batch: Vec<_> = (0..21)
        .map(|i| {
            entry(
                three,
                &format!("step-{i}"),
                LogStatus::Started,
                20 - i,
                None,
            )
        })
        .collect();
    stores
        .saga_log
        .append(&long_batch)
        .await
        .must("saga_log.append of 21 entries");
    assert_eq!(
        stores
            .saga_log
            .entries(three)
            .await
            .must("saga_log.entries"),
        long_batch,
        "a long append must keep every entry, in append order"
    );

    let want_one: Vec<_> = first_batch
        .iter()
        .chain(&second_batch)
        .filter(|e| e.saga_id == one)
        .cloned()
        .collect();
    let want_two: Vec<_> = first_batch
        .iter()
        .chain(&second_batch)
        .filter(|e| e.saga_id == two)
        .cloned()
        .collect();
    assert_eq!(
        stores.saga_log.entries(one).await.must("saga_log.entries"),
        want_one,
        "a saga's log must hold its entries, whole, in append order"
    );
    assert_eq!(
        stores.saga_log.entries(two).await.must("saga_log.entries"),
        want_two,
        "each saga's log must hold only its own entries"
    );
    assert!(
        stores
            .saga_log
            .entries(Uuid::now_v7())
            .await
            .must("saga_log.entries of an unknown saga")
            .is_empty(),
        "a saga without entries has an empty log"
    );
}
