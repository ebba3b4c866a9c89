//! Payment-success prediction: train and save the model, or evaluate it against the baseline
//! and the oracle on a later time window.
//!
//! Run with `cargo run --release -p saga-ai --features cli --bin payment -- eval`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use saga_ai::payment::{PaymentEvalConfig, PaymentGeneratorConfig, evaluate_payment};

#[derive(Parser)]
#[command(
    about = "Payment-success prediction: calibrated logistic regression on generated attempts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit on the training days, calibrate on the validation days, save the model (with its
    /// test metrics) as JSON.
    Train {
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the model.
        #[arg(long, default_value = "models/payment.json")]
        out: PathBuf,
    },
    /// Fit, then print the test-window table: model, uncalibrated model, baseline, oracle.
    Eval {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Args)]
struct DataArgs {
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Days generated (training, validation, then test).
    #[arg(long, default_value_t = 28)]
    days: u32,
    /// Mean attempts per day.
    #[arg(long, default_value_t = 6000)]
    per_day: u32,
    /// Training days.
    #[arg(long, default_value_t = 17)]
    train_days: u32,
    /// Validation days (penalty and calibration choice).
    #[arg(long, default_value_t = 4)]
    valid_days: u32,
    /// Gateway-health window in minutes.
    #[arg(long, default_value_t = 15)]
    window: u32,
}

impl DataArgs {
    fn config(&self) -> PaymentEvalConfig {
        PaymentEvalConfig {
            generator: PaymentGeneratorConfig {
                seed: self.seed,
                days: self.days,
                attempts_per_day: self.per_day,
                ..PaymentGeneratorConfig::default()
            },
            window_minutes: self.window,
            train_days: self.train_days,
            valid_days: self.valid_days,
            ..PaymentEvalConfig::default()
        }
    }
}

fn run(config: &PaymentEvalConfig) -> anyhow::Result<saga_ai::payment::PaymentEvaluation> {
    Ok(saga_ai::cli::with_spinner(|progress| {
        evaluate_payment(config, progress)
    })?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train { data, out } => {
            let eval = run(&data.config())?;
            eval.saved.save(&out)?;
            println!(
                "saved {} ({} training rows, {} calibration) to {}",
                eval.saved.meta.kind,
                eval.saved.meta.training_rows,
                eval.saved.model.calibrator.name(),
                out.display()
            );
            for (k, v) in &eval.saved.meta.metrics {
                println!("  test {k}: {v:.4}");
            }
        }
        Command::Eval { data } => {
            let config = data.config();
            let eval = run(&config)?;
            let (tr, va, te) = eval.sizes;
            println!(
                "attempts: train {tr}, validation {va}, test {te} (success rate {:.3}, {} during outages); gateway window {} min, L2 {}",
                eval.test_success_rate,
                eval.test_outage_attempts,
                config.window_minutes,
                eval.saved.model.l2
            );
            println!();
            println!("| scored on the test window | ROC-AUC | log-loss | ECE (10 bins) | Brier |");
            println!("|---|---|---|---|---|");
            for r in &eval.rows {
                println!(
                    "| {} | {:.4} | {:.4} | {:.4} | {:.4} |",
                    r.name, r.roc_auc, r.log_loss, r.ece, r.brier
                );
            }
            println!();
            println!("largest weights (standardised features):");
            for (name, w) in eval.saved.model.weights().into_iter().take(8) {
                println!("  {name:<36} {w:+.3}");
            }
        }
    }
    Ok(())
}
