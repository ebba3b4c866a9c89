//! The shell around the pure transition function: load, decide, send, save.
//!
//! This shell works over any [`SagaStore`], [`SagaLogStore`] and [`Publisher`]; they share no
//! transaction, so it orders its effects to stay correct across a crash at any point:
//!
//! * **start**: the instance is created first, then its first command is published. A crash in
//!   between leaves a saga waiting for a reply to a command never sent; its deadline (give every
//!   step one) sends the command again.
//! * **reply / deadline**: the commands are published first, then the instance is saved with
//!   its version check. A crash in between, or a lost race with another replica, re-runs the
//!   transition on the redelivered input; command ids are derived, so the same ids go out again
//!   and the participants' inboxes absorb them.
//!
//! The transactional shell of `saga-outbox` writes instance, log and outbox rows in one
//! transaction instead.

use std::sync::Arc;

use uuid::Uuid;

use super::definition::SagaDefinition;
use super::instance::SagaInstance;
use super::store::{SagaLogStore, SagaStore};
use super::transition::{self, Outcome, SagaInput, Transition};
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
        let t = transition::start(&self.definition, saga_id, aggregate_id, data, now);
        self.sagas.create(&t.instance).await?;
        self.log.append(&t.log).await?;
        self.publish(&t).await?;
        Ok(t.instance)
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

    async fn apply(&self, saga_id: Uuid, input: SagaInput<'_>) -> Result<Outcome> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let instance = self.sagas.load(saga_id).await?;
            let t = transition::handle(&self.definition, &instance, input, self.clock.now())?;
            if let Outcome::Ignored(_) = t.outcome {
                self.log.append(&t.log).await?;
                return Ok(t.outcome);
            }
            self.publish(&t).await?;
            match self.sagas.save(&t.instance, instance.version).await {
                Ok(()) => {
                    self.log.append(&t.log).await?;
                    return Ok(t.outcome);
                }
                Err(Error::VersionConflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::transient(format!(
            "saga {saga_id}: lost the version race {MAX_CONFLICT_RETRIES} times in a row"
        )))
    }

    async fn publish(&self, t: &Transition) -> Result<()> {
        if t.commands.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let batch: Vec<Envelope> = t.commands.iter().map(|c| c.to_envelope(now)).collect();
        self.publisher.publish(&batch).await
    }
}
