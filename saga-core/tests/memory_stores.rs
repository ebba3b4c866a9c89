//! The store conformance suite against the in-memory stores.
//!
//! Run with `cargo test -p saga-core --all-features --test memory_stores`.
#![cfg(feature = "testkit")]

use saga_core::testkit::stores::TestStores;

async fn memory_stores() -> TestStores {
    TestStores::in_memory()
}

saga_core::store_conformance_tests!(memory_stores);
