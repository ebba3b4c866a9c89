//! What one call into sqlx's SQLite driver costs: the same transaction of `k` single-row
//! inserts sent as `k` calls (one per statement, as handlers usually write) and as one call
//! holding the `k` statements in one string (as `execute_and_publish` sends its two). Every
//! call hands the statement to the connection's worker thread and the result back, so the
//! difference per call saved is that hand-off's cost on this machine.
//!
//! `cargo run --release -p saga-outbox --features bench --bin bench_sqlite_calls -- [transactions] [k]`
//!
//! Prints wall time and this process's CPU time per transaction (from `/proc/self/stat`, so
//! the CPU figures need Linux) for three alternating rounds.

use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, SqliteConnection};

/// This process's user + system CPU time, if `/proc` tells it.
fn cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// Runs `n` transactions through `one_tx`; returns (wall, CPU) per transaction in µs.
async fn measure<F, Fut>(n: usize, mut one_tx: F) -> Result<(f64, Option<f64>), sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    let (start, cpu0) = (Instant::now(), cpu());
    for _ in 0..n {
        one_tx().await?;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let cpu = cpu().zip(cpu0).map(|(b, a)| per(b.saturating_sub(a)));
    Ok((per(start.elapsed()), cpu))
}

fn show(cpu: Option<f64>) -> String {
    cpu.map_or_else(|| "n/a".to_owned(), |c| format!("{c:.0} us"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4000);
    let k: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6).max(2);
    let dir = tempfile::tempdir()?;
    let conn = SqliteConnectOptions::new()
        .filename(dir.path().join("calls.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .connect()
        .await?;
    let conn = std::sync::Arc::new(tokio::sync::Mutex::new(conn));
    for t in 0..k {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE t{t} (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"
        )))
        .execute(&mut *conn.lock().await)
        .await?;
    }
    let body = "x".repeat(200);
    let separate: Vec<String> = (0..k)
        .map(|t| format!("INSERT INTO t{t} (body) VALUES ($1)"))
        .collect();
    let joined = (0..k)
        .map(|t| format!("INSERT INTO t{t} (body) VALUES (${})", t + 1))
        .collect::<Vec<_>>()
        .join(";\n");
    println!("{n} transactions of {k} single-row inserts each, SQLite WAL, synchronous=NORMAL");
    for round in 0..3 {
        let (sep_wall, sep_cpu) = measure(n, || async {
            let mut guard = conn.lock().await;
            let c: &mut SqliteConnection = &mut guard;
            let mut tx = c.begin().await?;
            for sql in &separate {
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(&body)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .await?;
        let (one_wall, one_cpu) = measure(n, || async {
            let mut guard = conn.lock().await;
            let c: &mut SqliteConnection = &mut guard;
            let mut tx = c.begin().await?;
            let mut query = sqlx::query(AssertSqlSafe(joined.clone()));
            for _ in 0..k {
                query = query.bind(&body);
            }
            query.execute(&mut *tx).await?;
            tx.commit().await
        })
        .await?;
        let saved = sep_cpu.zip(one_cpu).map(|(s, o)| (s - o) / (k - 1) as f64);
        println!(
            "round {round}: {k} calls {sep_wall:.0} us wall, {} CPU per transaction | one call {one_wall:.0} us wall, {} CPU | per call saved: {} CPU",
            show(sep_cpu),
            show(one_cpu),
            show(saved)
        );
    }
    Ok(())
}
