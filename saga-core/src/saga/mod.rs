//! Sagas: definitions as data, a pure transition function, and the shell that runs it.
//!
//! * [`SagaDefinition`] and [`StepDefinition`]: the steps, replies, compensations, deadlines.
//! * [`transition`]: the orchestrator's decisions, `(definition, instance, input, now) ->
//!   Transition`, with no I/O. Property-tested.
//! * [`visualize`]: Mermaid diagrams, remaining steps and compensation plans (dry runs).
//! * [`SagaStore`] / [`SagaLogStore`]: where instances and their audit trail live.
//! * [`Orchestrator`]: a shell over the store and broker traits (no shared transaction; the
//!   transactional shell is in `saga-outbox`).

pub mod definition;
pub mod instance;
pub mod log;
pub mod orchestrator;
pub mod store;
pub mod transition;
pub mod visualize;

pub use definition::{Compensation, SagaDefinition, StepDefinition};
pub use instance::{SagaInstance, SagaStatus, StepState, StepStatus};
pub use log::{LogStatus, SagaLogEntry};

pub use orchestrator::Orchestrator;
pub use store::{SagaFilter, SagaLogStore, SagaStore};
pub use transition::{CommandKind, IgnoreReason, Outcome, SagaCommand, SagaInput, Transition};
