//! The reference e-commerce order system, built from the saga crates.
//!
//! `reference-app` with no arguments runs every service of the seed's order system in one
//! process (ports 8000-8007, a SQLite file per service and the durable `sql` broker under
//! `./data`); `reference-app serve <service>` runs one service per process on Postgres and
//! RabbitMQ or NATS. The services differ only in the [`context::ServiceContext`] they are
//! given ([`system`] builds it for either mode).
//!
//! | module | what it holds |
//! |--------|---------------|
//! | [`services`] | one module per service: its tables, consumers and routes |
//! | [`order_saga`] | the order saga as a saga-core definition; its progress as the seed's statuses |
//! | [`db`] | a service's database (SQLite file or Postgres schema) and `with_db!` |
//! | [`consumer`] | running a handler on a subscription: concurrency, retry, dead letters, graceful stop |
//! | [`messages`] | the payloads the services exchange |
//! | [`api`] | request and response bodies, money in minor units, problem documents |
//! | [`inventory`], [`payment_gateway`] | stock reservation as a pure decision; the simulated gateway |
//! | [`ai`] | the AI engine: fraud and payment-success models from saga-ai |
//! | [`metrics`], [`http`] | Prometheus metrics; the layers every HTTP API gets |
//! | [`loadgen`], [`operator`], [`cli`] | the load generator, dead-letter and replay commands, the command line |
//! | [`check`] | the invariant checker: what must hold across the services' databases |
//! | [`secrets`] | database and broker passwords kept out of logs and error messages |
//!
//! The order service orchestrates: `POST /orders` writes the order, starts the saga and
//! appends `order.placed` and the first command to its outbox in one transaction; each reply
//! is applied by the pure transition function and its consequences commit in one unit of
//! work. Every participant marks its inbox, does its work and appends its reply in one
//! transaction, so a redelivered message has no second effect.

pub mod ai;
pub mod api;
pub mod check;
pub mod cli;
pub mod consumer;
pub mod context;
pub mod db;
pub mod error;
pub mod healing;
pub mod http;
pub mod inventory;
pub mod loadgen;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod order_saga;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod payment_gateway;
pub mod secrets;
pub mod services;
pub mod system;
pub mod topology;
pub mod trace_context;
