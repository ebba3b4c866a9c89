//! In-memory [`DeadLetterStore`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use uuid::Uuid;

use crate::clock::{SharedClock, SystemClock};
use crate::dead_letter::{
    DeadLetter, DeadLetterFilter, DeadLetterStatus, DeadLetterStore, ReplayOutcome,
};
use crate::error::{Error, Result};

/// Dead letters in a map, ordered by id (UUID v7, so by time). Clones share the same letters.
#[derive(Debug, Clone)]
pub struct MemoryDeadLetterStore {
    letters: Arc<Mutex<BTreeMap<Uuid, DeadLetter>>>,
    clock: SharedClock,
}

impl Default for MemoryDeadLetterStore {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryDeadLetterStore {
    /// An empty store reading the time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            letters: Arc::default(),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Uuid, DeadLetter>> {
        self.letters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl DeadLetterStore for MemoryDeadLetterStore {
    async fn put(&self, letter: DeadLetter) -> Result<()> {
        let mut letters = self.lock();
        if letters.contains_key(&letter.id) {
            return Err(Error::AlreadyExists {
                entity: "dead letter",
                id: letter.id.to_string(),
            });
        }
        letters.insert(letter.id, letter);
        Ok(())
    }

    async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>> {
        let letters = self.lock();
        let mut out: Vec<DeadLetter> = letters
            .values()
            .filter(|l| {
                filter
                    .subscription
                    .as_ref()
                    .is_none_or(|s| &l.subscription == s)
            })
            .filter(|l| filter.status.is_none_or(|s| l.status == s))
            .cloned()
            .collect();
        out.sort_by_key(|l| (l.dead_lettered_at, l.id));
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    async fn get(&self, id: Uuid) -> Result<DeadLetter> {
        self.lock()
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                entity: "dead letter",
                id: id.to_string(),
            })
    }

    async fn replay(&self, id: Uuid) -> Result<ReplayOutcome> {
        let now = self.clock.now();
        let mut letters = self.lock();
        let letter = letters.get_mut(&id).ok_or_else(|| Error::NotFound {
            entity: "dead letter",
            id: id.to_string(),
        })?;
        if letter.status != DeadLetterStatus::Pending {
            return Ok(ReplayOutcome::AlreadyDone(letter.status));
        }
        letter.status = DeadLetterStatus::Replayed;
        letter.updated_at = now;
        Ok(ReplayOutcome::Replayed(Box::new(letter.clone())))
    }

    async fn discard(&self, id: Uuid) -> Result<bool> {
        let now = self.clock.now();
        let mut letters = self.lock();
        let letter = letters.get_mut(&id).ok_or_else(|| Error::NotFound {
            entity: "dead letter",
            id: id.to_string(),
        })?;
        if letter.status != DeadLetterStatus::Pending {
            return Ok(false);
        }
        letter.status = DeadLetterStatus::Discarded;
        letter.updated_at = now;
        Ok(true)
    }

    async fn pending_count(&self) -> Result<u64> {
        Ok(self
            .lock()
            .values()
            .filter(|l| l.status == DeadLetterStatus::Pending)
            .count() as u64)
    }
}
