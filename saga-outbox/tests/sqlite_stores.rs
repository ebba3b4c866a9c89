//! The store conformance suite against SQLite (a fresh file per case).
#![cfg(feature = "sqlite")]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use saga_core::Inbox;
use saga_core::testkit::stores::{StoreFeatures, TestStores};
use uuid::Uuid;

/// Keeps the temporary directory alive as long as the stores.
struct Kept {
    inner: saga_outbox::sqlite::SqliteStore,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Inbox for Kept {
    async fn try_mark(&self, consumer: &str, event_id: Uuid) -> saga_core::Result<bool> {
        self.inner.try_mark(consumer, event_id).await
    }
    async fn is_processed(&self, consumer: &str, event_id: Uuid) -> saga_core::Result<bool> {
        self.inner.is_processed(consumer, event_id).await
    }
}

async fn sqlite_stores() -> TestStores {
    let (clock, shared) = support::manual();
    let (store, dir) = support::sqlite_store(shared).await;
    TestStores {
        outbox: Arc::new(store.clone()),
        inbox: Arc::new(Kept {
            inner: store.clone(),
            _dir: dir,
        }),
        sagas: Arc::new(store.clone()),
        saga_log: Arc::new(store.clone()),
        dead_letters: Arc::new(store.clone()),
        idempotency: Arc::new(store),
        clock,
        // One writer connection: racing writers are serialised, so the race cases prove nothing.
        features: StoreFeatures::all().with_concurrent_writers(false),
    }
}

saga_core::store_conformance_tests!(sqlite_stores);
