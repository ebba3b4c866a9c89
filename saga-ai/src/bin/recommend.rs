//! Recommendation evaluation on MovieLens 100k, leave-last-out.
//!
//! Run with: `scripts/ai-data-recommend.sh && cargo run --release -p saga-ai --features cli --bin
//! recommend -- eval --data data/ai/ml-100k`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use saga_ai::recommend::evaluate::{evaluate, leave_last_out};
use saga_ai::recommend::metrics::RankingSummary;
use saga_ai::recommend::movielens::{TieOrder, load_inter};
use saga_ai::recommend::tune::{SequentialGrid, tune_ease, tune_item_knn, tune_sequential};
use saga_ai::recommend::{
    Ease, Interactions, ItemKnn, ItemScorer, Popularity, RecommenderService, SequentialEase,
};
use saga_ai::{ModelMeta, SavedModel};

const K: usize = 10;

#[derive(Parser)]
#[command(about = "Recommendation models: evaluation on MovieLens 100k")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Ties {
    ItemId,
    File,
}

#[derive(Subcommand)]
enum Command {
    /// Tunes every model on the validation items, then reports HR@10 and NDCG@10 on the test items.
    Eval {
        /// Folder holding ml-100k.inter (from scripts/ai-data-recommend.sh).
        #[arg(long, default_value = "data/ai/ml-100k")]
        data: PathBuf,
        /// Order of ratings within the same second: by item id (the reference protocol)
        /// or as in the file.
        #[arg(long, value_enum, default_value = "item-id")]
        ties: Ties,
        /// Also save the order-aware model (fitted on all but the test items) to this file.
        #[arg(long)]
        save: Option<PathBuf>,
    },
}

use saga_ai::cli::bar;

struct Row {
    name: &'static str,
    setting: String,
    valid: RankingSummary,
    test: RankingSummary,
    fit_secs: f64,
    score_secs: f64,
}

/// Runs `f` and returns its result with the seconds it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Eval { data, ties, save } => eval(
            data,
            match ties {
                Ties::ItemId => TieOrder::ItemId,
                Ties::File => TieOrder::FileOrder,
            },
            save,
        ),
    }
}

fn eval(dir: PathBuf, ties: TieOrder, save: Option<PathBuf>) -> Result<()> {
    let path = dir.join("ml-100k.inter");
    let sequences = load_inter(&path, ties).with_context(|| {
        format!(
            "run scripts/ai-data-recommend.sh first ({})",
            path.display()
        )
    })?;
    let split = leave_last_out(&sequences);
    let valid_data = Interactions::from_histories(split.valid_train.clone())?;
    let (test_data, counts_secs) = timed(|| Interactions::from_histories(split.test_train.clone()));
    let test_data = test_data?;
    println!(
        "MovieLens 100k (ties within a second: {ties:?}): {} users, {} interactions in the test fold's training part, {} items; \
         {} validation and {} test users ({} too short)",
        sequences.len(),
        test_data.n_interactions(),
        test_data.n_items(),
        split.valid_targets.len(),
        split.test_targets.len(),
        split.too_short
    );
    let (vt, tt) = (&split.valid_targets, &split.test_targets);
    let mut rows = Vec::new();

    // Popularity: nothing to tune.
    let (test, score_secs) = timed(|| evaluate(&test_data, &Popularity, tt, K));
    rows.push(Row {
        name: "popularity",
        setting: "-".into(),
        valid: evaluate(&valid_data, &Popularity, vt, K)?,
        test: test?,
        fit_secs: 0.0,
        score_secs,
    });

    // Cosine item-kNN.
    let grid = [Some(20), Some(50), Some(100), Some(200), None];
    let pb = bar(grid.len(), "item-kNN: tuning neighbours");
    let knn = tune_item_knn(&valid_data, vt, K, &grid, &mut |d, _| {
        pb.set_position(d as u64)
    })?;
    pb.finish();
    let (test, score_secs) = timed(|| evaluate(&test_data, &ItemKnn::new(knn.params), tt, K));
    rows.push(Row {
        name: "cosine item-kNN",
        setting: format!(
            "neighbours {}",
            knn.params.map_or("all".into(), |n| n.to_string())
        ),
        valid: knn.valid,
        test: test?,
        fit_secs: 0.0,
        score_secs,
    });

    // EASE.
    let lambdas = [50.0, 100.0, 200.0, 400.0, 800.0];
    let pb = bar(lambdas.len(), "EASE: tuning lambda");
    let ease = tune_ease(&valid_data, vt, K, &lambdas, &mut |d, _| {
        pb.set_position(d as u64)
    })?;
    pb.finish();
    let (ease_model, ease_fit) = timed(|| Ease::fit(&test_data, ease.params));
    let ease_model = ease_model?;
    let (test, score_secs) = timed(|| evaluate(&test_data, &ease_model, tt, K));
    rows.push(Row {
        name: "EASE",
        setting: format!("lambda {}", ease.params),
        valid: ease.valid,
        test: test?,
        fit_secs: ease_fit,
        score_secs,
    });

    // Order-aware: EASE + recent-item transitions.
    let grid = SequentialGrid::default();
    let steps = grid.len() / grid.alphas.len().max(1);
    let pb = bar(steps, "EASE+transitions: tuning");
    let t = Instant::now();
    let seq = tune_sequential(&valid_data, vt, K, &grid, &mut |d, _| {
        pb.set_position(d as u64)
    })?;
    pb.finish();
    let tune_secs = t.elapsed().as_secs_f64();
    let (seq_model, seq_fit) = timed(|| SequentialEase::fit(&test_data, seq.params));
    let seq_model = seq_model?;
    let p = seq.params;
    let (seq_test, score_secs) = timed(|| evaluate(&test_data, &seq_model, tt, K));
    let seq_test = seq_test?;
    rows.push(Row {
        name: "EASE + transitions (order-aware)",
        setting: format!(
            "lambda {}, gap window {}, gap decay {}, recent {}, recency decay {}, alpha {}",
            p.lambda, p.gap_window, p.gap_decay, p.recent, p.recency_decay, p.alpha
        ),
        valid: seq.valid,
        test: seq_test,
        fit_secs: seq_fit,
        score_secs,
    });

    println!();
    println!(
        "| model | setting (chosen on validation) | valid HR@10 | valid NDCG@10 | test HR@10 | test NDCG@10 | fit (s) | score 943 users (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {:.2} |",
            r.name,
            r.setting,
            r.valid.hit_rate,
            r.valid.ndcg,
            r.test.hit_rate,
            r.test.ndcg,
            r.fit_secs,
            r.score_secs
        );
    }
    println!();
    println!(
        "fit = time to fit on the test fold's training part ({} items) beyond the purchase \
         counts, which every model shares and which took {counts_secs:.2} s to build (popularity \
         and item-kNN read them live, so fit nothing more); tuning: {} settings of the \
         order-aware model in {tune_secs:.1} s",
        test_data.n_items(),
        seq.tried
    );
    let hr_ok = seq_test.hit_rate >= 0.15;
    let ndcg_ok = seq_test.ndcg >= 0.08;
    println!(
        "target HR@10 >= 0.15: {} ({:.4}); target NDCG@10 >= 0.08: {} ({:.4})",
        if hr_ok { "met" } else { "MISSED" },
        seq_test.hit_rate,
        if ndcg_ok { "met" } else { "MISSED" },
        seq_test.ndcg
    );

    if let Some(out) = save {
        let metrics = BTreeMap::from([
            ("hit_rate_at_10".to_owned(), seq_test.hit_rate),
            ("ndcg_at_10".to_owned(), seq_test.ndcg),
        ]);
        let meta = ModelMeta {
            kind: seq_model.kind().to_owned(),
            format_version: 1,
            trained_at: chrono::Utc::now(),
            training_rows: test_data.n_interactions(),
            features: vec!["purchase history (ordered)".into()],
            metrics,
            evaluation: "MovieLens 100k leave-last-out over all items; settings chosen on the \
                         second-to-last item, metrics on the last"
                .into(),
        };
        let service = RecommenderService::new(test_data, seq_model);
        SavedModel {
            meta,
            model: service,
        }
        .save(&out)?;
        println!("saved {}", out.display());
    }
    Ok(())
}
