//! The suite's own tests: each plants one bug in an in-memory store and checks that the
//! cases guarding that promise fail (a suite that cannot fail proves nothing).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::SystemClock;
use crate::dead_letter::{DeadLetter, DeadLetterFilter, DeadLetterStore, ReplayOutcome};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::inbox::Inbox;
use crate::memory::dead_letter::MemoryDeadLetterStore;
use crate::memory::idempotency::MemoryIdempotencyStore;
use crate::memory::outbox::MemoryOutbox;
use crate::memory::saga_store::MemorySagaStore;
use crate::outbox::{OutboxRecord, OutboxStore};
use crate::saga::instance::SagaInstance;
use crate::saga::store::{SagaFilter, SagaStore};

use super::*;

/// Whether `case` panics (fails) against `stores`.
fn fails<F: Future<Output = ()>>(case: impl FnOnce(TestStores) -> F, stores: TestStores) -> bool {
    catch_unwind(AssertUnwindSafe(|| __run(case(stores)))).is_err()
}

/// Marks nothing: every delivery looks new.
#[derive(Debug)]
struct ForgetfulInbox;

#[async_trait]
impl Inbox for ForgetfulInbox {
    async fn try_mark(&self, _consumer: &str, _event_id: Uuid) -> Result<bool> {
        Ok(true)
    }
    async fn is_processed(&self, _consumer: &str, _event_id: Uuid) -> Result<bool> {
        Ok(false)
    }
}

/// Saves over whatever version is stored: no optimistic check, every save wins.
#[derive(Debug)]
struct LastWriterWins(MemorySagaStore);

#[async_trait]
impl SagaStore for LastWriterWins {
    async fn create(&self, instance: &SagaInstance) -> Result<()> {
        self.0.create(instance).await
    }
    async fn load(&self, id: Uuid) -> Result<SagaInstance> {
        self.0.load(id).await
    }
    async fn save(&self, instance: &SagaInstance, _expected_version: u64) -> Result<()> {
        loop {
            let stored = self.0.load(instance.id).await?.version;
            match self.0.save(instance, stored).await {
                Err(Error::VersionConflict { .. }) => continue,
                done => return done,
            }
        }
    }
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaInstance>> {
        self.0.due(now, limit).await
    }
    async fn list(&self, filter: &SagaFilter) -> Result<Vec<SagaInstance>> {
        self.0.list(filter).await
    }
}

/// Hands out unpublished records newest first.
#[derive(Debug)]
struct ReversedOutbox(MemoryOutbox);

#[async_trait]
impl OutboxStore for ReversedOutbox {
    async fn append(&self, events: &[Envelope]) -> Result<Vec<i64>> {
        self.0.append(events).await
    }
    async fn unpublished(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        let mut all = self.0.unpublished(usize::MAX).await?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }
    async fn mark_published(&self, seqs: &[i64], at: DateTime<Utc>) -> Result<()> {
        self.0.mark_published(seqs, at).await
    }
    async fn prune_published(&self, before: DateTime<Utc>) -> Result<u64> {
        self.0.prune_published(before).await
    }
    async fn pending_count(&self) -> Result<u64> {
        self.0.pending_count().await
    }
}

/// Replays a letter every time it is asked (replay is not idempotent).
#[derive(Debug)]
struct ReplayForever(MemoryDeadLetterStore);

#[async_trait]
impl DeadLetterStore for ReplayForever {
    async fn put(&self, letter: DeadLetter) -> Result<()> {
        self.0.put(letter).await
    }
    async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>> {
        self.0.list(filter).await
    }
    async fn get(&self, id: Uuid) -> Result<DeadLetter> {
        self.0.get(id).await
    }
    async fn replay(&self, id: Uuid) -> Result<ReplayOutcome> {
        let _ = self.0.replay(id).await?;
        Ok(ReplayOutcome::Replayed(Box::new(self.0.get(id).await?)))
    }
    async fn discard(&self, id: Uuid) -> Result<bool> {
        self.0.discard(id).await
    }
    async fn pending_count(&self) -> Result<u64> {
        self.0.pending_count().await
    }
}

#[test]
fn a_forgetful_inbox_fails_the_inbox_cases() {
    let broken = || TestStores {
        inbox: Arc::new(ForgetfulInbox),
        ..TestStores::in_memory()
    };
    assert!(fails(inbox_first_mark_wins, broken()));
    assert!(fails(inbox_concurrent_marks_have_one_winner, broken()));
}

#[test]
fn a_store_without_version_check_fails_the_version_cases() {
    let broken = || TestStores {
        sagas: Arc::new(LastWriterWins(MemorySagaStore::new())),
        ..TestStores::in_memory()
    };
    assert!(fails(saga_save_with_stale_version_is_refused, broken()));
    assert!(fails(saga_concurrent_saves_have_one_winner, broken()));
}

#[test]
fn a_reversed_outbox_fails_the_order_case() {
    let mut stores = TestStores::in_memory();
    let clock: SharedClock = Arc::new(stores.clock.clone());
    stores.outbox = Arc::new(ReversedOutbox(MemoryOutbox::new(clock)));
    assert!(fails(outbox_unpublished_in_seq_order, stores));
}

#[test]
fn a_repeating_replay_fails_the_replay_cases() {
    let broken = || {
        let stores = TestStores::in_memory();
        let clock: SharedClock = Arc::new(stores.clock.clone());
        TestStores {
            dead_letters: Arc::new(ReplayForever(MemoryDeadLetterStore::new(clock))),
            ..stores
        }
    };
    assert!(fails(dead_letter_replay_happens_once, broken()));
    assert!(fails(
        dead_letter_concurrent_replays_have_one_winner,
        broken()
    ));
}

#[test]
fn a_store_on_another_clock_fails_the_expiry_case_unless_declared() {
    // The wall clock is years past the ManualClock's epoch: every key looks expired at once.
    let on_wall_clock = || TestStores {
        idempotency: Arc::new(MemoryIdempotencyStore::new(Arc::new(SystemClock))),
        ..TestStores::in_memory()
    };
    assert!(fails(idempotency_expired_key_is_new, on_wall_clock()));
    let mut declared = on_wall_clock();
    declared.features = StoreFeatures::all().with_idempotency_expiry(false);
    assert!(
        !fails(idempotency_expired_key_is_new, declared),
        "a declared missing feature skips the case"
    );
}

#[test]
fn serialised_adapters_skip_the_races() {
    let mut stores = TestStores {
        sagas: Arc::new(LastWriterWins(MemorySagaStore::new())),
        ..TestStores::in_memory()
    };
    stores.features = StoreFeatures::all().with_concurrent_writers(false);
    assert!(!fails(saga_concurrent_saves_have_one_winner, stores));
}
