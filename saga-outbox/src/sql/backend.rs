//! The store traits and the unit of work, written once and instantiated for each database
//! by `impl_sql_backend!(Database, Connection)`. Every statement comes from
//! [`Statements`](super::statements::Statements); the database-specific parts (claiming rows
//! for the relay, schema DDL, notify) live in `sqlite/` and `postgres/`.

/// Implements `OutboxStore`, `Inbox`, `SagaStore`, `SagaLogStore`, `DeadLetterStore`,
/// `IdempotencyStore` for `SqlStore<$db>` and the methods of `UnitOfWork<$db>`.
macro_rules! impl_sql_backend {
    ($db:ty, $conn:ty) => {
        use async_trait::async_trait as __async_trait;
        use chrono::{DateTime as __DateTime, Utc as __Utc};
        use saga_core::dead_letter::{
            DeadLetter as __DeadLetter, DeadLetterFilter as __DeadLetterFilter,
            DeadLetterStatus as __DeadLetterStatus, DeadLetterStore as __DeadLetterStore,
            ReplayOutcome as __ReplayOutcome,
        };
        use saga_core::idempotency::{
            BeginOutcome as __BeginOutcome, IdempotencyStore as __IdempotencyStore,
            StoredResponse as __StoredResponse,
        };
        use saga_core::outbox::{OutboxRecord as __OutboxRecord, OutboxStore as __OutboxStore};
        use saga_core::saga::instance::SagaInstance as __SagaInstance;
        use saga_core::saga::log::SagaLogEntry as __SagaLogEntry;
        use saga_core::saga::store::{
            SagaFilter as __SagaFilter, SagaLogStore as __SagaLogStore, SagaStore as __SagaStore,
        };
        use saga_core::{Envelope as __Envelope, Error as __Error, Inbox as __Inbox};
        use sqlx::Row as __Row;
        use $crate::sql::codec as __codec;
        use $crate::sql::error::db_err as __db_err;
        use $crate::sql::store::SqlStore as __SqlStore;
        use $crate::uow::UnitOfWork as __UnitOfWork;

        $crate::sql::batch_backend::impl_sql_batch!($db, $conn);

        /// Decodes the JSON body in column 0 of each row.
        fn __bodies<T>(
            rows: &[<$db as sqlx::Database>::Row],
            decode: fn(&str) -> saga_core::Result<T>,
        ) -> saga_core::Result<Vec<T>> {
            rows.iter()
                .map(|row| {
                    let body: String = row.try_get(0).map_err(__db_err)?;
                    decode(&body)
                })
                .collect()
        }

        fn __saga_not_found(id: uuid::Uuid) -> __Error {
            __Error::NotFound {
                entity: "saga",
                id: id.to_string(),
            }
        }

        fn __dl_not_found(id: uuid::Uuid) -> __Error {
            __Error::NotFound {
                entity: "dead letter",
                id: id.to_string(),
            }
        }

        impl __SqlStore<$db> {
            /// Begins a unit of work: one transaction on the writer for business writes,
            /// the inbox mark, outbox appends and saga state, committed once.
            pub async fn begin(&self) -> saga_core::Result<__UnitOfWork<$db>> {
                let tx = self.inner.write.begin().await.map_err(__db_err)?;
                Ok(__UnitOfWork::new(tx, self.clone()))
            }

            pub(crate) async fn append_on(
                &self,
                conn: &mut $conn,
                events: &[__Envelope],
            ) -> saga_core::Result<Vec<i64>> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                // One statement for all of them: rows get increasing `seq`s in the order
                // given, which is the order the relay publishes them in.
                let sql = if events.len() == 1 {
                    self.inner.sql.outbox_insert.clone()
                } else {
                    sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(format!(
                        "{} RETURNING seq",
                        self.inner.sql.outbox_values(1, events.len())
                    )))
                };
                let query = self.bind_outbox(sqlx::query(sql), events)?;
                let rows = query.fetch_all(&mut *conn).await.map_err(__db_err)?;
                let mut seqs = rows
                    .iter()
                    .map(|row| row.try_get::<i64, _>(0).map_err(__db_err))
                    .collect::<saga_core::Result<Vec<i64>>>()?;
                seqs.sort_unstable();
                Ok(seqs)
            }

            /// Whether some of `events` fall in a partition no relay of this process holds
            /// (then relays elsewhere must be told after the commit).
            fn reaches_elsewhere(&self, events: &[__Envelope]) -> bool {
                match &self.inner.local_parts {
                    None => false,
                    Some(local) => events.iter().any(|e| {
                        !local.is_local($crate::partition::partition_of(
                            &e.aggregate_id,
                            self.inner.partitions,
                        ))
                    }),
                }
            }

            /// Binds the outbox columns of `events` (in [`Statements::outbox_values`] order)
            /// after the parameters `query` already has.
            fn bind_outbox<'q>(
                &self,
                mut query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
                events: &'q [__Envelope],
            ) -> saga_core::Result<sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>>
            {
                let now = __codec::nanos(self.inner.clock.now());
                for envelope in events {
                    let body = __codec::to_json(envelope, "envelope")?;
                    let part = $crate::partition::partition_of(
                        &envelope.aggregate_id,
                        self.inner.partitions,
                    );
                    query = query
                        .bind(envelope.event_id.to_string())
                        .bind(envelope.aggregate_id.as_str())
                        .bind(part)
                        .bind(body)
                        .bind(now);
                }
                Ok(query)
            }

            pub(crate) async fn mark_inbox_on(
                &self,
                conn: &mut $conn,
                consumer: &str,
                event_id: uuid::Uuid,
            ) -> saga_core::Result<bool> {
                let done = sqlx::query(self.inner.sql.inbox_mark.clone())
                    .bind(consumer)
                    .bind(event_id.to_string())
                    .bind(__codec::nanos(self.inner.clock.now()))
                    .execute(&mut *conn)
                    .await
                    .map_err(__db_err)?;
                Ok(done.rows_affected() == 1)
            }

            pub(crate) async fn mark_inbox_all_on(
                &self,
                conn: &mut $conn,
                consumer: &str,
                event_ids: &[uuid::Uuid],
            ) -> saga_core::Result<Vec<bool>> {
                if event_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<String> = event_ids.iter().map(uuid::Uuid::to_string).collect();
                // In one order for every caller: two batches sharing ids in other orders
                // would otherwise wait on each other's marks (a deadlock on Postgres).
                let sorted: std::collections::BTreeSet<&String> = ids.iter().collect();
                let list = __codec::to_json(&sorted, "event ids")?;
                let marked: Vec<(String,)> = sqlx::query_as(self.inner.sql.inbox_mark_all.clone())
                    .bind(consumer)
                    .bind(list)
                    .bind(__codec::nanos(self.inner.clock.now()))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(__db_err)?;
                let mut new: std::collections::HashSet<String> =
                    marked.into_iter().map(|(id,)| id).collect();
                // An id given twice is new at its first place only.
                Ok(ids.iter().map(|id| new.remove(id)).collect())
            }

            pub(crate) async fn create_saga_on(
                &self,
                conn: &mut $conn,
                instance: &__SagaInstance,
            ) -> saga_core::Result<()> {
                let row = __codec::saga_row(instance)?;
                let done = sqlx::query(self.inner.sql.saga_create.clone())
                    .bind(row.id)
                    .bind(row.saga)
                    .bind(row.status)
                    .bind(row.terminal)
                    .bind(row.deadline)
                    .bind(row.version)
                    .bind(row.created_at)
                    .bind(row.body)
                    .execute(&mut *conn)
                    .await
                    .map_err(__db_err)?;
                if done.rows_affected() == 0 {
                    return Err(__Error::AlreadyExists {
                        entity: "saga",
                        id: instance.id.to_string(),
                    });
                }
                Ok(())
            }

            pub(crate) async fn save_saga_on(
                &self,
                conn: &mut $conn,
                instance: &__SagaInstance,
                expected_version: u64,
            ) -> saga_core::Result<()> {
                let row = __codec::saga_row(instance)?;
                let expected = $crate::sql::error::to_i64(expected_version, "expected version")?;
                let done = sqlx::query(self.inner.sql.saga_save.clone())
                    .bind(row.id.as_str())
                    .bind(row.saga)
                    .bind(row.status)
                    .bind(row.terminal)
                    .bind(row.deadline)
                    .bind(row.version)
                    .bind(row.created_at)
                    .bind(row.body)
                    .bind(expected)
                    .execute(&mut *conn)
                    .await
                    .map_err(__db_err)?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                Err(self
                    .saga_mismatch(conn, instance.id, expected_version)
                    .await)
            }

            /// Why a save of saga `id` at `expected_version` changed no row: the saga is
            /// gone, or its version moved on (a database error if even that cannot be read).
            pub(crate) async fn saga_mismatch(
                &self,
                conn: &mut $conn,
                id: uuid::Uuid,
                expected_version: u64,
            ) -> __Error {
                let found = match sqlx::query(self.inner.sql.saga_version.clone())
                    .bind(id.to_string())
                    .fetch_optional(&mut *conn)
                    .await
                {
                    Ok(found) => found,
                    Err(e) => return __db_err(e),
                };
                match found.map(|row| row.try_get::<i64, _>(0)) {
                    None => __saga_not_found(id),
                    Some(Err(e)) => __db_err(e),
                    Some(Ok(actual)) => __Error::VersionConflict {
                        entity: "saga",
                        id: id.to_string(),
                        expected: expected_version,
                        actual: u64::try_from(actual).unwrap_or_default(),
                    },
                }
            }

            pub(crate) async fn log_append_on(
                &self,
                conn: &mut $conn,
                entries: &[__SagaLogEntry],
            ) -> saga_core::Result<()> {
                // One statement per chunk: the rows go in in order, so `seq` keeps it.
                let statements = &self.inner.sql.saga_log_append;
                for chunk in entries.chunks(statements.len().max(1)) {
                    let Some(sql) = statements.get(chunk.len().wrapping_sub(1)) else {
                        continue;
                    };
                    let mut query = sqlx::query(sql.clone());
                    for entry in chunk {
                        query = query
                            .bind(entry.saga_id.to_string())
                            .bind(__codec::to_json(entry, "saga log entry")?);
                    }
                    query.execute(&mut *conn).await.map_err(__db_err)?;
                }
                Ok(())
            }

            /// Marks outbox rows published (`delete == false`) or deletes them.
            pub(crate) async fn complete_on(
                &self,
                conn: &mut $conn,
                seqs: &[i64],
                at: __DateTime<__Utc>,
                delete: bool,
            ) -> saga_core::Result<()> {
                if seqs.is_empty() {
                    return Ok(());
                }
                let list = __codec::id_list(seqs);
                if delete {
                    sqlx::query(self.inner.sql.outbox_delete.clone())
                        .bind(list)
                        .execute(&mut *conn)
                        .await
                        .map_err(__db_err)?;
                } else {
                    let mut tx = sqlx::Connection::begin(&mut *conn)
                        .await
                        .map_err(__db_err)?;
                    sqlx::query(self.inner.sql.outbox_archive.clone())
                        .bind(list.clone())
                        .bind(__codec::nanos(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(__db_err)?;
                    sqlx::query(self.inner.sql.outbox_delete.clone())
                        .bind(list)
                        .execute(&mut *tx)
                        .await
                        .map_err(__db_err)?;
                    tx.commit().await.map_err(__db_err)?;
                }
                Ok(())
            }

            pub(crate) fn record_from(
                row: &<$db as sqlx::Database>::Row,
            ) -> saga_core::Result<__OutboxRecord> {
                let seq: i64 = row.try_get(0).map_err(__db_err)?;
                let body: String = row.try_get(1).map_err(__db_err)?;
                let created: i64 = row.try_get(2).map_err(__db_err)?;
                Ok(__OutboxRecord {
                    seq,
                    envelope: __codec::envelope_from(&body)?,
                    created_at: $crate::time::from_nanos(created),
                    published_at: None,
                })
            }

            async fn dl_transition(
                &self,
                id: uuid::Uuid,
                to: __DeadLetterStatus,
            ) -> saga_core::Result<Option<__DeadLetter>> {
                let row = sqlx::query(self.inner.sql.dl_transition.clone())
                    .bind(id.to_string())
                    .bind(to.as_str())
                    .bind(__codec::nanos(self.inner.clock.now()))
                    .fetch_optional(&self.inner.write)
                    .await
                    .map_err(__db_err)?;
                match row {
                    Some(row) => Ok(Some(Self::dl_from(&row)?)),
                    None => Ok(None),
                }
            }

            async fn dl_status(&self, id: uuid::Uuid) -> saga_core::Result<__DeadLetterStatus> {
                let row = sqlx::query(self.inner.sql.dl_status.clone())
                    .bind(id.to_string())
                    .fetch_optional(&self.inner.write)
                    .await
                    .map_err(__db_err)?
                    .ok_or_else(|| __dl_not_found(id))?;
                let status: String = row.try_get(0).map_err(__db_err)?;
                __codec::status_from(&status)
            }

            fn dl_from(row: &<$db as sqlx::Database>::Row) -> saga_core::Result<__DeadLetter> {
                let body: String = row.try_get(0).map_err(__db_err)?;
                let status: String = row.try_get(1).map_err(__db_err)?;
                let updated: i64 = row.try_get(2).map_err(__db_err)?;
                __codec::dead_letter_from(&body, &status, updated)
            }

            async fn count(&self, sql: &sqlx::SqlStr) -> saga_core::Result<u64> {
                let row = sqlx::query(sql.clone())
                    .fetch_one(&self.inner.read)
                    .await
                    .map_err(__db_err)?;
                let n: i64 = row.try_get(0).map_err(__db_err)?;
                Ok(u64::try_from(n).unwrap_or_default())
            }
        }

        impl __UnitOfWork<$db> {
            /// The transaction's connection, for the handler's own business statements:
            /// `sqlx::query(..).execute(uow.tx()).await`.
            pub fn tx(&mut self) -> &mut $conn {
                &mut *self.tx
            }

            /// Marks `event_id` processed by `consumer` on this transaction. `false` means a
            /// duplicate: skip the effects (roll back or just drop the unit of work) and ack.
            /// Of N concurrent units of work marking one pair, one gets `true` (on Postgres
            /// the others wait for its commit, then see the mark).
            pub async fn mark_inbox(
                &mut self,
                consumer: &str,
                event_id: uuid::Uuid,
            ) -> saga_core::Result<bool> {
                let store = self.store.clone();
                store.mark_inbox_on(&mut *self.tx, consumer, event_id).await
            }

            /// Marks every one of `event_ids` processed by `consumer` on this transaction in
            /// one statement (a batch handler's marks), answering in their order what
            /// [`mark_inbox`](Self::mark_inbox) would answer for each: `false` for a
            /// duplicate, including an id given a second time. Skip the effects of the
            /// duplicates; the others are marked whether or not their effects follow, so
            /// make every new one's effects on this same unit of work.
            pub async fn mark_inbox_all(
                &mut self,
                consumer: &str,
                event_ids: &[uuid::Uuid],
            ) -> saga_core::Result<Vec<bool>> {
                let store = self.store.clone();
                store
                    .mark_inbox_all_on(&mut *self.tx, consumer, event_ids)
                    .await
            }

            /// Appends events to the outbox (in order); they are published after `commit`.
            pub async fn publish(&mut self, events: &[__Envelope]) -> saga_core::Result<Vec<i64>> {
                let store = self.store.clone();
                let seqs = store.append_on(&mut *self.tx, events).await?;
                self.published += seqs.len();
                self.remote |= store.reaches_elsewhere(events);
                Ok(seqs)
            }

            /// Runs one data-modifying business statement (`INSERT`, `UPDATE` or `DELETE`,
            /// with its bound parameters) and appends `events` to the outbox **in the same
            /// statement**: one round trip to the database (Postgres: a data-modifying
            /// `WITH`; SQLite: both statements in one call), where [`execute`] followed by
            /// [`publish`](Self::publish) takes two. The events are appended whatever the
            /// statement matched; when they depend on its outcome (an `UPDATE ... WHERE
            /// version = $1` that may match nothing), run it alone and publish after.
            ///
            /// The statement must not end in a `RETURNING` clause whose rows you need (they
            /// are not returned), may end in one `;` but nothing after it, and, on Postgres,
            /// must be one statement that may stand in a `WITH` clause.
            ///
            /// [`execute`]: sqlx::Executor::execute
            pub async fn execute_and_publish<'q, Q>(
                &mut self,
                mut statement: Q,
                events: &'q [__Envelope],
            ) -> saga_core::Result<()>
            where
                Q: sqlx::Execute<'q, $db>,
            {
                let args = statement
                    .take_arguments()
                    .map_err(|e| {
                        __Error::InvalidArgument(format!(
                            "the business statement's parameters do not encode: {e}"
                        ))
                    })?
                    .unwrap_or_default();
                let write = statement.sql();
                if events.is_empty() {
                    sqlx::query_with(write, args)
                        .execute(&mut *self.tx)
                        .await
                        .map_err(__db_err)?;
                    return Ok(());
                }
                let first = sqlx::Arguments::len(&args) + 1;
                let sql =
                    self.store
                        .inner
                        .sql
                        .write_and_append(write.as_str(), first, events.len());
                let store = self.store.clone();
                let query = store.bind_outbox(sqlx::query_with(sql, args), events)?;
                query.execute(&mut *self.tx).await.map_err(__db_err)?;
                self.published += events.len();
                self.remote |= store.reaches_elsewhere(events);
                Ok(())
            }

            /// Stores a new saga instance; `AlreadyExists` if its id is taken.
            pub async fn create_saga(
                &mut self,
                instance: &__SagaInstance,
            ) -> saga_core::Result<()> {
                let store = self.store.clone();
                store.create_saga_on(&mut *self.tx, instance).await
            }

            /// Saves saga state if the stored version is still `expected_version`;
            /// otherwise `VersionConflict` (the whole unit of work should then be dropped).
            pub async fn save_saga(
                &mut self,
                instance: &__SagaInstance,
                expected_version: u64,
            ) -> saga_core::Result<()> {
                let store = self.store.clone();
                store
                    .save_saga_on(&mut *self.tx, instance, expected_version)
                    .await
            }

            /// Appends saga log entries on this transaction.
            pub async fn append_saga_log(
                &mut self,
                entries: &[__SagaLogEntry],
            ) -> saga_core::Result<()> {
                let store = self.store.clone();
                store.log_append_on(&mut *self.tx, entries).await
            }

            /// Commits everything at once and wakes the relay if events were appended:
            /// relays of this store at once, relays of other processes (Postgres) by a
            /// `NOTIFY` the store's notifier task sends after the commit, unless every
            /// event fell in a partition a relay of this process holds.
            ///
            /// After a [batch](crate::batch::Batch) found a duplicate, the unit of work
            /// holds effects that must not happen twice: `commit` then rolls it back.
            pub async fn commit(self) -> saga_core::Result<()> {
                if self.discard {
                    return self.rollback().await;
                }
                let (published, remote) = (self.published, self.remote);
                let store = self.store.clone();
                self.tx.commit().await.map_err(__db_err)?;
                if published > 0 {
                    store.inner.signal.notify_one();
                    if let Some(wake) = store.inner.remote_wake.as_ref().filter(|_| remote) {
                        // Full: a NOTIFY is already pending and will cover this commit.
                        let _ = wake.try_send(());
                    }
                }
                Ok(())
            }

            /// Rolls everything back (dropping the unit of work does the same).
            pub async fn rollback(self) -> saga_core::Result<()> {
                self.tx.rollback().await.map_err(__db_err)
            }
        }

        #[__async_trait]
        impl __OutboxStore for __SqlStore<$db> {
            async fn append(&self, events: &[__Envelope]) -> saga_core::Result<Vec<i64>> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let mut uow = self.begin().await?;
                let seqs = uow.publish(events).await?;
                uow.commit().await?;
                Ok(seqs)
            }

            async fn unpublished(&self, limit: usize) -> saga_core::Result<Vec<__OutboxRecord>> {
                let rows = sqlx::query(self.inner.sql.outbox_unpublished.clone())
                    .bind(__codec::limit(Some(limit)))
                    .fetch_all(&self.inner.read)
                    .await
                    .map_err(__db_err)?;
                rows.iter().map(Self::record_from).collect()
            }

            async fn mark_published(
                &self,
                seqs: &[i64],
                at: __DateTime<__Utc>,
            ) -> saga_core::Result<()> {
                let mut conn = self.inner.write.acquire().await.map_err(__db_err)?;
                self.complete_on(&mut *conn, seqs, at, false).await
            }

            async fn prune_published(&self, before: __DateTime<__Utc>) -> saga_core::Result<u64> {
                let done = sqlx::query(self.inner.sql.outbox_prune.clone())
                    .bind(__codec::nanos(before))
                    .execute(&self.inner.write)
                    .await
                    .map_err(__db_err)?;
                Ok(done.rows_affected())
            }

            async fn pending_count(&self) -> saga_core::Result<u64> {
                self.count(&self.inner.sql.outbox_pending).await
            }
        }

        #[__async_trait]
        impl __Inbox for __SqlStore<$db> {
            async fn try_mark(
                &self,
                consumer: &str,
                event_id: uuid::Uuid,
            ) -> saga_core::Result<bool> {
                let mut conn = self.inner.write.acquire().await.map_err(__db_err)?;
                self.mark_inbox_on(&mut *conn, consumer, event_id).await
            }

            async fn is_processed(
                &self,
                consumer: &str,
                event_id: uuid::Uuid,
            ) -> saga_core::Result<bool> {
                let row = sqlx::query(self.inner.sql.inbox_is.clone())
                    .bind(consumer)
                    .bind(event_id.to_string())
                    .fetch_one(&self.inner.read)
                    .await
                    .map_err(__db_err)?;
                let n: i64 = row.try_get(0).map_err(__db_err)?;
                Ok(n > 0)
            }
        }

        #[__async_trait]
        impl __SagaStore for __SqlStore<$db> {
            async fn create(&self, instance: &__SagaInstance) -> saga_core::Result<()> {
                let mut conn = self.inner.write.acquire().await.map_err(__db_err)?;
                self.create_saga_on(&mut *conn, instance).await
            }

            async fn load(&self, id: uuid::Uuid) -> saga_core::Result<__SagaInstance> {
                let row = sqlx::query(self.inner.sql.saga_load.clone())
                    .bind(id.to_string())
                    .fetch_optional(&self.inner.read)
                    .await
                    .map_err(__db_err)?
                    .ok_or_else(|| __saga_not_found(id))?;
                let body: String = row.try_get(0).map_err(__db_err)?;
                __codec::saga_from(&body)
            }

            async fn save(
                &self,
                instance: &__SagaInstance,
                expected_version: u64,
            ) -> saga_core::Result<()> {
                let mut conn = self.inner.write.acquire().await.map_err(__db_err)?;
                self.save_saga_on(&mut *conn, instance, expected_version)
                    .await
            }

            async fn due(
                &self,
                now: __DateTime<__Utc>,
                limit: usize,
            ) -> saga_core::Result<Vec<__SagaInstance>> {
                let rows = sqlx::query(self.inner.sql.saga_due.clone())
                    .bind(__codec::nanos(now))
                    .bind(__codec::limit(Some(limit)))
                    .fetch_all(&self.inner.read)
                    .await
                    .map_err(__db_err)?;
                __bodies(&rows, __codec::saga_from)
            }

            async fn list(&self, filter: &__SagaFilter) -> saga_core::Result<Vec<__SagaInstance>> {
                let rows = sqlx::query(self.inner.sql.saga_list.clone())
                    .bind(filter.saga.as_deref())
                    .bind(__codec::saga_status_str(filter.status))
                    .bind(__codec::limit(filter.limit))
                    .fetch_all(&self.inner.read)
                    .await
                    .map_err(__db_err)?;
                __bodies(&rows, __codec::saga_from)
            }
        }

        #[__async_trait]
        impl __SagaLogStore for __SqlStore<$db> {
            async fn append(&self, entries: &[__SagaLogEntry]) -> saga_core::Result<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let mut uow = self.begin().await?;
                uow.append_saga_log(entries).await?;
                uow.commit().await
            }

            async fn entries(&self, saga_id: uuid::Uuid) -> saga_core::Result<Vec<__SagaLogEntry>> {
                let rows = sqlx::query(self.inner.sql.saga_log_entries.clone())
                    .bind(saga_id.to_string())
                    .fetch_all(&self.inner.read)
                    .await
                    .map_err(__db_err)?;
                __bodies(&rows, __codec::log_from)
            }
        }

        #[__async_trait]
        impl __DeadLetterStore for __SqlStore<$db> {
            async fn put(&self, letter: __DeadLetter) -> saga_core::Result<()> {
                let done = sqlx::query(self.inner.sql.dl_put.clone())
                    .bind(letter.id.to_string())
                    .bind(letter.subscription.as_str())
                    .bind(letter.status.as_str())
                    .bind(__codec::nanos(letter.dead_lettered_at))
                    .bind(__codec::nanos(letter.updated_at))
                    .bind(__codec::to_json(&letter, "dead letter")?)
                    .execute(&self.inner.write)
                    .await
                    .map_err(__db_err)?;
                if done.rows_affected() == 0 {
                    return Err(__Error::AlreadyExists {
                        entity: "dead letter",
                        id: letter.id.to_string(),
                    });
                }
                Ok(())
            }

            async fn list(
                &self,
                filter: &__DeadLetterFilter,
            ) -> saga_core::Result<Vec<__DeadLetter>> {
                let rows = sqlx::query(self.inner.sql.dl_list.clone())
                    .bind(filter.subscription.as_deref())
                    .bind(filter.status.map(|s| s.as_str()))
                    .bind(__codec::limit(filter.limit))
                    .fetch_all(&self.inner.read)
                    .await
                    .map_err(__db_err)?;
                rows.iter().map(Self::dl_from).collect()
            }

            async fn get(&self, id: uuid::Uuid) -> saga_core::Result<__DeadLetter> {
                let row = sqlx::query(self.inner.sql.dl_get.clone())
                    .bind(id.to_string())
                    .fetch_optional(&self.inner.read)
                    .await
                    .map_err(__db_err)?
                    .ok_or_else(|| __dl_not_found(id))?;
                Self::dl_from(&row)
            }

            async fn replay(&self, id: uuid::Uuid) -> saga_core::Result<__ReplayOutcome> {
                match self.dl_transition(id, __DeadLetterStatus::Replayed).await? {
                    Some(letter) => Ok(__ReplayOutcome::Replayed(Box::new(letter))),
                    None => Ok(__ReplayOutcome::AlreadyDone(self.dl_status(id).await?)),
                }
            }

            async fn discard(&self, id: uuid::Uuid) -> saga_core::Result<bool> {
                match self
                    .dl_transition(id, __DeadLetterStatus::Discarded)
                    .await?
                {
                    Some(_) => Ok(true),
                    None => {
                        // Not pending: NotFound if it does not exist at all.
                        self.dl_status(id).await?;
                        Ok(false)
                    }
                }
            }

            async fn pending_count(&self) -> saga_core::Result<u64> {
                self.count(&self.inner.sql.dl_pending).await
            }
        }

        #[__async_trait]
        impl __IdempotencyStore for __SqlStore<$db> {
            async fn begin(
                &self,
                scope: &str,
                key: &str,
                fingerprint: &str,
                expires_at: __DateTime<__Utc>,
            ) -> saga_core::Result<__BeginOutcome> {
                // A key can vanish between the two statements (abandoned): ask again.
                for _ in 0..3 {
                    let now = __codec::nanos(self.inner.clock.now());
                    let claimed = sqlx::query(self.inner.sql.idem_begin.clone())
                        .bind(scope)
                        .bind(key)
                        .bind(fingerprint)
                        .bind(__codec::nanos(expires_at))
                        .bind(now)
                        .fetch_optional(&self.inner.write)
                        .await
                        .map_err(__db_err)?;
                    if claimed.is_some() {
                        return Ok(__BeginOutcome::New);
                    }
                    let row = sqlx::query(self.inner.sql.idem_get.clone())
                        .bind(scope)
                        .bind(key)
                        .fetch_optional(&self.inner.write)
                        .await
                        .map_err(__db_err)?;
                    let Some(row) = row else { continue };
                    let stored: String = row.try_get(0).map_err(__db_err)?;
                    let response: Option<String> = row.try_get(2).map_err(__db_err)?;
                    if stored != fingerprint {
                        return Ok(__BeginOutcome::Mismatch);
                    }
                    return Ok(match response {
                        Some(body) => __BeginOutcome::Completed(__codec::response_from(&body)?),
                        None => __BeginOutcome::InFlight,
                    });
                }
                Err(__Error::transient(format!(
                    "idempotency key `{scope}/{key}` changed three times while being claimed"
                )))
            }

            async fn complete(
                &self,
                scope: &str,
                key: &str,
                response: &__StoredResponse,
            ) -> saga_core::Result<()> {
                let done = sqlx::query(self.inner.sql.idem_complete.clone())
                    .bind(scope)
                    .bind(key)
                    .bind(__codec::to_json(response, "idempotency response")?)
                    .execute(&self.inner.write)
                    .await
                    .map_err(__db_err)?;
                if done.rows_affected() == 0 {
                    return Err(__Error::NotFound {
                        entity: "idempotency key",
                        id: format!("{scope}/{key}"),
                    });
                }
                Ok(())
            }

            async fn abandon(&self, scope: &str, key: &str) -> saga_core::Result<()> {
                sqlx::query(self.inner.sql.idem_abandon.clone())
                    .bind(scope)
                    .bind(key)
                    .execute(&self.inner.write)
                    .await
                    .map_err(__db_err)?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sql_backend;
