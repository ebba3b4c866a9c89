//! The store conformance suite: one set of cases every store adapter passes.
//!
//! An adapter's test file writes a factory, an `async fn() -> TestStores` that returns
//! **fresh, empty** stores (a new schema or database per call) wired to a [`ManualClock`], and
//! calls [`store_conformance_tests!`](crate::store_conformance_tests) once. The macro expands
//! to one `#[test]` per case, each running on a two-worker multi-thread tokio runtime (what
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` would build), calling the
//! factory and then the case.
//!
//! ```ignore
//! // tests/conformance.rs of an adapter crate (dev-dependency: saga-core, feature "testkit")
//! use std::sync::Arc;
//! use saga_core::testkit::stores::{StoreFeatures, TestStores};
//! use saga_core::ManualClock;
//!
//! async fn sqlite_stores() -> TestStores {
//!     let clock = ManualClock::at_epoch();
//!     let db = my_adapter::Db::fresh_in_memory(Arc::new(clock.clone())).await.unwrap();
//!     TestStores {
//!         outbox: Arc::new(db.outbox()),
//!         inbox: Arc::new(db.inbox()),
//!         sagas: Arc::new(db.sagas()),
//!         saga_log: Arc::new(db.sagas()),
//!         dead_letters: Arc::new(db.dead_letters()),
//!         idempotency: Arc::new(db.idempotency()),
//!         clock,
//!         features: StoreFeatures::all().with_concurrent_writers(false),
//!     }
//! }
//!
//! saga_core::store_conformance_tests!(sqlite_stores);
//! ```
//!
//! To run the suite for two backends in one test crate, call the macro in two modules.
//!
//! Every case is also a public `async fn(TestStores)` here, for an adapter that wants to run
//! one on its own. A case panics with a message saying what broke. A case the adapter cannot
//! support (see [`StoreFeatures`]) prints `SKIP <case>: <reason>` and returns. Names and ids
//! are unique per case (UUID v7), and no case waits by sleeping: time moves with
//! [`TestStores::clock`].

use std::future::Future;
use std::sync::Arc;

use crate::clock::{ManualClock, SharedClock};
use crate::dead_letter::DeadLetterStore;
use crate::idempotency::IdempotencyStore;
use crate::inbox::Inbox;
use crate::memory::dead_letter::MemoryDeadLetterStore;
use crate::memory::idempotency::MemoryIdempotencyStore;
use crate::memory::inbox::MemoryInbox;
use crate::memory::outbox::MemoryOutbox;
use crate::memory::saga_store::MemorySagaStore;
use crate::outbox::OutboxStore;
use crate::saga::store::{SagaLogStore, SagaStore};

#[cfg(test)]
mod catches;
mod dead_letters;
mod idempotency;
mod inbox;
mod outbox;
mod sagas;
mod support;

pub use dead_letters::*;
pub use idempotency::*;
pub use inbox::*;
pub use outbox::*;
pub use sagas::*;

/// What an adapter supports; a case needing something it lacks is skipped with the reason.
///
/// Marked `#[non_exhaustive]` so new capabilities do not break adapters: start from
/// [`StoreFeatures::all`] and switch off what does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreFeatures {
    /// Concurrent calls really race (a connection pool against a database that allows
    /// concurrent writers). When false (one connection, a single-writer file), the cases
    /// racing N tasks on one record are skipped: serialised calls prove nothing about atomicity.
    pub concurrent_writers: bool,
    /// The idempotency store judges `expires_at` by the clock wired into [`TestStores`] (the
    /// [`ManualClock`]), so moving that clock expires keys. False if it reads the database's
    /// own time.
    pub idempotency_expiry: bool,
}

impl StoreFeatures {
    /// Everything supported (what the in-memory stores declare).
    pub fn all() -> Self {
        Self {
            concurrent_writers: true,
            idempotency_expiry: true,
        }
    }

    /// Sets [`StoreFeatures::concurrent_writers`].
    #[must_use]
    pub fn with_concurrent_writers(mut self, yes: bool) -> Self {
        self.concurrent_writers = yes;
        self
    }

    /// Sets [`StoreFeatures::idempotency_expiry`].
    #[must_use]
    pub fn with_idempotency_expiry(mut self, yes: bool) -> Self {
        self.idempotency_expiry = yes;
        self
    }
}

impl Default for StoreFeatures {
    fn default() -> Self {
        Self::all()
    }
}

/// The stores under test, fresh and empty, all reading time from `clock`.
///
/// `sagas` and `saga_log` are usually the same store behind two handles.
#[derive(Clone)]
pub struct TestStores {
    /// The outbox.
    pub outbox: Arc<dyn OutboxStore>,
    /// The inbox.
    pub inbox: Arc<dyn Inbox>,
    /// Saga instances.
    pub sagas: Arc<dyn SagaStore>,
    /// Saga logs.
    pub saga_log: Arc<dyn SagaLogStore>,
    /// Dead letters.
    pub dead_letters: Arc<dyn DeadLetterStore>,
    /// Idempotency keys.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The clock every store reads; cases move it instead of sleeping.
    pub clock: ManualClock,
    /// What the adapter supports.
    pub features: StoreFeatures,
}

impl std::fmt::Debug for TestStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStores")
            .field("clock", &self.clock)
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

impl TestStores {
    /// The in-memory stores, on a [`ManualClock`] standing at [`ManualClock::at_epoch`].
    pub fn in_memory() -> Self {
        let clock = ManualClock::at_epoch();
        let shared: SharedClock = Arc::new(clock.clone());
        let sagas = MemorySagaStore::new();
        Self {
            outbox: Arc::new(MemoryOutbox::new(Arc::clone(&shared))),
            inbox: Arc::new(MemoryInbox::new()),
            sagas: Arc::new(sagas.clone()),
            saga_log: Arc::new(sagas),
            dead_letters: Arc::new(MemoryDeadLetterStore::new(Arc::clone(&shared))),
            idempotency: Arc::new(MemoryIdempotencyStore::new(shared)),
            clock,
            features: StoreFeatures::all(),
        }
    }
}

/// Runs one case on a fresh two-worker multi-thread runtime. Used by
/// [`store_conformance_tests!`](crate::store_conformance_tests); not part of the API.
#[doc(hidden)]
pub fn __run<F: Future<Output = ()>>(case: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the tokio runtime for a store case: {e}"))
        .block_on(case);
}

/// Expands to one test per case of the store conformance suite.
///
/// The argument is a factory: a path (or any expression) callable as `factory()` that
/// returns a future of [`TestStores`](crate::testkit::stores::TestStores), typically
/// `async fn factory() -> TestStores`. It is called once per case and must return fresh,
/// empty stores. For stores on a server, pass `harness: EXPR` instead, a
/// [`Harness`](crate::testkit::harness::Harness) that can skip a case (no server configured)
/// and drops what the case created afterwards. Needs saga-core's `testkit` feature; the calling crate needs no tokio
/// dependency of its own. Call it once per module (test names are the case names).
///
/// ```ignore
/// async fn stores() -> saga_core::testkit::stores::TestStores {
///     saga_core::testkit::stores::TestStores::in_memory()
/// }
/// saga_core::store_conformance_tests!(stores);
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    (harness: $harness:expr $(,)?) => {
        $crate::__store_conformance_cases! { $harness;
            outbox_append_returns_increasing_seqs,
            outbox_unpublished_in_seq_order,
            outbox_mark_published_hides_records,
            outbox_prune_removes_only_published_before,
            outbox_pending_count_follows_marks,
            inbox_first_mark_wins,
            inbox_consumers_are_independent,
            inbox_concurrent_marks_have_one_winner,
            saga_create_load_round_trip,
            saga_create_twice_is_already_exists,
            saga_load_unknown_is_not_found,
            saga_save_with_current_version_succeeds,
            saga_save_with_stale_version_is_refused,
            saga_concurrent_saves_have_one_winner,
            saga_due_returns_due_sagas_soonest_first,
            saga_list_filters_newest_first,
            saga_log_keeps_append_order_per_saga,
            dead_letter_put_get_list,
            dead_letter_unknown_is_not_found,
            dead_letter_replay_happens_once,
            dead_letter_discarded_cannot_be_replayed,
            dead_letter_pending_count_follows_status,
            dead_letter_concurrent_replays_have_one_winner,
            idempotency_new_key_then_in_flight,
            idempotency_completed_key_returns_response,
            idempotency_other_fingerprint_is_mismatch,
            idempotency_abandon_releases_key,
            idempotency_expired_key_is_new,
            idempotency_concurrent_begins_have_one_new,
            idempotency_scopes_are_independent,
            idempotency_complete_unknown_is_not_found,
        }
    };
    ($factory:expr $(,)?) => {
        $crate::store_conformance_tests!(harness: $crate::testkit::harness::Factory($factory));
    };
}

/// The expansion of [`store_conformance_tests!`]: one test per listed case.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::harness::run::<$crate::testkit::stores::TestStores, _, _, _>(
                    stringify!($case),
                    $harness,
                    $crate::testkit::stores::$case,
                );
            }
        )*
    };
}
