//! Redis as the analytics service's fast aggregate store (`--redis-url`).
//!
//! The durable figures stay in the service's database, folded in the same transaction that
//! records each event once (see [`super::analytics`]). After that commit the same change is
//! applied to Redis as deltas in one `MULTI` (event count +1; the order's old status -1, new
//! status +1; revenue moved accordingly), and `GET /metrics` and `GET /events/stats` read
//! Redis. A crash between the commit and the Redis update would leave Redis one event
//! short, and Redis may lose data on its own restart, so the figures are reconciled: Redis is
//! overwritten from the database at start and every ten seconds. Redis is never the source
//! of truth; the database is.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use super::analytics::{
    EventStats, MetricsResponse, OrderChange, compose_figures, event_stats_of, order_figures,
};
use crate::db::Db;
use crate::error::AppError;

/// The figures kept in Redis under `<prefix>:analytics:*`.
#[derive(Clone)]
pub struct FiguresCache {
    conn: ConnectionManager,
    events_key: String,
    orders_key: String,
}

impl std::fmt::Debug for FiguresCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FiguresCache")
            .field("events_key", &self.events_key)
            .finish_non_exhaustive()
    }
}

/// The field of the orders hash a status counts under.
fn status_field(status: &str) -> Option<&'static str> {
    match status {
        "confirmed" => Some("confirmed"),
        "failed" | "cancelled" => Some("failed"),
        _ => None,
    }
}

/// The deltas one order change makes to the orders hash.
pub fn deltas(change: &OrderChange) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    let (new_status, new_total) = (&change.after.0, change.after.1);
    match &change.before {
        None => out.push(("orders", 1)),
        Some((old_status, old_total)) => {
            if let Some(f) = status_field(old_status) {
                out.push((f, -1));
            }
            if old_status == "confirmed" {
                out.push(("revenue_cents", -old_total));
            }
        }
    }
    if let Some(f) = status_field(new_status) {
        out.push((f, 1));
    }
    if new_status == "confirmed" {
        out.push(("revenue_cents", new_total));
    }
    out
}

fn redis_err(e: redis::RedisError) -> AppError {
    AppError::Config(format!("redis: {e}"))
}

impl FiguresCache {
    /// Connects (the connection reconnects by itself afterwards).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, AppError> {
        let client = redis::Client::open(url).map_err(redis_err)?;
        let conn = ConnectionManager::new(client).await.map_err(redis_err)?;
        Ok(Self {
            conn,
            events_key: format!("{prefix}:analytics:events"),
            orders_key: format!("{prefix}:analytics:orders"),
        })
    }

    /// Applies one recorded event's change; a failure is logged and healed by the next
    /// reconciliation.
    pub async fn apply(&self, event_type: &str, change: Option<&OrderChange>) {
        let mut pipe = redis::pipe();
        pipe.atomic().hincr(&self.events_key, event_type, 1);
        for (field, delta) in change.map(deltas).unwrap_or_default() {
            pipe.hincr(&self.orders_key, field, delta);
        }
        let mut conn = self.conn.clone();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %e, "analytics: updating redis failed; the next reconciliation heals it");
        }
    }

    /// Overwrites Redis with the database's figures.
    pub async fn reconcile(&self, db: &Db) -> Result<(), AppError> {
        let stats = event_stats_of(db).await?;
        let (orders, confirmed, failed, revenue) = order_figures(db).await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&self.events_key)
            .del(&self.orders_key)
            .hset_multiple(
                &self.orders_key,
                &[
                    ("orders", orders),
                    ("confirmed", confirmed),
                    ("failed", failed),
                    ("revenue_cents", revenue),
                ],
            );
        if !stats.events_by_type.is_empty() {
            let counts: Vec<(String, i64)> = stats.events_by_type.into_iter().collect();
            pipe.hset_multiple(&self.events_key, &counts);
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(redis_err)
    }

    /// Reconciles now and then every `period` until `shutdown`.
    pub async fn reconcile_every(self, db: Db, period: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.reconcile(&db).await {
                tracing::warn!(error = %e, "analytics: reconciling redis failed");
            }
        }
    }

    /// The event counts in Redis (`None` if Redis does not answer).
    pub async fn event_stats(&self) -> Option<EventStats> {
        let mut conn = self.conn.clone();
        let counts: BTreeMap<String, i64> = conn.hgetall(&self.events_key).await.ok()?;
        Some(EventStats {
            total_events: counts.values().sum(),
            events_by_type: counts,
        })
    }

    /// The seed's figures from Redis (`None` if Redis does not answer).
    pub async fn figures(&self) -> Option<MetricsResponse> {
        let stats = self.event_stats().await?;
        let mut conn = self.conn.clone();
        let orders: BTreeMap<String, i64> = conn.hgetall(&self.orders_key).await.ok()?;
        let get = |k: &str| orders.get(k).copied().unwrap_or(0);
        Some(compose_figures(
            &stats,
            get("orders"),
            get("confirmed"),
            get("failed"),
            get("revenue_cents"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(before: Option<(&str, i64)>, after: (&str, i64)) -> OrderChange {
        OrderChange {
            before: before.map(|(s, t)| (s.to_owned(), t)),
            after: (after.0.to_owned(), after.1),
        }
    }

    #[test]
    fn deltas_follow_the_status() {
        assert_eq!(deltas(&change(None, ("pending", 500))), vec![("orders", 1)]);
        assert_eq!(
            deltas(&change(Some(("pending", 500)), ("confirmed", 500))),
            vec![("confirmed", 1), ("revenue_cents", 500)]
        );
        assert_eq!(
            deltas(&change(Some(("confirmed", 500)), ("cancelled", 500))),
            vec![("confirmed", -1), ("revenue_cents", -500), ("failed", 1)]
        );
        // A repeat of a status that did not change nets to nothing.
        let same = deltas(&change(Some(("confirmed", 500)), ("confirmed", 500)));
        let net: i64 = same
            .iter()
            .filter(|(f, _)| *f == "confirmed")
            .map(|(_, d)| d)
            .sum();
        assert_eq!(net, 0);
    }
}
