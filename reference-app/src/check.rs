//! The invariant checker (`reference-app check`): what must hold across the services'
//! databases once the system is quiet, each invariant computed from the services' own tables
//! (read-only).
//!
//! | invariant | what must hold |
//! |-----------|----------------|
//! | `orders_terminal` | every order has a saga that ended (completed, compensated, failed) and its status agrees |
//! | `stock_conserved` | per product, available + reserved + sold = initial stock |
//! | `single_charge` | at most one transaction per order; no refund without a charge that went through |
//! | `refunds_match_outcome` | charged and then undone: refunded exactly once; confirmed: charged, never refunded |
//! | `shipments_match_outcome` | completed: exactly one shipment; cancelled or failed: none |
//! | `one_notification_per_event` | each customer-facing event produced exactly one notification |
//! | `outbox_drained` | no outbox holds an event unpublished for longer than the lag |
//! | `dead_letters_have_reasons` | every dead letter says why |
//! | `reservations_match_orders` | completed: committed; cancelled or failed: released, failed or none |
//!
//! The services' databases are separate, so what is read is not one point in time: on a
//! system still taking orders the checker reports work in flight as violations. Run it once
//! the sagas have ended and the relays and consumers have caught up.

mod databases;
mod invariants;
mod report;
mod snapshot;

use std::time::Duration;

use chrono::Utc;

pub use databases::Databases;
pub use report::{InvariantResult, MAX_EXAMPLES, Report};

use crate::cli::CheckArgs;
use crate::error::AppError;

/// How the checker judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// How long an event may wait in an outbox, unpublished, before it counts as stuck.
    pub outbox_lag: Duration,
}

impl Default for CheckOptions {
    /// A lag of 5 s.
    fn default() -> Self {
        Self {
            outbox_lag: Duration::from_secs(5),
        }
    }
}

/// Checks every invariant with the default options.
pub async fn check(dbs: &Databases) -> Result<Report, AppError> {
    check_with(dbs, &CheckOptions::default()).await
}

/// Checks every invariant.
pub async fn check_with(dbs: &Databases, options: &CheckOptions) -> Result<Report, AppError> {
    let now = Utc::now();
    let now_nanos = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
    let lag = i64::try_from(options.outbox_lag.as_nanos()).unwrap_or(i64::MAX);
    let snapshot = snapshot::read(dbs, now_nanos.saturating_sub(lag)).await?;
    Ok(Report {
        invariants: invariants::all(&snapshot, now_nanos),
    })
}

/// `reference-app check`: prints the report (a table, or JSON with `--json`); returns
/// whether every invariant holds.
pub async fn run(args: &CheckArgs) -> anyhow::Result<bool> {
    let dbs = Databases::open(&args.target).await?;
    let options = CheckOptions {
        outbox_lag: Duration::from_secs(args.outbox_lag_secs),
    };
    let report = check_with(&dbs, &options).await;
    dbs.close().await;
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(report.ok())
}
