//! In-memory [`SagaStore`] and [`SagaLogStore`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::saga::instance::SagaInstance;
use crate::saga::log::SagaLogEntry;
use crate::saga::store::{SagaFilter, SagaLogStore, SagaStore};

const ENTITY: &str = "saga";

/// Saga instances by id, and each saga's log, in memory. Clones share the same data.
///
/// [`SagaStore::save`] is an optimistic compare-and-swap on [`SagaInstance::version`], done
/// under one lock, so of N concurrent saves from the same loaded version exactly one wins.
/// The store reads no clock: `due` is given its `now` by the caller.
///
/// ```
/// # futures_util::FutureExt::now_or_never(async {
/// use saga_core::memory::saga_store::MemorySagaStore;
/// use saga_core::saga::{SagaInstance, SagaStatus, SagaStore};
/// use saga_core::ErrorKind;
///
/// let store = MemorySagaStore::new();
/// let now = chrono::Utc::now();
/// let mut saga = SagaInstance {
///     id: uuid::Uuid::now_v7(), saga: "order".into(), aggregate_id: "order-1".into(),
///     status: SagaStatus::Running, steps: vec![], data: std::sync::Arc::new(serde_json::json!({})),
///     failure: None, deadline: None, unsent: vec![], version: 0, created_at: now, updated_at: now,
/// };
/// store.create(&saga).await?;
/// saga.version = 1;
/// store.save(&saga, 0).await?;                       // version 0 -> 1
/// let stale = store.save(&saga, 0).await;            // someone saved in between
/// assert_eq!(stale.unwrap_err().kind(), ErrorKind::Conflict);
/// # Ok::<(), saga_core::Error>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySagaStore {
    instances: Arc<Mutex<BTreeMap<Uuid, SagaInstance>>>,
    logs: Arc<Mutex<HashMap<Uuid, Vec<SagaLogEntry>>>>,
}

impl MemorySagaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn instances(&self) -> MutexGuard<'_, BTreeMap<Uuid, SagaInstance>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn logs(&self) -> MutexGuard<'_, HashMap<Uuid, Vec<SagaLogEntry>>> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_found(id: Uuid) -> Error {
    Error::NotFound {
        entity: ENTITY,
        id: id.to_string(),
    }
}

#[async_trait]
impl SagaStore for MemorySagaStore {
    async fn create(&self, instance: &SagaInstance) -> Result<()> {
        let mut instances = self.instances();
        if instances.contains_key(&instance.id) {
            return Err(Error::AlreadyExists {
                entity: ENTITY,
                id: instance.id.to_string(),
            });
        }
        instances.insert(instance.id, instance.clone());
        Ok(())
    }

    async fn load(&self, id: Uuid) -> Result<SagaInstance> {
        self.instances()
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    async fn save(&self, instance: &SagaInstance, expected_version: u64) -> Result<()> {
        let mut instances = self.instances();
        let stored = instances
            .get_mut(&instance.id)
            .ok_or_else(|| not_found(instance.id))?;
        if stored.version != expected_version {
            return Err(Error::VersionConflict {
                entity: ENTITY,
                id: instance.id.to_string(),
                expected: expected_version,
                actual: stored.version,
            });
        }
        *stored = instance.clone();
        Ok(())
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaInstance>> {
        let instances = self.instances();
        let mut due: Vec<&SagaInstance> = instances
            .values()
            .filter(|i| !i.is_terminal() && i.deadline.is_some_and(|d| d <= now))
            .collect();
        due.sort_by_key(|i| (i.deadline, i.id));
        Ok(due.into_iter().take(limit).cloned().collect())
    }

    async fn list(&self, filter: &SagaFilter) -> Result<Vec<SagaInstance>> {
        let instances = self.instances();
        let mut out: Vec<&SagaInstance> = instances
            .values()
            .filter(|i| filter.saga.as_ref().is_none_or(|s| &i.saga == s))
            .filter(|i| filter.status.is_none_or(|s| i.status == s))
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse((i.created_at, i.id)));
        let limit = filter.limit.unwrap_or(usize::MAX);
        Ok(out.into_iter().take(limit).cloned().collect())
    }
}

#[async_trait]
impl SagaLogStore for MemorySagaStore {
    async fn append(&self, entries: &[SagaLogEntry]) -> Result<()> {
        let mut logs = self.logs();
        for entry in entries {
            logs.entry(entry.saga_id).or_default().push(entry.clone());
        }
        Ok(())
    }

    async fn entries(&self, saga_id: Uuid) -> Result<Vec<SagaLogEntry>> {
        Ok(self.logs().get(&saga_id).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::instance::SagaStatus;
    use futures_util::FutureExt;

    #[test]
    fn saving_an_unknown_saga_is_not_found() {
        let store = MemorySagaStore::new();
        let now = Utc::now();
        let saga = SagaInstance {
            id: Uuid::now_v7(),
            saga: "s".into(),
            aggregate_id: "a".into(),
            status: SagaStatus::Running,
            steps: Vec::new(),
            data: std::sync::Arc::new(serde_json::Value::Null),
            failure: None,
            deadline: None,
            unsent: Vec::new(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let result = store.save(&saga, 0).now_or_never();
        assert!(
            matches!(result, Some(Err(Error::NotFound { entity: "saga", .. }))),
            "got {result:?}"
        );
    }
}
