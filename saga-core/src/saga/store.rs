//! Storage of saga instances (with an optimistic version check) and of saga logs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::instance::{SagaInstance, SagaStatus};
use super::log::SagaLogEntry;
use crate::error::Result;

/// Which instances to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SagaFilter {
    /// Only this definition's.
    pub saga: Option<String>,
    /// Only in this status.
    pub status: Option<SagaStatus>,
    /// At most this many, newest first; `None` for all.
    pub limit: Option<usize>,
}

/// Storage of saga instances.
#[async_trait]
pub trait SagaStore: Send + Sync {
    /// Stores a new instance; `Error::AlreadyExists` if its id is taken.
    async fn create(&self, instance: &SagaInstance) -> Result<()>;
    /// Loads an instance; `Error::NotFound` if there is none.
    async fn load(&self, id: Uuid) -> Result<SagaInstance>;
    /// Replaces the stored instance if its version is still `expected_version`; otherwise
    /// `Error::VersionConflict` and nothing changes. The caller passes the instance with its
    /// new version (normally `expected_version + 1`).
    async fn save(&self, instance: &SagaInstance, expected_version: u64) -> Result<()>;
    /// Non-terminal instances whose deadline is at or before `now`, soonest first.
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaInstance>>;
    /// Instances matching `filter`, newest first.
    async fn list(&self, filter: &SagaFilter) -> Result<Vec<SagaInstance>>;
}

/// Storage of saga logs (append-only).
#[async_trait]
pub trait SagaLogStore: Send + Sync {
    /// Appends entries, keeping their order.
    async fn append(&self, entries: &[SagaLogEntry]) -> Result<()>;
    /// A saga's entries in the order they were appended.
    async fn entries(&self, saga_id: Uuid) -> Result<Vec<SagaLogEntry>>;
}
