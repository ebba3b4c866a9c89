//! The reference e-commerce order system, built from the saga crates.
//!
//! When it is complete (see `DESIGN.md`, section 6), `reference-app` with no arguments runs
//! every service of the seed's order system in one process (ports 8000-8007, SQLite files and
//! the durable `sql` broker under `./data`), and `reference-app serve <service>` runs one
//! service per process on Postgres and RabbitMQ or NATS.
//!
//! Built so far (issue 7 is under way): the HTTP API's shared pieces in [`api`]: problem
//! documents for every error, money in minor units, the order request with its validation; and
//! the order saga ([`order_saga`]) with the mapping from its progress to the seed's order
//! statuses; stock reservation as an all-or-nothing decision that conserves stock
//! ([`inventory`]); and the simulated payment gateway ([`payment_gateway`]).

pub mod ai;
pub mod api;
pub mod cli;
pub mod consumer;
pub mod context;
pub mod db;
pub mod error;
pub mod http;
pub mod inventory;
pub mod loadgen;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod order_saga;
pub mod payment_gateway;
pub mod services;
pub mod system;
pub mod topology;
