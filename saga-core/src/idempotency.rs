//! HTTP idempotency keys (the IETF `Idempotency-Key` header draft).
//!
//! A request with a key is first *begun*: the store answers whether it is new, still running,
//! already answered (with the stored response) or a different request under the same key.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A stored response to replay for a repeated request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status code.
    pub status: u16,
    /// Content type of the body.
    pub content_type: String,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginOutcome {
    /// First time: the caller owns the key now and must `complete` or `abandon` it.
    New,
    /// The same request is still being handled elsewhere: answer 409 or wait and ask again.
    InFlight,
    /// The same request was answered before: send this response again.
    Completed(StoredResponse),
    /// The key was used for a different request (another fingerprint): 422.
    Mismatch,
}

/// Storage of idempotency keys, scoped by a `scope` (e.g. the route) so services can share one.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request whose body hashes to `fingerprint`, expiring at `expires_at`.
    /// Exactly one of N concurrent callers with a new key gets [`BeginOutcome::New`]. An expired
    /// key counts as new.
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<BeginOutcome>;
    /// Stores the response for a key begun with `New`.
    async fn complete(&self, scope: &str, key: &str, response: &StoredResponse) -> Result<()>;
    /// Releases a key begun with `New` whose request failed before any effect, so a retry may run.
    async fn abandon(&self, scope: &str, key: &str) -> Result<()>;
}
