//! One subscriber: claims visible rows under a lease, hands them out, settles them.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use saga_core::broker::{Acker, Delivery};
use saga_core::dead_letter::DeadLetter;
use saga_core::{Envelope, Error, Result};
use sqlx::Row;

use super::db::{db_err, on_db, on_db_read, sql};
use super::settle::Settle;
use super::shared::{Shared, Wake, micros};

/// A subscriber's side of a subscription.
pub(crate) struct Consumer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) subscription: Arc<str>,
    /// This subscriber's id, written to `locked_by`.
    pub(crate) id: Arc<str>,
    pub(crate) ordered: bool,
    pub(crate) prefetch: usize,
    pub(crate) notify: Arc<Wake>,
    /// Unsettled deliveries this subscriber holds (handed out or buffered).
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// The wake-up generation seen before the last claim, if that claim found fewer rows
    /// than it asked for: until the generation moves on, another claim would find nothing.
    pub(crate) drained_at: Option<u64>,
    /// Claimed, not yet handed out.
    pub(crate) buffer: VecDeque<Result<Delivery>>,
    /// Wait this long before the next claim (after a database error).
    pub(crate) backoff: Option<Duration>,
}

impl Consumer {
    /// The next delivery, an error (the stream goes on after a pause), or `None` once the
    /// broker is closed.
    pub(crate) async fn next(&mut self) -> Option<Result<Delivery>> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Some(item);
            }
            let shared = self.shared.clone();
            let wake = self.notify.clone();
            let mut notified = pin!(wake.notify.notified());
            let mut closed = pin!(shared.close_notify.notified());
            // Registered before looking, so no wake-up between the look and the wait is lost.
            notified.as_mut().enable();
            closed.as_mut().enable();
            if shared.is_closed() {
                return None;
            }
            let mut wait = shared.options.poll_interval;
            let generation = wake.generation();
            if let Some(backoff) = self.backoff.take() {
                wait = backoff;
            } else if self.drained_at == Some(generation) {
                // Nothing happened since a claim found the queue drained: wait for a wake-up
                // (or the fallback poll, which also catches other processes' changes).
                self.drained_at = None;
            } else {
                let free = self
                    .prefetch
                    .saturating_sub(self.in_flight.load(Ordering::Acquire));
                if free > 0 {
                    let claimed = self.claim(free).await;
                    self.drained_at = match &claimed {
                        Ok(n) if *n < free => Some(generation),
                        _ => None,
                    };
                    match claimed {
                        Ok(0) => match self.next_due().await {
                            Ok(Some(due)) => {
                                let us =
                                    u64::try_from(due.saturating_sub(shared.now_us())).unwrap_or(0);
                                wait = wait.min(Duration::from_micros(us));
                            }
                            Ok(None) => {}
                            Err(e) => return Some(Err(self.failed(e))),
                        },
                        Ok(_) => continue,
                        Err(e) => return Some(Err(self.failed(e))),
                    }
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = closed => {}
                // Time alone makes rows visible (a retry's delay, a dead consumer's lease):
                // look again whatever the generation says.
                _ = tokio::time::sleep(wait) => self.drained_at = None,
            }
        }
    }

    fn failed(&mut self, e: Error) -> Error {
        self.backoff = Some(self.shared.options.poll_interval);
        e
    }

    /// Claims up to `n` visible rows under a lease; returns how many were buffered.
    async fn claim(&mut self, n: usize) -> Result<usize> {
        let shared = &self.shared;
        let now = shared.now_us();
        let until = now.saturating_add(micros(shared.options.lease));
        let stmt = if self.ordered {
            &shared.sql.claim_ordered
        } else {
            &shared.sql.claim_unordered
        };
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, String, i64)> = on_db!(&shared.db, |pool, _begin| {
            let rows = sqlx::query(sql(stmt))
                .bind(&*self.id)
                .bind(until)
                .bind(&*self.subscription)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<i64, _>("id")?,
                        r.try_get::<String, _>("envelope")?,
                        r.try_get::<i64, _>("attempt")?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(db_err)?
        });
        // RETURNING gives no order; hand out in publish order.
        rows.sort_unstable_by_key(|r| r.0);
        let count = rows.len();
        for (id, json, attempt) in rows {
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            let envelope = serde_json::from_str::<Envelope>(&json);
            let acker = SqlAcker {
                shared: self.shared.clone(),
                subscription: self.subscription.clone(),
                consumer: self.id.clone(),
                id,
                attempt,
                ordered: self.ordered,
                in_flight: self.in_flight.clone(),
                prefetch: self.prefetch,
                notify: self.notify.clone(),
                settled: false,
                retried: false,
                json,
            };
            let item = match envelope {
                Ok(envelope) => {
                    let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
                    Ok(Delivery::new(
                        envelope,
                        attempt,
                        self.subscription.clone(),
                        Box::new(acker),
                    ))
                }
                Err(e) => {
                    // Not an envelope (written by something else): it can never be handled,
                    // so it is removed instead of looping forever.
                    tracing::error!(row = id, subscription = %self.subscription, error = %e,
                        "sql broker: removing a row that is not an envelope");
                    let _ = Box::new(acker).ack().await;
                    Err(Error::InvalidEnvelope {
                        reason: format!("queue row {id}: {e}"),
                    })
                }
            };
            self.buffer.push_back(item);
        }
        Ok(count)
    }

    /// When the next delayed message becomes visible or lease runs out, if any.
    async fn next_due(&self) -> Result<Option<i64>> {
        let shared = &self.shared;
        let now = shared.now_us();
        Ok(on_db_read!(&shared.db, |pool| {
            let row = sqlx::query(sql(&shared.sql.next_due))
                .bind(&*self.subscription)
                .bind(now)
                .fetch_one(pool)
                .await
                .map_err(db_err)?;
            row.try_get::<Option<i64>, _>("t").map_err(db_err)?
        }))
    }
}

/// Settles one delivery. Dropped unsettled, it gives the lease back at once (from a spawned
/// task); if the process dies instead, the lease runs out.
struct SqlAcker {
    shared: Arc<Shared>,
    subscription: Arc<str>,
    consumer: Arc<str>,
    id: i64,
    /// The attempt this claim made; with `consumer` it identifies the lease.
    attempt: i64,
    ordered: bool,
    in_flight: Arc<AtomicUsize>,
    /// The subscriber's prefetch: a settlement that frees its last slot wakes it.
    prefetch: usize,
    notify: Arc<Wake>,
    settled: bool,
    /// Settled by a retry: the row comes back later, and the subscriber must look for it.
    retried: bool,
    /// The stored envelope, for a dead letter.
    json: String,
}

#[async_trait]
impl Acker for SqlAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        // Group-committed with the other settlements queued now; returns after the commit.
        self.shared
            .settler
            .settle(Settle::Ack { id: self.id })
            .await?;
        self.settled = true;
        Ok(())
    }

    async fn retry(mut self: Box<Self>, delay: Duration) -> Result<()> {
        let s = &self.shared;
        // +1 µs: the stored time is truncated, so "visible at" is never before now + delay.
        let visible = s.now_us().saturating_add(micros(delay)).saturating_add(1);
        s.settler
            .settle(Settle::Retry {
                id: self.id,
                attempt: self.attempt,
                consumer: self.consumer.clone(),
                visible,
            })
            .await?;
        self.settled = true;
        self.retried = true;
        Ok(())
    }

    async fn dead_letter(
        mut self: Box<Self>,
        reason: String,
        last_error: Option<String>,
    ) -> Result<()> {
        let s = self.shared.clone();
        let envelope: Envelope =
            serde_json::from_str(&self.json).map_err(|e| Error::InvalidEnvelope {
                reason: e.to_string(),
            })?;
        let key = envelope.aggregate_id.clone();
        let letter = DeadLetter::new(
            &*self.subscription,
            envelope,
            reason,
            u32::try_from(self.attempt).unwrap_or(u32::MAX),
            last_error,
            s.options.clock.now(),
        );
        let letter_id = letter.id.to_string();
        if self.ordered {
            // Parked before the letter is stored, so a replay racing with the store finds it.
            on_db!(&s.db, |pool, _begin| {
                sqlx::query(sql(&s.sql.park))
                    .bind(&*self.subscription)
                    .bind(&key)
                    .bind(&letter_id)
                    .bind(self.id)
                    .execute(pool)
                    .await
                    .map_err(db_err)?;
            });
        }
        if let Err(e) = s.dead_letters.put(letter).await {
            if self.ordered {
                let undo = on_db!(&s.db, |pool, _begin| {
                    sqlx::query(sql(&s.sql.unpark))
                        .bind(&*self.subscription)
                        .bind(&letter_id)
                        .fetch_all(pool)
                        .await
                        .map(|_| ())
                });
                if let Err(undo) = undo {
                    tracing::error!(error = %undo, letter = %letter_id,
                        "sql broker: could not lift the park of a dead letter that was not stored");
                }
            }
            // Drop gives the lease back: the message comes again.
            return Err(e);
        }
        on_db!(&s.db, |pool, _begin| {
            sqlx::query(sql(&s.sql.delete_leased))
                .bind(self.id)
                .bind(self.attempt)
                .bind(&*self.consumer)
                .execute(pool)
                .await
                .map_err(db_err)?;
        });
        self.settled = true;
        Ok(())
    }
}

impl Drop for SqlAcker {
    fn drop(&mut self) {
        let held = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !self.settled
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let shared = self.shared.clone();
            let (id, attempt, consumer) = (self.id, self.attempt, self.consumer.clone());
            let notify = self.notify.clone();
            runtime.spawn(async move {
                let released = on_db!(&shared.db, |pool, _begin| {
                    sqlx::query(sql(&shared.sql.release))
                        .bind(id)
                        .bind(attempt)
                        .bind(&*consumer)
                        .execute(pool)
                        .await
                        .map(|_| ())
                });
                if let Err(e) = released {
                    // The lease runs out instead.
                    tracing::warn!(row = id, error = %e, "sql broker: could not release a lease");
                }
                notify.wake();
            });
        }
        // A plain ack of an unordered subscription changes nothing another claim could find,
        // unless the subscriber was at its prefetch and waits for this slot. A retry (its
        // due time), an ordered ack (the key's next message), a release or a dead letter do.
        let quiet_ack = self.settled && !self.retried && !self.ordered && held < self.prefetch;
        if !quiet_ack {
            self.notify.wake();
        }
    }
}
