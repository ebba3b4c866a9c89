//! The store conformance suite against Postgres (a fresh schema per case, dropped after).
//! Needs `DATABASE_URL`; without it each case prints SKIP (and fails when CI=true).
#![cfg(feature = "postgres")]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use saga_core::Inbox;
use saga_core::testkit::stores::{StoreFeatures, TestStores};
use uuid::Uuid;

/// Drops the schema when the stores are dropped.
struct Kept {
    inner: Arc<dyn Inbox>,
    _guard: Option<Arc<support::SchemaGuard>>,
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

async fn pg_stores() -> TestStores {
    let Some(url) = support::database_url("postgres_stores") else {
        // No server: the in-memory stores keep the cases meaningful to run; the SKIP line says so.
        return TestStores::in_memory();
    };
    let (clock, shared) = support::manual();
    let (store, guard) = support::pg_store(&url, shared, 16).await;
    TestStores {
        outbox: Arc::new(store.clone()),
        inbox: Arc::new(Kept {
            inner: Arc::new(store.clone()),
            _guard: Some(guard),
        }),
        sagas: Arc::new(store.clone()),
        saga_log: Arc::new(store.clone()),
        dead_letters: Arc::new(store.clone()),
        idempotency: Arc::new(store),
        clock,
        features: StoreFeatures::all(),
    }
}

saga_core::store_conformance_tests!(pg_stores);
