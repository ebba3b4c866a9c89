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

mod sqlite {
    type Db = sqlx::Sqlite;

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
}

mod postgres {
    type Db = sqlx::Postgres;

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
}
