//! Demand forecasting: the M3 back-test and the stock-out evaluation.
//!
//! Run with:
//! `scripts/ai-data-forecast.sh && cargo run --release -p saga-ai --features cli --bin forecast -- eval --data data/ai/m3`
//! and `cargo run --release -p saga-ai --features cli --bin forecast -- stockout-eval`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use saga_ai::forecast::backtest::{
    Backtest, Candidate, Scores, Window, score_selection, select_per_frequency,
};
use saga_ai::forecast::m3::{self, Frequency};
use saga_ai::forecast::{ENSEMBLE_AGGREGATE, ENSEMBLE_MEMBERS, Method};

#[derive(Parser)]
#[command(about = "Demand forecasting: M3 back-test and stock-out evaluation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Back-test every method on the M3 data (official horizons), with combinations chosen on
    /// validation windows, and print sMAPE and MASE per frequency.
    Eval {
        /// The directory holding m3_data.json (from scripts/ai-data-forecast.sh).
        #[arg(long, default_value = "data/ai/m3")]
        data: PathBuf,
    },
}

/// The methods forecast on every series; combinations merge their forecasts.
const BASE: [Method; 7] = [
    Method::Naive,
    Method::SeasonalNaive,
    Method::Naive2,
    Method::Ses,
    Method::Holt,
    Method::Damped,
    Method::Theta,
];

/// The methods that combinations draw from.
const POOL: [Method; 5] = [
    Method::Naive2,
    Method::Ses,
    Method::Holt,
    Method::Damped,
    Method::Theta,
];

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Eval { data } => eval(&data),
    }
}

fn row(name: &str, scores: &BTreeMap<Option<Frequency>, Scores>) -> String {
    let mut cells = vec![format!("{name:<34}")];
    for key in Frequency::ALL.map(Some).into_iter().chain([None]) {
        match scores.get(&key) {
            Some(s) => cells.push(format!("{:>6.2} {:>5.2}", s.smape, s.mase)),
            None => cells.push(format!("{:>12}", "-")),
        }
    }
    format!("| {} |", cells.join(" | "))
}

fn header() -> String {
    let mut cells = vec![format!("{:<34}", "method (sMAPE MASE)")];
    for f in Frequency::ALL {
        cells.push(format!("{:>12}", f.name()));
    }
    cells.push(format!("{:>12}", "all"));
    let line = format!("| {} |", cells.join(" | "));
    let rule = line
        .chars()
        .map(|c| if c == '|' { '|' } else { '-' })
        .collect::<String>();
    format!("{line}\n{rule}")
}

fn eval(data: &std::path::Path) -> Result<()> {
    let series = m3::load(data).with_context(|| {
        format!(
            "loading M3 from {} (run scripts/ai-data-forecast.sh first)",
            data.display()
        )
    })?;
    let counts: BTreeMap<Frequency, usize> =
        series.iter().fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s.frequency).or_insert(0) += 1;
            m
        });
    println!("M3: {} series {counts:?}", series.len());

    let bar = ProgressBar::new(series.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} series, {elapsed} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let backtest = Backtest::run(&series, &BASE, || bar.inc(1))?;
    bar.finish_and_clear();
    println!(
        "fitted {} methods x 2 windows x {} series in {:.1} s; {} fits fell back to naive",
        BASE.len(),
        series.len(),
        started.elapsed().as_secs_f64(),
        backtest.failures.len()
    );
    for (m, id, e) in backtest.failures.iter().take(5) {
        println!("  {} on {id}: {e}", m.name());
    }

    // Choose the combination per frequency on validation windows only.
    let theta = Candidate::single(Method::Theta);
    let mut candidates: Vec<Candidate> = POOL.iter().map(|&m| Candidate::single(m)).collect();
    candidates.extend(Candidate::all_combinations(&POOL));
    let selection = select_per_frequency(&backtest, &candidates, &theta)?;
    println!("\nchosen on validation (last horizon of each training part):");
    for (f, c) in &selection {
        println!("  {:<9} {}", f.name(), c.name);
    }

    println!("\nvalidation window:\n{}", header());
    let mut fixed: Vec<Candidate> = BASE.iter().map(|&m| Candidate::single(m)).collect();
    fixed.push(Candidate::combination(
        &[Method::Ses, Method::Holt, Method::Damped],
        saga_ai::forecast::Aggregate::Mean,
    ));
    fixed.push(Candidate::combination(&ENSEMBLE_MEMBERS, ENSEMBLE_AGGREGATE));
    for c in &fixed {
        println!("{}", row(&c.name, &backtest.score(c, Window::Validation)?));
    }
    println!(
        "{}",
        row(
            "selected per frequency",
            &score_selection(&backtest, &selection, Window::Validation)?
        )
    );

    println!("\ntest window (official M3 horizons):\n{}", header());
    for c in &fixed {
        println!("{}", row(&c.name, &backtest.score(c, Window::Test)?));
    }
    println!(
        "{}",
        row(
            "selected per frequency",
            &score_selection(&backtest, &selection, Window::Test)?
        )
    );
    Ok(())
}
