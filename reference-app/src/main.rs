//! The reference e-commerce order system, built from the saga crates.
//!
//! When it is complete (see `DESIGN.md`, section 6), `reference-app` with no arguments runs every
//! service of the seed's order system in one process (ports 8000-8007, SQLite files and the
//! durable `sql` broker under `./data`), and `reference-app serve <service>` runs one service
//! per process on Postgres and RabbitMQ or NATS.
//!
//! Today none of that exists: the services arrive with issue 7. This binary says so and exits
//! successfully, so that the command a newcomer is told to run already works and tells the
//! truth.
//!
//! Run with: `cargo run --release -p reference-app`

/// What the binary prints until the services exist.
const NOT_BUILT_YET: &str = "\
reference-app: the order system's services are not built yet (they arrive with issue 7).
Nothing is listening on any port.

What works today:
  cargo run -p examples --example quickstart   a three-step saga on in-memory stores:
                                               one run completes, one compensates
  ./scripts/test.sh                            every test of the workspace
  cargo doc --open -p saga-core                the API docs and the concepts guide";

fn main() {
    println!("{NOT_BUILT_YET}");
}
