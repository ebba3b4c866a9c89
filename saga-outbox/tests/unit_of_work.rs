//! The unit of work on SQLite and Postgres: atomic, deduplicated, version-checked.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod support;

use std::sync::Arc;

use saga_core::saga::instance::{SagaInstance, SagaStatus};
use saga_core::{Envelope, ErrorKind, Inbox, OutboxStore, saga::store::SagaStore};
use uuid::Uuid;

fn saga(now: chrono::DateTime<chrono::Utc>) -> SagaInstance {
    SagaInstance {
        id: Uuid::now_v7(),
        saga: "order".into(),
        aggregate_id: "order-1".into(),
        status: SagaStatus::Running,
        steps: Vec::new(),
        data: Arc::new(serde_json::json!({})),
        failure: None,
        deadline: None,
        unsent: Vec::new(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn bumped(mut s: SagaInstance) -> SagaInstance {
    s.version += 1;
    s
}

/// The three cases, written once, for a backend given as `setup() -> (store, orders table, guard)`.
macro_rules! uow_cases {
    ($setup:path) => {
        use super::*;

        async fn count(store_pool: &sqlx::Pool<Db>, table: &str) -> i64 {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(store_pool)
                .await
                .unwrap_or_else(|e| panic!("count {table}: {e}"));
            row.0
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_failing_handler_leaves_nothing() {
            let Some((store, orders, _guard)) = $setup("a_failing_handler_leaves_nothing").await
            else {
                return;
            };
            let message = Envelope::new("order.placed", "order-1", serde_json::json!({}));
            {
                let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    uow.mark_inbox("billing", message.event_id)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"))
                );
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {orders} (id) VALUES ($1)"
                )))
                .bind("order-1")
                .execute(uow.tx())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                uow.publish(&[Envelope::new(
                    "invoice.created",
                    "order-1",
                    serde_json::json!({}),
                )])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                // The handler fails here: the unit of work is dropped without commit.
            }
            assert_eq!(
                count(store.read_pool(), &orders).await,
                0,
                "business write must be gone"
            );
            assert!(
                !store
                    .is_processed("billing", message.event_id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
                "inbox mark must be gone"
            );
            assert_eq!(
                store
                    .pending_count()
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
                0,
                "outbox row must be gone"
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_deliveries_have_one_effect() {
            let Some((store, orders, _guard)) =
                $setup("concurrent_deliveries_have_one_effect").await
            else {
                return;
            };
            let message = Envelope::new("order.placed", "order-1", serde_json::json!({}));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..8 {
                let store = store.clone();
                let orders = orders.clone();
                let id = message.event_id;
                tasks.spawn(async move {
                    let mut uow = store.begin().await?;
                    if !uow.mark_inbox("billing", id).await? {
                        return Ok::<_, saga_core::Error>(saga_outbox::Handled::Duplicate);
                    }
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO {orders} (id) VALUES ($1)"
                    )))
                    .bind(Uuid::now_v7().to_string())
                    .execute(uow.tx())
                    .await
                    .map_err(saga_core::Error::permanent)?;
                    uow.publish(&[Envelope::new(
                        "invoice.created",
                        "order-1",
                        serde_json::json!({}),
                    )])
                    .await?;
                    uow.commit().await?;
                    Ok(saga_outbox::Handled::Processed(()))
                });
            }
            let mut processed = 0;
            while let Some(done) = tasks.join_next().await {
                match done
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|e| panic!("{e}"))
                {
                    saga_outbox::Handled::Processed(()) => processed += 1,
                    saga_outbox::Handled::Duplicate => {}
                }
            }
            assert_eq!(processed, 1, "exactly one delivery has effects");
            assert_eq!(count(store.read_pool(), &orders).await, 1);
            assert_eq!(
                store
                    .pending_count()
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
                1
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn one_statement_writes_and_publishes_together() {
            let Some((store, orders, _guard)) =
                $setup("one_statement_writes_and_publishes_together").await
            else {
                return;
            };
            let events: Vec<Envelope> = (0..3)
                .map(|n| Envelope::new("invoice.created", "order-1", serde_json::json!({ "n": n })))
                .collect();
            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            // A trailing `;` must not cut the statement (nor a trailing comment, below).
            uow.execute_and_publish(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {orders} (id) VALUES ($1);  "
                )))
                .bind("order-1"),
                &events,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(uow.published_count(), 3);
            // Several events through `publish` also go in one statement, in order.
            let more: Vec<Envelope> = (3..5)
                .map(|n| Envelope::new("invoice.created", "order-1", serde_json::json!({ "n": n })))
                .collect();
            let seqs = uow.publish(&more).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
            uow.commit().await.unwrap_or_else(|e| panic!("{e}"));

            assert_eq!(count(store.read_pool(), &orders).await, 1);
            let pending = store
                .unpublished(10)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let ids: Vec<Uuid> = pending.iter().map(|r| r.envelope.event_id).collect();
            let expected: Vec<Uuid> = events.iter().chain(&more).map(|e| e.event_id).collect();
            assert_eq!(ids, expected, "appended in the order given");

            // Without events it is a plain execute.
            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            uow.execute_and_publish(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {orders} (id) VALUES ($1) -- the second order"
                )))
                .bind("order-2"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(count(store.read_pool(), &orders).await, 2);
            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            uow.execute_and_publish(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {orders} (id) VALUES ($1) -- the third order"
                )))
                .bind("order-3"),
                &[Envelope::new("invoice.created", "order-3", serde_json::json!({}))],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(count(store.read_pool(), &orders).await, 3);
            assert_eq!(store.pending_count().await.unwrap_or_else(|e| panic!("{e}")), 6);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_failing_one_statement_write_appends_nothing() {
            let Some((store, orders, _guard)) =
                $setup("a_failing_one_statement_write_appends_nothing").await
            else {
                return;
            };
            let insert = format!("INSERT INTO {orders} (id) VALUES ($1)");
            let event = || Envelope::new("invoice.created", "order-1", serde_json::json!({}));
            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            uow.execute_and_publish(
                sqlx::query(sqlx::AssertSqlSafe(insert.clone())).bind("order-1"),
                &[event()],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            // Dropped without commit: neither the row nor the event.
            drop(uow);
            assert_eq!(count(store.read_pool(), &orders).await, 0);
            assert_eq!(store.pending_count().await.unwrap_or_else(|e| panic!("{e}")), 0);

            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .bind("order-1")
                .execute(store.write_pool())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            // The business write fails (the id is taken): the event is not appended either.
            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            let failed = uow
                .execute_and_publish(
                    sqlx::query(sqlx::AssertSqlSafe(insert.clone())).bind("order-1"),
                    &[event()],
                )
                .await;
            assert!(failed.is_err(), "a duplicate key must fail the statement");
            assert_eq!(uow.published_count(), 0);
            drop(uow);
            assert_eq!(store.pending_count().await.unwrap_or_else(|e| panic!("{e}")), 0);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_batch_of_inbox_marks_tells_which_are_new() {
            let Some((store, _orders, _guard)) =
                $setup("a_batch_of_inbox_marks_tells_which_are_new").await
            else {
                return;
            };
            let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
            let mut first = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            assert!(first.mark_inbox("billing", a).await.unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(
                first.mark_inbox_all("billing", &[]).await.unwrap_or_else(|e| panic!("{e}")),
                Vec::<bool>::new()
            );
            first.commit().await.unwrap_or_else(|e| panic!("{e}"));

            let mut second = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                second
                    .mark_inbox_all("billing", &[b, a, b, c])
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
                vec![true, false, false, true],
                "a marked before, b given twice"
            );
            // Another consumer's marks are its own.
            assert_eq!(
                second
                    .mark_inbox_all("shipping", &[a])
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
                vec![true]
            );
            drop(second);

            // Rolled back: b and c are new again; a stays marked.
            let mut third = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                third
                    .mark_inbox_all("billing", &[c, a, b])
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
                vec![true, false, true]
            );
            third.commit().await.unwrap_or_else(|e| panic!("{e}"));
            for id in [a, b, c] {
                assert!(store.is_processed("billing", id).await.unwrap_or_else(|e| panic!("{e}")));
            }
            assert!(!store.is_processed("shipping", a).await.unwrap_or_else(|e| panic!("{e}")));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_batches_of_marks_have_one_effect_each() {
            let Some((store, _orders, _guard)) =
                $setup("concurrent_batches_of_marks_have_one_effect_each").await
            else {
                return;
            };
            // Several rounds: two batches deadlock only when their statements overlap.
            for _round in 0..8 {
                let ids: Vec<Uuid> = (0..400).map(|_| Uuid::now_v7()).collect();
                let mut tasks = tokio::task::JoinSet::new();
                let start = Arc::new(tokio::sync::Barrier::new(6));
                for t in 0..6 {
                    // Every batch holds the same ids in another order (one of them twice).
                    let mut batch = ids.clone();
                    batch.rotate_left(t * 67);
                    if t % 2 == 1 {
                        batch.reverse();
                    }
                    batch.push(batch[0]);
                    let (store, start) = (store.clone(), start.clone());
                    tasks.spawn(async move {
                        // Together, so that the statements overlap (SQLite's one writer
                        // takes them in turn).
                        start.wait().await;
                        let mut uow = store.begin().await?;
                        let new = uow.mark_inbox_all("billing", &batch).await?;
                        uow.commit().await?;
                        let won: Vec<Uuid> =
                            batch.into_iter().zip(new).filter(|(_, n)| *n).map(|(id, _)| id).collect();
                        Ok::<_, saga_core::Error>(won)
                    });
                }
                let mut won: Vec<Uuid> = Vec::new();
                while let Some(done) = tasks.join_next().await {
                    match done.unwrap_or_else(|e| panic!("{e}")) {
                        Ok(new) => won.extend(new),
                        Err(e) => panic!("a batch of marks failed: {e}"),
                    }
                }
                won.sort();
                let mut expected = ids.clone();
                expected.sort();
                assert_eq!(won, expected, "every id new for exactly one batch");
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_stale_saga_version_is_refused() {
            let Some((store, orders, _guard)) = $setup("a_stale_saga_version_is_refused").await
            else {
                return;
            };
            let loaded = saga(chrono::Utc::now());
            store
                .create(&loaded)
                .await
                .unwrap_or_else(|e| panic!("{e}"));

            let mut first = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            first
                .save_saga(&bumped(loaded.clone()), 1)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            first.commit().await.unwrap_or_else(|e| panic!("{e}"));

            let mut second = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {orders} (id) VALUES ($1)"
            )))
            .bind("late")
            .execute(second.tx())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            let refused = second.save_saga(&bumped(loaded.clone()), 1).await;
            match refused {
                Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "got {e}"),
                Ok(()) => panic!("a save with a stale version must be refused"),
            }
            drop(second);
            assert_eq!(count(store.read_pool(), &orders).await, 0);
            assert_eq!(
                store
                    .load(loaded.id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .version,
                2
            );
        }
    };
}

/// The batch cases (`UnitOfWork::batch`), written once, for the same backends.
macro_rules! batch_cases {
    ($setup:path) => {
        use saga_core::saga::log::{LogStatus, SagaLogEntry};
        use saga_core::saga::store::SagaLogStore;

        /// A second business table of the test's own: `(id, qty, note)`.
        async fn lines_table(store_pool: &sqlx::Pool<Db>, orders: &str) -> String {
            let lines = format!("{orders}_lines");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {lines} (id TEXT PRIMARY KEY, qty BIGINT NOT NULL, note TEXT)"
            )))
            .execute(store_pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            lines
        }

        fn log_entry(saga_id: Uuid, step: &str) -> SagaLogEntry {
            SagaLogEntry {
                saga_id,
                step: step.into(),
                event_type: format!("{step}.done"),
                event_id: Uuid::now_v7(),
                status: LogStatus::Completed,
                at: chrono::Utc::now(),
                detail: None,
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_batch_writes_everything_at_once() {
            let Some((store, orders, _guard)) = $setup("a_batch_writes_everything_at_once").await
            else {
                return;
            };
            let lines = lines_table(store.write_pool(), &orders).await;
            let loaded = saga(chrono::Utc::now());
            store.create(&loaded).await.unwrap_or_else(|e| panic!("{e}"));
            let message = Envelope::new("order.placed", "order-1", serde_json::json!({}));
            let events: Vec<Envelope> = (0..2)
                .map(|n| Envelope::new("invoice.created", "order-1", serde_json::json!({ "n": n })))
                .collect();
            let log: Vec<SagaLogEntry> = (0..10).map(|n| log_entry(loaded.id, &format!("s{n}"))).collect();

            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            let mut batch = uow.batch();
            let mark = batch.mark_inbox("billing", message.event_id);
            let order = batch
                .execute(sqlx::AssertSqlSafe(format!("INSERT INTO {orders} (id) VALUES ($1);")))
                .bind("order-1")
                .id();
            // Each statement numbers its own parameters from 1, `?` too.
            batch
                .execute(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {lines} (id, qty, note) VALUES ($1, $2, $3), ($4, $5, NULL)"
                )))
                .bind("a")
                .bind(2_i64)
                .bind("it's $1; fine")
                .bind("b")
                .bind(5_i64);
            batch.publish(&events);
            batch.save_saga(&bumped(loaded.clone()), 1);
            let update = batch
                .execute(sqlx::AssertSqlSafe(format!(
                    "UPDATE {lines} SET qty = qty + $1 -- every line\n"
                )))
                .bind(10_i64)
                .id();
            batch.append_saga_log(&log);
            assert_eq!(batch.len(), 8, "log entries go in chunks of at most eight");
            let outcome = batch.run().await.unwrap_or_else(|e| panic!("{e}"));
            assert!(!outcome.is_duplicate());
            assert_eq!(outcome.is_new(mark), Some(true));
            assert_eq!(outcome.rows_affected(order), Some(1));
            assert_eq!(outcome.rows_affected(update), Some(2));
            assert_eq!(uow.published_count(), 2);
            uow.commit().await.unwrap_or_else(|e| panic!("{e}"));

            assert_eq!(count(store.read_pool(), &orders).await, 1);
            let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(
                format!("SELECT id, qty, note FROM {lines} ORDER BY id"),
            ))
            .fetch_all(store.read_pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                rows,
                vec![
                    ("a".to_owned(), 12, Some("it's $1; fine".to_owned())),
                    ("b".to_owned(), 15, None)
                ]
            );
            let pending = store.unpublished(10).await.unwrap_or_else(|e| panic!("{e}"));
            let ids: Vec<Uuid> = pending.iter().map(|r| r.envelope.event_id).collect();
            assert_eq!(ids, events.iter().map(|e| e.event_id).collect::<Vec<_>>());
            assert_eq!(store.load(loaded.id).await.unwrap_or_else(|e| panic!("{e}")).version, 2);
            let kept = store.entries(loaded.id).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                kept.iter().map(|e| e.step.as_str()).collect::<Vec<_>>(),
                log.iter().map(|e| e.step.as_str()).collect::<Vec<_>>(),
                "the log in the order given"
            );
            assert!(
                store
                    .is_processed("billing", message.event_id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_batch_of_many_values_keeps_each_in_place() {
            let Some((store, orders, _guard)) =
                $setup("a_batch_of_many_values_keeps_each_in_place").await
            else {
                return;
            };
            let lines = lines_table(store.write_pool(), &orders).await;
            // 700 statements of 10 rows, 21,000 values: on SQLite more than one text takes
            // (16,383 values each, within the 32,766 parameter numbers of SQLite's default
            // build), so the second text's numbering starts again.
            let values: Vec<String> = (0..10)
                .map(|r| format!("(${}, ${}, ${})", 3 * r + 1, 3 * r + 2, 3 * r + 3))
                .collect();
            let insert = format!("INSERT INTO {lines} (id, qty, note) VALUES {}", values.join(", "));
            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            let mut batch = uow.batch();
            let mut ids = Vec::new();
            for s in 0..700_i64 {
                let mut statement = batch.execute(sqlx::AssertSqlSafe(insert.clone()));
                for r in 0..10_i64 {
                    let n = s * 10 + r;
                    statement = statement.bind(format!("l{n}")).bind(n).bind(format!("n{n}"));
                }
                ids.push(statement.id());
            }
            let outcome = batch.run().await.unwrap_or_else(|e| panic!("{e}"));
            assert!(ids.iter().all(|id| outcome.rows_affected(*id) == Some(10)));
            uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
            let (rows, total, matching): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*), CAST(SUM(qty) AS BIGINT), CAST(SUM(CASE WHEN id = 'l' || qty \
                 AND note = 'n' || qty THEN 1 ELSE 0 END) AS BIGINT) FROM {lines}"
            )))
            .fetch_one(store.read_pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((rows, total, matching), (7000, 7000 * 6999 / 2, 7000));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_duplicate_in_a_batch_commits_nothing() {
            let Some((store, orders, _guard)) =
                $setup("a_duplicate_in_a_batch_commits_nothing").await
            else {
                return;
            };
            let message = Envelope::new("order.placed", "order-1", serde_json::json!({}));
            let insert = format!("INSERT INTO {orders} (id) VALUES ($1)");
            // Each delivery inserts `keys` and publishes one event.
            let deliver = |store: Store, keys: &'static [&'static str]| {
                let insert = insert.clone();
                async move {
                    let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
                    let mut batch = uow.batch();
                    batch.mark_inbox("billing", message.event_id);
                    for key in keys {
                        batch.execute(sqlx::AssertSqlSafe(insert.clone())).bind(*key);
                    }
                    batch.publish(&[Envelope::new("invoice.created", "order-1", serde_json::json!({}))]);
                    let outcome = batch.run().await.unwrap_or_else(|e| panic!("{e}"));
                    // `commit` after a duplicate rolls back.
                    uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
                    outcome.is_duplicate()
                }
            };
            assert!(!deliver(store.clone(), &["order-1", "first"]).await);
            // The first delivery took order-1: this redelivery's insert fails (SQLite runs
            // it), which is the duplicate, not an error.
            assert!(deliver(store.clone(), &["order-1", "second"]).await);
            // This one's statements all succeed on SQLite: the commit must not keep them.
            assert!(deliver(store.clone(), &["third"]).await);
            assert_eq!(count(store.read_pool(), &orders).await, 2, "order-1 and first");
            assert_eq!(store.pending_count().await.unwrap_or_else(|e| panic!("{e}")), 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_batch_refuses_a_stale_or_missing_saga() {
            let Some((store, orders, _guard)) =
                $setup("a_batch_refuses_a_stale_or_missing_saga").await
            else {
                return;
            };
            let loaded = saga(chrono::Utc::now());
            store.create(&loaded).await.unwrap_or_else(|e| panic!("{e}"));
            let insert = format!("INSERT INTO {orders} (id) VALUES ($1)");
            for (instance, expected, kind) in [
                (bumped(loaded.clone()), 7, ErrorKind::Conflict),
                (saga(chrono::Utc::now()), 1, ErrorKind::NotFound),
            ] {
                let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
                let mut batch = uow.batch();
                batch.execute(sqlx::AssertSqlSafe(insert.clone())).bind("late");
                batch.save_saga(&instance, expected);
                match batch.run().await {
                    Err(e) => assert_eq!(e.kind(), kind, "got {e}"),
                    Ok(outcome) => panic!("a stale save must be refused: {outcome:?}"),
                }
            }
            // A new saga whose id is taken.
            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            let mut batch = uow.batch();
            batch.create_saga(&loaded);
            match batch.run().await {
                Err(e) => assert!(
                    matches!(e, saga_core::Error::AlreadyExists { .. }),
                    "got {e}"
                ),
                Ok(outcome) => panic!("a taken saga id must be refused: {outcome:?}"),
            }
            drop(uow);
            assert_eq!(count(store.read_pool(), &orders).await, 0);
            assert_eq!(store.load(loaded.id).await.unwrap_or_else(|e| panic!("{e}")).version, 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_batch_refuses_what_it_cannot_send() {
            let Some((store, orders, _guard)) = $setup("a_batch_refuses_what_it_cannot_send").await
            else {
                return;
            };
            let two = format!("INSERT INTO {orders} (id) VALUES ($1); DELETE FROM {orders}");
            let short = format!("INSERT INTO {orders} (id) VALUES ($2)");
            for sql in [two, short] {
                let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
                let mut batch = uow.batch();
                batch.execute(sqlx::AssertSqlSafe(sql.clone())).bind("x");
                assert!(batch.run().await.is_err(), "{sql}");
            }
            // An empty batch sends nothing and succeeds.
            let mut uow = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
            let outcome = uow.batch().run().await.unwrap_or_else(|e| panic!("{e}"));
            assert!(!outcome.is_duplicate());
            uow.commit().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(count(store.read_pool(), &orders).await, 0);
        }
    };
}

mod sqlite {
    type Db = sqlx::Sqlite;
    type Store = saga_outbox::sqlite::SqliteStore;

    async fn setup(
        _test: &str,
    ) -> Option<(saga_outbox::sqlite::SqliteStore, String, tempfile::TempDir)> {
        let (_clock, shared) = crate::support::manual();
        let (store, dir) = crate::support::sqlite_store(shared).await;
        sqlx::query("CREATE TABLE svc_orders (id TEXT PRIMARY KEY)")
            .execute(store.write_pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Some((store, "svc_orders".into(), dir))
    }

    uow_cases!(setup);
    batch_cases!(setup);
}

mod postgres {
    type Db = sqlx::Postgres;
    type Store = saga_outbox::postgres::PgStore;

    async fn setup(
        test: &str,
    ) -> Option<(
        saga_outbox::postgres::PgStore,
        String,
        std::sync::Arc<crate::support::SchemaGuard>,
    )> {
        let url = crate::support::database_url(test)?;
        let (_clock, shared) = crate::support::manual();
        let (store, guard) = crate::support::pg_store(&url, shared, 16).await;
        let orders = format!("\"{}\".orders", guard.schema);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {orders} (id TEXT PRIMARY KEY)"
        )))
        .execute(store.write_pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        Some((store, orders, guard))
    }

    uow_cases!(setup);
    batch_cases!(setup);
}
