//! ruststream-sqlx driven as its Relay guide shows: 8 producer tasks write a business row and an
//! event row in one transaction (the event through the `Insert` its `#[derive(Inbox)]` writes,
//! on `&mut *tx`); a `RustStream` app with a `SqlxBroker` on the same pool runs the relay
//! subscription (`InboxQueue` on the event table, `workers_by_key(4)`), whose handler is the
//! counting publisher and acknowledges, which deletes the row.
//!
//! `ruststream-compare <database url> [events] [lease|row-lock|unordered]`: `lease` (the
//! default) is the Relay guide's table, with a `locked_until` column (lease form); `row-lock` the
//! same table without it, the form a Postgres table takes when it names no lease; `unordered` the
//! lease table without a partition key, read by `workers(4)` as the Several instances guide does
//! (no order per aggregate, several claims in flight). The binary creates its tables itself, as
//! the crate's guides do (the crate ships no migrations).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use outbox_compare::{Error, Happened, PRODUCERS, Stamps, load, measure};
use ruststream_sqlx::prelude::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};

/// The tables, each as the guides write theirs for Postgres.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS compare_business (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS leased_events (
    id BIGSERIAL PRIMARY KEY,
    aggregate TEXT NOT NULL,
    locked_until TIMESTAMPTZ,
    payload BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS locked_events (
    id BIGSERIAL PRIMARY KEY,
    aggregate TEXT NOT NULL,
    payload BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS free_events (
    id BIGSERIAL PRIMARY KEY,
    locked_until TIMESTAMPTZ,
    payload BYTEA NOT NULL
);
";

/// Events reached by the relay handler, which stands for the publish to another broker.
static STAMPS: LazyLock<Stamps> = LazyLock::new(Stamps::default);

/// One row of `leased_events`, the Relay guide's table: an event waiting for the relay, keyed by
/// its aggregate, in the lease form.
#[derive(Inbox, sqlx::FromRow)]
#[inbox(table = "leased_events")]
struct LeasedEvent {
    #[field(id, generated)]
    id: i64,
    #[field(partition_key)]
    aggregate: String,
    #[field(locked_until)]
    locked_until: Option<DateTime<Utc>>,
    #[field(payload)]
    payload: Vec<u8>,
}

/// One row of `locked_events`: the same table without a lease, claimed in the row lock form.
#[derive(Inbox, sqlx::FromRow)]
#[inbox(table = "locked_events")]
struct LockedEvent {
    #[field(id, generated)]
    id: i64,
    #[field(partition_key)]
    aggregate: String,
    #[field(payload)]
    payload: Vec<u8>,
}

/// One row of `free_events`: a leased event without a partition key, in no order.
#[derive(Inbox, sqlx::FromRow)]
#[inbox(table = "free_events")]
struct FreeEvent {
    #[field(id, generated)]
    id: i64,
    #[field(locked_until)]
    locked_until: Option<DateTime<Utc>>,
    #[field(payload)]
    payload: Vec<u8>,
}

#[subscriber(InboxQueue::<LeasedEvent>::new("leased-events"))]
async fn relay_leased(event: &Happened) -> HandlerOutcome {
    STAMPS.stamp(event.i);
    HandlerOutcome::ack()
}

#[subscriber(InboxQueue::<LockedEvent>::new("locked-events"))]
async fn relay_locked(event: &Happened) -> HandlerOutcome {
    STAMPS.stamp(event.i);
    HandlerOutcome::ack()
}

#[subscriber(InboxQueue::<FreeEvent>::new("free-events"))]
async fn relay_free(event: &Happened) -> HandlerOutcome {
    STAMPS.stamp(event.i);
    HandlerOutcome::ack()
}

/// Which table and subscription the run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Lease,
    RowLock,
    Unordered,
}

/// Writes the event row of `happened` through the derive's `Insert`, on the producer's
/// transaction.
async fn insert_event(
    form: Form,
    conn: &mut PgConnection,
    happened: &Happened,
) -> Result<(), Error> {
    let payload = serde_json::to_vec(happened)?;
    let aggregate = happened.aggregate.clone();
    match form {
        Form::Lease => {
            LeasedEvent {
                id: 0,
                aggregate,
                locked_until: None,
                payload,
            }
            .insert(conn)
            .await?
        }
        Form::RowLock => {
            LockedEvent {
                id: 0,
                aggregate,
                payload,
            }
            .insert(conn)
            .await?
        }
        Form::Unordered => {
            FreeEvent {
                id: 0,
                locked_until: None,
                payload,
            }
            .insert(conn)
            .await?
        }
    }
    Ok(())
}

/// One unit of work: the business row and the event, one transaction.
async fn write(pool: PgPool, form: Form, i: usize) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO compare_business (id) VALUES ($1)")
        .bind(format!("b-{i}"))
        .execute(&mut *tx)
        .await?;
    insert_event(form, &mut tx, &Happened::new(i)).await?;
    tx.commit().await?;
    Ok(())
}

/// The relay service: the broker on the shared pool, the subscription as the Relay guide runs it.
fn service(pool: PgPool, form: Form) -> RustStream {
    RustStream::new(AppInfo::new("outbox-compare", "0.0.0")).with_broker(
        SqlxBroker::new(pool),
        move |b| match form {
            Form::Lease => {
                b.include(relay_leased.workers_by_key(nonzero!(4)));
            }
            Form::RowLock => {
                b.include(relay_locked.workers_by_key(nonzero!(4)));
            }
            Form::Unordered => {
                b.include(relay_free.workers(nonzero!(4)));
            }
        },
    )
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: ruststream-compare <database url> [events] [lease|row-lock|unordered]")?;
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let form = match args.next().as_deref() {
        None | Some("lease") => Form::Lease,
        Some("row-lock") => Form::RowLock,
        Some("unordered") => Form::Unordered,
        Some(other) => {
            return Err(format!("unknown form {other}: lease, row-lock or unordered").into());
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(PRODUCERS as u32 + 4)
        .connect(&url)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    println!(
        "ruststream-sqlx 0.7 ({}): {n} events, {PRODUCERS} producers, default poll interval 1 s, load {}",
        match form {
            Form::Lease => "the Relay guide's lease table, partition_key, workers_by_key(4)",
            Form::RowLock => "row lock table, partition_key, workers_by_key(4)",
            Form::Unordered => "lease table, no partition key, workers(4)",
        },
        load()
    );
    let unit = {
        let pool = pool.clone();
        move |i| write(pool.clone(), form, i)
    };
    let start = || async {
        let running = service(pool.clone(), form).start().await?;
        Ok(running)
    };
    let stop = |running: RunningApp| async move { Ok(running.shutdown().await?) };
    measure(&STAMPS, n, unit, start, stop).await
}
