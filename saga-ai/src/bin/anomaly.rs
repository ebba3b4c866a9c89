//! Saga anomaly detection: learn from normal sagas and save the detector, or evaluate it on a
//! later period with injected anomalies, next to a static timeout rule.
//!
//! Run with `cargo run --release -p saga-ai --features cli --bin anomaly -- eval`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use saga_ai::anomaly::{AnomalyEvalConfig, AnomalyEvaluation, evaluate_anomaly};

#[derive(Parser)]
#[command(about = "Saga anomaly detection: step durations, event sequences, compensation storms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Learn from normal sagas, save the detector (with its test metrics) as JSON.
    Train {
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the detector.
        #[arg(long, default_value = "models/anomaly.json")]
        out: PathBuf,
    },
    /// Learn, then print average precision per anomaly kind and storm detection delays.
    Eval {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Args)]
struct DataArgs {
    /// Seed of the test period (the normal training period uses seed + 1000).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Minutes of each period.
    #[arg(long, default_value_t = 480)]
    minutes: u32,
    /// Sagas started per minute.
    #[arg(long, default_value_t = 15.0)]
    per_minute: f64,
    /// Share of test sagas given each single-saga anomaly.
    #[arg(long, default_value_t = 0.01)]
    anomaly_rate: f64,
    /// Compensation storms in the test period.
    #[arg(long, default_value_t = 3)]
    storms: u32,
    /// The baseline's fixed timeout, milliseconds.
    #[arg(long, default_value_t = 5000.0)]
    timeout_ms: f64,
}

impl DataArgs {
    fn config(&self) -> AnomalyEvalConfig {
        let mut c = AnomalyEvalConfig::default();
        c.test.seed = self.seed;
        c.test.minutes = self.minutes;
        c.test.sagas_per_minute = self.per_minute;
        c.test.anomaly_rate = self.anomaly_rate;
        c.test.storms = self.storms;
        c.train.seed = self.seed + 1000;
        c.train.minutes = self.minutes;
        c.train.sagas_per_minute = self.per_minute;
        c.timeout_ms = self.timeout_ms;
        c
    }
}

fn run(config: &AnomalyEvalConfig) -> anyhow::Result<AnomalyEvaluation> {
    Ok(saga_ai::cli::with_spinner(|progress| {
        evaluate_anomaly(config, progress)
    })?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train { data, out } => {
            let eval = run(&data.config())?;
            eval.saved.save(&out)?;
            println!(
                "saved {} (learned from {} normal sagas) to {}",
                eval.saved.meta.kind,
                eval.saved.meta.training_rows,
                out.display()
            );
            for (k, v) in &eval.saved.meta.metrics {
                println!("  test {k}: {v:.4}");
            }
        }
        Command::Eval { data } => {
            let config = data.config();
            let eval = run(&config)?;
            let d = &eval.saved.model;
            println!(
                "normal sagas learned from: {}, test sagas: {}; limits: duration z {:.2}, sequence surprise {:.2} nats, storm z {:.2} (window {} s, normal compensation rate {:.1}%)",
                eval.sizes.0,
                eval.sizes.1,
                d.duration_limit,
                d.sequence_limit,
                d.rate.threshold,
                d.rate.window_secs,
                100.0 * d.rate.baseline_rate
            );
            println!();
            println!(
                "| average precision (PR-AUC) | positives | detector | timeout rule ({} ms) | longest step |",
                config.timeout_ms
            );
            println!("|---|---|---|---|---|");
            for r in &eval.rows {
                let name = r
                    .kind
                    .map_or("all anomalies".to_string(), |k| k.to_string());
                println!(
                    "| {name} | {} | {:.3} | {:.3} | {:.3} |",
                    r.positives, r.detector, r.timeout_rule, r.longest_step
                );
            }
            println!();
            let (p, r) = eval.precision_recall;
            let (tp, tr) = eval.timeout_precision_recall;
            println!(
                "at the alarm limit: detector precision {p:.3} recall {r:.3}; timeout rule precision {tp:.3} recall {tr:.3}"
            );
            println!(
                "flagged anomalies whose top finding names the right kind: {:.3}",
                eval.kind_accuracy
            );
            println!();
            println!("| storm starts (min) | length (min) | detector delay | timeout rule |");
            println!("|---|---|---|---|");
            for s in &eval.storms {
                let delay = s
                    .delay_secs
                    .map_or("not detected".to_string(), |d| format!("{d:.0} s"));
                println!(
                    "| {:.0} | {:.1} | {delay} | no alarm (storm steps are not slow) |",
                    s.starts_at_minute, s.minutes
                );
            }
            println!("storm alarms outside any storm: {}", eval.false_alarms);
            println!();
            println!("example explanations:");
            for (kind, text) in &eval.examples {
                println!("  {kind}: {text}");
            }
        }
    }
    Ok(())
}
