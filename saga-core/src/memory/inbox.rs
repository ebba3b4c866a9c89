//! In-memory [`Inbox`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::Result;
use crate::inbox::Inbox;

/// Processed `(consumer, event_id)` pairs in a set. Clones share the same set.
///
/// Marks are never forgotten: this store is for tests, examples and short-lived processes.
///
/// ```
/// # futures_util::FutureExt::now_or_never(async {
/// use saga_core::Inbox;
/// use saga_core::memory::inbox::MemoryInbox;
///
/// let inbox = MemoryInbox::default();
/// let id = uuid::Uuid::now_v7();
/// assert!(inbox.try_mark("billing", id).await?);   // first delivery: do the work
/// assert!(!inbox.try_mark("billing", id).await?);  // duplicate: skip it
/// assert!(inbox.try_mark("shipping", id).await?);  // other consumers are independent
/// # Ok::<(), saga_core::Error>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryInbox {
    processed: Arc<Mutex<HashSet<(String, Uuid)>>>,
}

impl MemoryInbox {
    /// An empty inbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<(String, Uuid)>> {
        self.processed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Inbox for MemoryInbox {
    async fn try_mark(&self, consumer: &str, event_id: Uuid) -> Result<bool> {
        Ok(self.lock().insert((consumer.to_owned(), event_id)))
    }

    async fn is_processed(&self, consumer: &str, event_id: Uuid) -> Result<bool> {
        Ok(self.lock().contains(&(consumer.to_owned(), event_id)))
    }
}
