//! The store conformance suite against Postgres (a fresh schema per case, dropped after).
//! Needs `DATABASE_URL`; without it each case prints SKIP (and fails when CI=true).
#![cfg(feature = "postgres")]

mod support;

use std::sync::Arc;

use saga_core::testkit::harness::Harness;
use saga_core::testkit::stores::{StoreFeatures, TestStores};

/// Each case on its own schema, skipped without `DATABASE_URL`; the schema is dropped after
/// the case, also when it panicked.
struct Postgres;

impl Harness<TestStores> for Postgres {
    type Guard = Arc<support::SchemaGuard>;

    async fn setup(&self, case: &'static str) -> Option<(TestStores, Self::Guard)> {
        let url = support::database_url(case)?;
        let (clock, shared) = support::manual();
        let (store, guard) = support::pg_store(&url, shared, 16).await;
        let stores = TestStores {
            outbox: Arc::new(store.clone()),
            inbox: Arc::new(store.clone()),
            sagas: Arc::new(store.clone()),
            saga_log: Arc::new(store.clone()),
            dead_letters: Arc::new(store.clone()),
            idempotency: Arc::new(store),
            clock,
            features: StoreFeatures::all(),
        };
        Some((stores, guard))
    }

    async fn teardown(&self, guard: Self::Guard) {
        drop(guard);
    }
}

saga_core::store_conformance_tests!(harness: Postgres);
