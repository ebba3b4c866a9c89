//! In-memory [`IdempotencyStore`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::{SharedClock, SystemClock};
use crate::error::{Error, Result};
use crate::idempotency::{BeginOutcome, IdempotencyStore, StoredResponse};

/// One claimed key.
#[derive(Debug, Clone)]
struct Entry {
    fingerprint: String,
    expires_at: DateTime<Utc>,
    /// `None` while the request runs, the response once completed.
    response: Option<StoredResponse>,
}

type Keys = HashMap<(String, String), Entry>;

/// Idempotency keys by `(scope, key)` in a map. Clones share the same keys.
///
/// A key whose `expires_at` is at or before the clock's now counts as new; expired keys are
/// replaced when begun again, and [`MemoryIdempotencyStore::purge_expired`] drops the rest.
///
/// ```
/// # futures_util::FutureExt::now_or_never(async {
/// use saga_core::IdempotencyStore;
/// use saga_core::idempotency::{BeginOutcome, StoredResponse};
/// use saga_core::memory::idempotency::MemoryIdempotencyStore;
///
/// let store = MemoryIdempotencyStore::default();
/// let expires = chrono::Utc::now() + chrono::Duration::hours(24);
/// assert_eq!(store.begin("POST /orders", "k1", "sha256:ab", expires).await?, BeginOutcome::New);
/// let response = StoredResponse { status: 201, content_type: "application/json".into(),
///                                 body: br#"{"id":1}"#.to_vec() };
/// store.complete("POST /orders", "k1", &response).await?;
/// assert_eq!(store.begin("POST /orders", "k1", "sha256:ab", expires).await?,
///            BeginOutcome::Completed(response));
/// assert_eq!(store.begin("POST /orders", "k1", "sha256:cd", expires).await?,
///            BeginOutcome::Mismatch);
/// # Ok::<(), saga_core::Error>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryIdempotencyStore {
    keys: Arc<Mutex<Keys>>,
    clock: SharedClock,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryIdempotencyStore {
    /// An empty store judging expiry by `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            keys: Arc::default(),
            clock,
        }
    }

    /// Drops every expired key; returns how many. Call it now and then in a long-lived
    /// process, or never in a test.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        let mut keys = self.lock();
        let len = keys.len();
        keys.retain(|_, e| e.expires_at > now);
        len - keys.len()
    }

    fn lock(&self) -> MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn id(scope: &str, key: &str) -> (String, String) {
    (scope.to_owned(), key.to_owned())
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<BeginOutcome> {
        let now = self.clock.now();
        let mut keys = self.lock();
        if let Some(entry) = keys.get(&id(scope, key)).filter(|e| e.expires_at > now) {
            return Ok(if entry.fingerprint != fingerprint {
                BeginOutcome::Mismatch
            } else {
                match &entry.response {
                    Some(response) => BeginOutcome::Completed(response.clone()),
                    None => BeginOutcome::InFlight,
                }
            });
        }
        keys.insert(
            id(scope, key),
            Entry {
                fingerprint: fingerprint.to_owned(),
                expires_at,
                response: None,
            },
        );
        Ok(BeginOutcome::New)
    }

    async fn complete(&self, scope: &str, key: &str, response: &StoredResponse) -> Result<()> {
        let mut keys = self.lock();
        let entry = keys
            .get_mut(&id(scope, key))
            .ok_or_else(|| Error::NotFound {
                entity: "idempotency key",
                id: format!("{scope}/{key}"),
            })?;
        entry.response = Some(response.clone());
        Ok(())
    }

    async fn abandon(&self, scope: &str, key: &str) -> Result<()> {
        let mut keys = self.lock();
        // Only an in-flight key is released: a stored response is never forgotten early, and
        // abandoning an unknown key is a no-op.
        if keys
            .get(&id(scope, key))
            .is_some_and(|e| e.response.is_none())
        {
            keys.remove(&id(scope, key));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use chrono::Duration;
    use futures_util::FutureExt;

    #[test]
    fn purge_drops_only_expired_keys() {
        let clock = ManualClock::at_epoch();
        let store = MemoryIdempotencyStore::new(Arc::new(clock.clone()));
        let now = clock.now();
        let begun = async {
            store
                .begin("s", "short", "f", now + Duration::seconds(1))
                .await?;
            store
                .begin("s", "long", "f", now + Duration::hours(1))
                .await
        }
        .now_or_never();
        assert!(
            matches!(begun, Some(Ok(BeginOutcome::New))),
            "got {begun:?}"
        );
        clock.advance(Duration::seconds(1));
        assert_eq!(store.purge_expired(), 1);
        let again = store
            .begin("s", "long", "f", now + Duration::hours(1))
            .now_or_never();
        assert!(
            matches!(again, Some(Ok(BeginOutcome::InFlight))),
            "got {again:?}"
        );
    }

    #[test]
    fn abandon_keeps_a_completed_response() {
        let store = MemoryIdempotencyStore::default();
        let expires = Utc::now() + Duration::hours(1);
        let response = StoredResponse {
            status: 200,
            content_type: "text/plain".into(),
            body: b"ok".to_vec(),
        };
        let outcome = async {
            store.begin("s", "k", "f", expires).await?;
            store.complete("s", "k", &response).await?;
            store.abandon("s", "k").await?;
            store.begin("s", "k", "f", expires).await
        }
        .now_or_never();
        assert_eq!(
            outcome.map(|r| r.ok()),
            Some(Some(BeginOutcome::Completed(response)))
        );
    }
}
