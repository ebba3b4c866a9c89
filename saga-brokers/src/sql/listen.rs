//! Postgres `LISTEN`: wakes this process's consumers when another process publishes.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use super::shared::Shared;

/// Listens on `channel` until `stop` is notified or the broker is gone. Reconnects with
/// backoff; after any gap it wakes every consumer, since notifications may have been missed.
pub(crate) async fn listen(pool: PgPool, channel: String, shared: Weak<Shared>, stop: Arc<Notify>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.notified() => return,
            r = connected => match r {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "sql broker: LISTEN failed, retrying");
                    tokio::select! {
                        _ = stop.notified() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        delay = Duration::from_millis(100);
        match shared.upgrade() {
            Some(s) => s.wake_all(),
            None => return,
        }
        loop {
            let next = tokio::select! {
                _ = stop.notified() => return,
                r = listener.try_recv() => r,
            };
            let Some(s) = shared.upgrade() else {
                return;
            };
            match next {
                Ok(Some(n)) => s.wake(n.payload()),
                // The connection dropped; the next `try_recv` reconnects.
                Ok(None) => s.wake_all(),
                Err(e) => {
                    tracing::warn!(error = %e, "sql broker: LISTEN connection lost");
                    s.wake_all();
                    break;
                }
            }
        }
    }
}
