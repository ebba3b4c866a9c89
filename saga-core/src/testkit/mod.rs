//! Conformance suites that every adapter's tests call, written once.
//!
//! Each suite is a set of `async fn` cases taking the adapter under test, plus a macro that
//! expands to one `#[tokio::test]` per case. An adapter declares what it supports in a
//! features struct; a case it cannot support is skipped with the reason printed.

pub mod broker;
pub mod harness;
pub mod stores;

pub use stores::{StoreFeatures, TestStores};
