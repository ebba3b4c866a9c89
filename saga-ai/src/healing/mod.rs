//! Self-healing policies: small state machines that watch the system, decide, and say what
//! they saw, what they did and (once known) how it went.
//!
//! Each policy is pure: it is fed observations with their time and answers a decision plus a
//! [`HealingAction`] record; the application carries the decision out, stores the record
//! (the reference app shows them at `GET /self-healing/actions`) and may fill in its
//! [`outcome`](HealingAction::outcome) later. Every policy can be switched off by its
//! application: a switched-off policy is simply not consulted.
//!
//! | policy | watches | decides |
//! |--------|---------|---------|
//! | [`CircuitBreaker`] | calls to a flaky dependency (a payment gateway) | opens when the error rate over a window passes a threshold, half-opens after a pause, closes after successful probes |
//! | [`PoisonClassifier`] | a handler's failures of one message | retry, or dead-letter now with a diagnosis (a failure retrying cannot cure) |
//! | [`DriftDetector`] | the durations of each saga step | flags a step whose recent durations drift above its baseline, clears it when they come back |
//! | stuck sagas | (the saga engine's deadlines) | the engine retries a timed-out step once, then compensates; [`HealingAction::stuck_saga`] records it |
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use saga_ai::healing::{CircuitBreaker, CircuitConfig, Permit};
//!
//! let mut gateway = CircuitBreaker::new("payment-gateway", CircuitConfig::default());
//! let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
//! // Ten calls, all failing: the breaker opens.
//! let mut actions = Vec::new();
//! for i in 0..10 {
//!     let now = t0 + Duration::milliseconds(i * 100);
//!     assert!(matches!(gateway.permit(now).0, Permit::Allowed));
//!     actions.extend(gateway.record(now, false));
//! }
//! assert_eq!(actions.len(), 1);
//! assert!(actions[0].action.contains("opened"));
//! // Meanwhile calls fail fast instead of waiting on a dead dependency.
//! assert!(matches!(gateway.permit(t0 + Duration::seconds(2)).0, Permit::Rejected { .. }));
//! ```

mod action;
mod circuit;
mod drift;
mod poison;

pub use action::{ActionKind, HealingAction, PolicyName};
pub use circuit::{CircuitBreaker, CircuitConfig, CircuitState, Permit};
pub use drift::{DriftConfig, DriftDetector, StepDrift};
pub use poison::{Diagnosis, Failure, FailureClass, PoisonClassifier, PoisonKind};
