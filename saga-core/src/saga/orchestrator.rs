//! The shell around the pure transition function: load, decide, send, save.
//!
//! This shell works over any [`SagaStore`], [`SagaLogStore`] and [`Publisher`]; they share no
//! transaction, so the instance carries its own small outbox ([`SagaInstance::unsent`]):
//!
//! 1. the transition's new state is saved together with the commands it decided (one write,
//!    with the optimistic version check);
//! 2. the commands are published;
//! 3. the instance is saved again with `unsent` cleared.
//!
//! No command ever leaves before the state that decided it is saved, so a reply can never
//! race ahead of the saga's state, and two replicas that race on one saga cannot both send
//! (the loser's save fails first). A crash or a publish error after step 1 leaves `unsent`
//! filled: the next input for that saga (the redelivered one, or the deadline sweep), or
//! [`Orchestrator::flush_unsent`], publishes them first. Command ids are derived, so a repeat
//! is absorbed by the participants' inboxes.
//!
//! The transactional shell of `saga-outbox` writes the instance, its log and the outbox rows in
//! one database transaction instead.

use std::sync::Arc;

use uuid::Uuid;

use super::definition::SagaDefinition;
use super::instance::SagaInstance;
use super::store::{SagaFilter, SagaLogStore, SagaStore};
use super::transition::{self, Outcome, SagaInput};
use crate::broker::Publisher;
use crate::clock::SharedClock;
use crate::envelope::Envelope;
use crate::error::{Error, Result};

/// How many times a reply is re-applied after losing an optimistic-version race.
const MAX_CONFLICT_RETRIES: usize = 8;

/// Runs sagas of one definition.
#[derive(Clone)]
pub struct Orchestrator {
    definition: Arc<SagaDefinition>,
    sagas: Arc<dyn SagaStore>,
    log: Arc<dyn SagaLogStore>,
    publisher: Arc<dyn Publisher>,
    clock: SharedClock,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("saga", &self.definition.name())
            .finish_non_exhaustive()
    }
}

impl Orchestrator {
    /// An orchestrator of `definition` over these stores and publisher.
    pub fn new(
        definition: SagaDefinition,
        sagas: Arc<dyn SagaStore>,
        log: Arc<dyn SagaLogStore>,
        publisher: Arc<dyn Publisher>,
        clock: SharedClock,
    ) -> Self {
        Self {
            definition: Arc::new(definition),
            sagas,
            log,
            publisher,
            clock,
        }
    }

    /// The definition it runs.
    pub fn definition(&self) -> &SagaDefinition {
        &self.definition
    }

    /// Starts a saga with id `saga_id` about `aggregate_id`. Starting the same id twice is
    /// `Error::AlreadyExists` and sends nothing the second time.
    pub async fn start(
        &self,
        saga_id: Uuid,
        aggregate_id: &str,
        data: serde_json::Value,
    ) -> Result<SagaInstance> {
        let now = self.clock.now();
        let mut t = transition::start(&self.definition, saga_id, aggregate_id, data, now);
        t.instance.unsent = t.commands;
        self.sagas.create(&t.instance).await?;
        self.log.append(&t.log).await?;
        self.send(t.instance).await
    }

    /// Applies a participant's reply to its saga (found by the reply's `correlation_id`).
    /// Returns the transition's outcome; a reply for an unknown saga is `Error::NotFound`.
    pub async fn handle_reply(&self, reply: &Envelope) -> Result<Outcome> {
        self.apply(reply.correlation_id, SagaInput::Reply(reply))
            .await
    }

    /// Applies a passed deadline to one saga.
    pub async fn expire(&self, saga_id: Uuid) -> Result<Outcome> {
        self.apply(saga_id, SagaInput::DeadlineExpired).await
    }

    /// Finds up to `limit` sagas of this definition whose deadline has passed and applies it to
    /// each; returns how many changed.
    pub async fn expire_due(&self, limit: usize) -> Result<usize> {
        let due = self.sagas.due(self.clock.now(), limit).await?;
        let mut changed = 0;
        for instance in due.iter().filter(|i| i.saga == self.definition.name()) {
            if self.expire(instance.id).await? == Outcome::Applied {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Publishes the sagas' commands left unsent by a crash or a publish error; returns how
    /// many sagas it flushed. Run it at start-up, then now and then.
    pub async fn flush_unsent(&self) -> Result<usize> {
        let all = self.sagas.list(&SagaFilter::default()).await?;
        let mut flushed = 0;
        for instance in all.into_iter().filter(|i| !i.unsent.is_empty()) {
            self.send(instance).await?;
            flushed += 1;
        }
        Ok(flushed)
    }

    async fn apply(&self, saga_id: Uuid, input: SagaInput<'_>) -> Result<Outcome> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut instance = self.sagas.load(saga_id).await?;
            if !instance.unsent.is_empty() {
                instance = self.send(instance).await?;
            }
            let mut t = transition::handle(&self.definition, &instance, input, self.clock.now())?;
            if let Outcome::Ignored(_) = t.outcome {
                self.log.append(&t.log).await?;
                return Ok(t.outcome);
            }
            t.instance.unsent = std::mem::take(&mut t.commands);
            match self.sagas.save(&t.instance, instance.version).await {
                Ok(()) => {}
                Err(Error::VersionConflict { .. }) => continue,
                Err(e) => return Err(e),
            }
            self.log.append(&t.log).await?;
            self.send(t.instance).await?;
            return Ok(t.outcome);
        }
        Err(Error::transient(format!(
            "saga {saga_id}: lost the version race {MAX_CONFLICT_RETRIES} times in a row"
        )))
    }

    /// Publishes a saved instance's unsent commands, then saves it with them cleared.
    async fn send(&self, mut instance: SagaInstance) -> Result<SagaInstance> {
        if instance.unsent.is_empty() {
            return Ok(instance);
        }
        let now = self.clock.now();
        let batch: Vec<Envelope> = instance.unsent.iter().map(|c| c.to_envelope(now)).collect();
        self.publisher.publish(&batch).await?;
        let expected = instance.version;
        instance.unsent.clear();
        instance.version += 1;
        match self.sagas.save(&instance, expected).await {
            // Someone moved the saga on first; everyone flushes `unsent` before deciding, so
            // these commands were published (again) and cleared there too.
            Ok(()) | Err(Error::VersionConflict { .. }) => Ok(instance),
            Err(e) => Err(e),
        }
    }
}
