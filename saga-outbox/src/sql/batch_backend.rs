//! The library's own statements of a [`Batch`](crate::batch::Batch) and how a batch runs,
//! written once and instantiated for each database by `impl_sql_batch!(Database,
//! Connection)` (from `impl_sql_backend!`).

/// Implements `UnitOfWork::<$db>::batch` and the batch's inbox, outbox, saga and saga log
/// parts and `run`.
macro_rules! impl_sql_batch {
    ($db:ty, $conn:ty) => {
        impl $crate::uow::UnitOfWork<$db> {
            /// Starts gathering this unit of work's writes to send them at once (on SQLite
            /// in one call): see [`Batch`](crate::batch::Batch).
            pub fn batch(&mut self) -> $crate::batch::Batch<'_, $db> {
                let combine = self.store.inner.sql.combines_statements();
                $crate::batch::Batch::new(self, combine)
            }
        }

        impl $crate::batch::Batch<'_, $db> {
            /// Marks `event_id` processed by `consumer`, as
            /// [`UnitOfWork::mark_inbox`](crate::uow::UnitOfWork::mark_inbox) does. If the
            /// message was already processed, the [outcome](crate::batch::BatchOutcome)
            /// is a duplicate. Put it first: on Postgres the batch stops at a duplicate.
            pub fn mark_inbox(
                &mut self,
                consumer: &str,
                event_id: uuid::Uuid,
            ) -> $crate::batch::InboxMark {
                let sql = self.uow.store.inner.sql.inbox_mark.clone();
                let now = $crate::sql::codec::nanos(self.uow.store.inner.clock.now());
                let index = self.push(sql, $crate::batch::Kind::Inbox);
                self.bind_last(consumer.to_owned());
                self.bind_last(event_id.to_string());
                self.bind_last(now);
                $crate::batch::InboxMark::new(index)
            }

            /// Binds a saga row's columns in the order of the saga statements' `$1..$8`.
            fn bind_saga_row(&mut self, row: $crate::sql::codec::SagaRow) {
                self.bind_last(row.id);
                self.bind_last(row.saga);
                self.bind_last(row.status);
                self.bind_last(row.terminal);
                self.bind_last(row.deadline);
                self.bind_last(row.version);
                self.bind_last(row.created_at);
                self.bind_last(row.body);
            }

            /// Appends events to the outbox (in order), as
            /// [`UnitOfWork::publish`](crate::uow::UnitOfWork::publish) does.
            pub fn publish(&mut self, events: &[saga_core::Envelope]) -> &mut Self {
                if events.is_empty() {
                    return self;
                }
                let store = self.uow.store.clone();
                let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                    store.inner.sql.outbox_values(1, events.len()),
                ));
                self.push(sql, $crate::batch::Kind::Append);
                let now = $crate::sql::codec::nanos(store.inner.clock.now());
                for envelope in events {
                    let body = match $crate::sql::codec::to_json(envelope, "envelope") {
                        Ok(body) => body,
                        Err(e) => {
                            self.fail(e);
                            return self;
                        }
                    };
                    let part = $crate::partition::partition_of(
                        &envelope.aggregate_id,
                        store.inner.partitions,
                    );
                    self.bind_last(envelope.event_id.to_string());
                    self.bind_last(envelope.aggregate_id.clone());
                    self.bind_last(part);
                    self.bind_last(body);
                    self.bind_last(now);
                }
                self.published += events.len();
                self.remote |= store.reaches_elsewhere(events);
                self
            }

            /// Stores a new saga instance, as
            /// [`UnitOfWork::create_saga`](crate::uow::UnitOfWork::create_saga) does:
            /// `run` fails with `AlreadyExists` if its id is taken.
            pub fn create_saga(
                &mut self,
                instance: &saga_core::saga::instance::SagaInstance,
            ) -> &mut Self {
                let row = match $crate::sql::codec::saga_row(instance) {
                    Ok(row) => row,
                    Err(e) => {
                        self.fail(e);
                        return self;
                    }
                };
                let sql = self.uow.store.inner.sql.saga_create.clone();
                self.push(sql, $crate::batch::Kind::NewSaga { id: instance.id });
                self.bind_saga_row(row);
                self
            }

            /// Saves saga state if the stored version is still `expected_version`, as
            /// [`UnitOfWork::save_saga`](crate::uow::UnitOfWork::save_saga) does: `run`
            /// fails with `VersionConflict` (or `NotFound`) if it is not.
            pub fn save_saga(
                &mut self,
                instance: &saga_core::saga::instance::SagaInstance,
                expected_version: u64,
            ) -> &mut Self {
                let row = match $crate::sql::codec::saga_row(instance).and_then(|row| {
                    $crate::sql::error::to_i64(expected_version, "expected version")
                        .map(|expected| (row, expected))
                }) {
                    Ok(row) => row,
                    Err(e) => {
                        self.fail(e);
                        return self;
                    }
                };
                let (row, expected) = row;
                let sql = self.uow.store.inner.sql.saga_save.clone();
                self.push(
                    sql,
                    $crate::batch::Kind::Saga {
                        id: instance.id,
                        expected: expected_version,
                    },
                );
                self.bind_saga_row(row);
                self.bind_last(expected);
                self
            }

            /// Appends saga log entries, as
            /// [`UnitOfWork::append_saga_log`](crate::uow::UnitOfWork::append_saga_log)
            /// does.
            pub fn append_saga_log(
                &mut self,
                entries: &[saga_core::saga::log::SagaLogEntry],
            ) -> &mut Self {
                let store = self.uow.store.clone();
                let statements = &store.inner.sql.saga_log_append;
                for chunk in entries.chunks(statements.len().max(1)) {
                    let Some(sql) = statements.get(chunk.len().wrapping_sub(1)) else {
                        continue;
                    };
                    self.push(sql.clone(), $crate::batch::Kind::Append);
                    for entry in chunk {
                        match $crate::sql::codec::to_json(entry, "saga log entry") {
                            Ok(json) => {
                                self.bind_last(entry.saga_id.to_string());
                                self.bind_last(json);
                            }
                            Err(e) => {
                                self.fail(e);
                                return self;
                            }
                        }
                    }
                }
                self
            }

            /// Sends the batch: on SQLite every statement in one call, on Postgres one after
            /// the other (stopping after an inbox mark that finds a duplicate). Then checks
            /// the inbox marks (a duplicate: the outcome says so, and the unit of work can
            /// no longer commit) and the saga saves (`VersionConflict`, `NotFound`).
            ///
            /// A database error fails the run; drop the unit of work then.
            pub async fn run(mut self) -> saga_core::Result<$crate::batch::BatchOutcome> {
                if let Some(e) = self.problem() {
                    return Err(e);
                }
                let mut parts = std::mem::take(&mut self.parts);
                let mut affected: Vec<u64> = Vec::with_capacity(parts.len());
                let conn: &mut $conn = &mut *self.uow.tx;
                if parts.is_empty() {
                    // Nothing to send.
                } else if self.combine {
                    use futures_util::StreamExt as _;
                    let mut texts = std::mem::take(&mut self.sealed);
                    texts.push((
                        std::mem::take(&mut self.text),
                        std::mem::take(&mut self.args),
                    ));
                    for (text, args) in texts {
                        if $crate::batch::found_duplicate(&parts, &affected) {
                            break;
                        }
                        let query = sqlx::query_with(sqlx::AssertSqlSafe(text), args);
                        let mut results = sqlx::Executor::fetch_many(&mut *conn, query);
                        while let Some(result) = results.next().await {
                            match result {
                                Ok(sqlx::Either::Left(done)) => {
                                    affected.push(done.rows_affected());
                                }
                                Ok(sqlx::Either::Right(_row)) => {}
                                // After a duplicate mark the statements may fail because the
                                // first delivery did their work: that is the duplicate.
                                Err(_) if $crate::batch::found_duplicate(&parts, &affected) => {
                                    break;
                                }
                                Err(e) => return Err($crate::sql::error::db_err(e)),
                            }
                        }
                    }
                } else {
                    for i in 0..parts.len() {
                        let Some((sql, args)) = parts[i].alone.take() else {
                            continue;
                        };
                        let done = sqlx::query_with(sql, args)
                            .execute(&mut *conn)
                            .await
                            .map_err($crate::sql::error::db_err)?;
                        affected.push(done.rows_affected());
                        if $crate::batch::found_duplicate(&parts, &affected) {
                            break;
                        }
                    }
                }
                if $crate::batch::found_duplicate(&parts, &affected) {
                    self.uow.discard = true;
                    return Ok($crate::batch::BatchOutcome {
                        duplicate: true,
                        affected,
                    });
                }
                if affected.len() != parts.len() {
                    return Err(saga_core::Error::permanent(format!(
                        "the batch ran {} of its {} statements",
                        affected.len(),
                        parts.len()
                    )));
                }
                for (part, n) in parts.iter().zip(&affected) {
                    match part.kind {
                        $crate::batch::Kind::Saga { id, expected } if *n == 0 => {
                            return Err(self.uow.store.saga_mismatch(conn, id, expected).await);
                        }
                        $crate::batch::Kind::NewSaga { id } if *n == 0 => {
                            return Err(saga_core::Error::AlreadyExists {
                                entity: "saga",
                                id: id.to_string(),
                            });
                        }
                        _ => {}
                    }
                }
                self.uow.published += self.published;
                self.uow.remote |= self.remote;
                Ok($crate::batch::BatchOutcome {
                    duplicate: false,
                    affected,
                })
            }
        }
    };
}

pub(crate) use impl_sql_batch;
