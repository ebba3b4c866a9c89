//! Helpers the store cases share: failing with a message, unique names, skips, races.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::clock::Clock;
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};

use super::TestStores;

/// How often a raced call is repeated after a transient error (a busy database, a
/// serialisation failure) before the error counts as the answer.
const TRANSIENT_RETRIES: usize = 100;

/// Unwraps a store call, failing the case with what was being done.
pub(super) trait Must<T> {
    /// The value, or a panic naming `what` and the error.
    fn must(self, what: &str) -> T;
}

impl<T> Must<T> for Result<T> {
    #[track_caller]
    fn must(self, what: &str) -> T {
        match self {
            Ok(value) => value,
            Err(e) => panic!("{what} failed: {e} (kind: {})", e.kind()),
        }
    }
}

/// The error of a call that had to fail, or a panic naming `what` and the value it returned.
#[track_caller]
pub(super) fn must_fail<T: Debug>(result: Result<T>, what: &str) -> Error {
    match result {
        Ok(value) => panic!("{what} should have failed, but returned {value:?}"),
        Err(e) => e,
    }
}

/// A name no other case (or run) uses, so cases can share one database.
pub(super) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::now_v7().simple())
}

/// Reports a case that does not apply to the adapter, with the reason.
pub(super) fn skip(case: &str, reason: &str) {
    eprintln!("SKIP {case}: {reason}");
}

/// The clock's time now.
pub(super) fn now(stores: &TestStores) -> DateTime<Utc> {
    stores.clock.now()
}

/// An expiry no clock reaches during a test (a century ahead), so a key that is meant to
/// stay valid stays valid even if an adapter compares with a real clock.
pub(super) fn far_future(stores: &TestStores) -> DateTime<Utc> {
    now(stores) + Duration::days(36_500)
}

/// An envelope of `aggregate`, stamped with the test clock (whole seconds, so every backend
/// stores the timestamp exactly).
pub(super) fn envelope(stores: &TestStores, aggregate: &str, n: u32) -> Envelope {
    Envelope::new(
        "conformance.happened",
        aggregate,
        serde_json::json!({ "n": n }),
    )
    .with_timestamp(now(stores))
    .with_header(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
}

/// Runs `call(i)` for `i` in `0..n` on `n` tasks released together by a barrier, and returns
/// every answer. A transient error is retried (yielding, never sleeping), as a real caller
/// would; any other answer is final.
pub(super) async fn race<T, F, Fut>(n: usize, call: F) -> Vec<Result<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let call = Arc::new(call);
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let call = Arc::clone(&call);
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            let mut retries = 0;
            loop {
                match call(i).await {
                    Err(e) if e.kind() == ErrorKind::Transient && retries < TRANSIENT_RETRIES => {
                        retries += 1;
                        tokio::task::yield_now().await;
                    }
                    answer => return answer,
                }
            }
        });
    }
    let mut answers = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(answer) => answers.push(answer),
            Err(e) => panic!("a racing task did not finish: {e}"),
        }
    }
    answers
}
