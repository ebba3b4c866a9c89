//! How an adapter's tests prepare one conformance case and clean up after it.
//!
//! The suites' macros take either a plain factory (`async fn() -> TestBroker`) or a
//! [`Harness`]: `setup` may answer `None` to skip the case (for a server-backed adapter whose
//! URL is not set; it prints why), and `teardown` runs after the case, also when the case
//! panicked, to remove the exchange, stream or schema the case used.
//!
//! ```
//! use saga_core::testkit::harness::Harness;
//! use saga_core::testkit::stores::TestStores;
//!
//! struct InMemory;
//! impl Harness<TestStores> for InMemory {
//!     type Guard = ();
//!     async fn setup(&self, _case: &'static str) -> Option<(TestStores, ())> {
//!         Some((TestStores::in_memory(), ()))
//!     }
//!     async fn teardown(&self, _guard: ()) {}
//! }
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

/// Prepares the subject of one case (`T` is a `TestBroker` or `TestStores`) and cleans up.
pub trait Harness<T>: Send + Sync {
    /// What `teardown` needs (the adapter's own handle, a schema name, ...).
    type Guard: Send;

    /// The subject for `case` and its guard, or `None` to skip the case; a harness that
    /// skips prints the reason (`SKIP <case>: <why>`).
    fn setup(&self, case: &'static str) -> impl Future<Output = Option<(T, Self::Guard)>> + Send;

    /// Removes what the case created; runs also after a panicking case.
    fn teardown(&self, guard: Self::Guard) -> impl Future<Output = ()> + Send;
}

/// A plain factory (`async fn() -> T`) as a harness that never skips and has nothing to
/// clean up.
#[derive(Debug, Clone, Copy)]
pub struct Factory<F>(pub F);

impl<T, F, Fut> Harness<T> for Factory<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = T> + Send,
    T: Send,
{
    type Guard = ();

    async fn setup(&self, _case: &'static str) -> Option<(T, ())> {
        Some(((self.0)().await, ()))
    }

    async fn teardown(&self, _guard: ()) {}
}

/// Runs one case: a fresh two-worker multi-thread tokio runtime, setup, the case, teardown
/// (also after a panic, which is then resumed). Used by the suites' macros.
#[doc(hidden)]
pub fn run<T, H, C, Fut>(case: &'static str, harness: H, body: C)
where
    H: Harness<T>,
    C: FnOnce(T) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime for {case}: {e}"));
    runtime.block_on(async {
        let Some((subject, guard)) = harness.setup(case).await else {
            return;
        };
        let outcome = AssertUnwindSafe(body(subject)).catch_unwind().await;
        harness.teardown(guard).await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}
