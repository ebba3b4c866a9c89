//! Intent and entity accuracy of the assistant's parser on labelled phrasings.
//!
//! Run with: `cargo run --release -p saga-ai --bin assistant-eval` (the held-out test set),
//! `-- --valid` for the validation set, `-- --data <file.jsonl>` for another file, and
//! `-- --threshold <p>` to try another unknown-intent threshold, `-- --sweep` to print the
//! accuracy at thresholds 0, 0.05, ..., 0.5 (how the default was chosen, on `--valid`),
//! `-- --char-weight <w>` to weigh the character n-grams differently, `-- --ablate` for the
//! accuracy without character n-grams, without spelling correction, and without both.

use std::time::Instant;

use saga_ai::assistant::eval::{TEST_PHRASES, VALID_PHRASES, evaluate, parse_cases};
use saga_ai::assistant::intent::{
    DEFAULT_THRESHOLD, TRAINING_CATALOG, TRAINING_PHRASES, parse_catalog, parse_training,
};
use saga_ai::assistant::{IntentParser, TrainParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut name, mut text) = (
        "test (data/assistant/phrasings.jsonl)".to_owned(),
        TEST_PHRASES.to_owned(),
    );
    let mut threshold = DEFAULT_THRESHOLD;
    let mut sweep = false;
    let mut ablate = false;
    let mut params = TrainParams::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--valid" => {
                name = "validation (data/assistant/valid.jsonl)".to_owned();
                text = VALID_PHRASES.to_owned();
            }
            "--data" => {
                let path = args.next().ok_or("--data needs a file")?;
                text = std::fs::read_to_string(&path)?;
                name = path;
            }
            "--sweep" => sweep = true,
            "--ablate" => ablate = true,
            "--char-weight" => {
                params.char_weight = args.next().ok_or("--char-weight needs a value")?.parse()?;
            }
            "--threshold" => {
                threshold = args.next().ok_or("--threshold needs a value")?.parse()?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let examples = parse_training(TRAINING_PHRASES)?;
    let catalog = parse_catalog(TRAINING_CATALOG)?;
    let cases = parse_cases(&text)?;
    if sweep {
        let parser = IntentParser::train(&examples, &catalog, params, 0.0)?;
        println!("set: {name}\n| threshold | intent accuracy |\n|---|---|");
        for step in 0..=10 {
            let t = f64::from(step) * 0.05;
            let eval = evaluate(&parser.clone().with_threshold(t), &cases, &catalog)?;
            println!("| {t:.2} | {:.1}% |", 100.0 * eval.intent_accuracy());
        }
        return Ok(());
    }

    if ablate {
        let no_chars = TrainParams {
            char_weight: 0.0,
            ..params
        };
        println!("set: {name}\n| variant | intent accuracy | entity accuracy |\n|---|---|---|");
        for (variant, p, spelling) in [
            ("full", params, true),
            ("no character n-grams", no_chars, true),
            ("no spelling correction", params, false),
            ("neither", no_chars, false),
        ] {
            let parser =
                IntentParser::train(&examples, &catalog, p, threshold)?.with_spelling(spelling);
            let eval = evaluate(&parser, &cases, &catalog)?;
            println!(
                "| {variant} | {:.1}% | {:.1}% |",
                100.0 * eval.intent_accuracy(),
                100.0 * eval.entity_accuracy()
            );
        }
        return Ok(());
    }
    let started = Instant::now();
    let parser = IntentParser::train(&examples, &catalog, params, threshold)?;
    let train_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let eval = evaluate(&parser, &cases, &catalog)?;
    let parse_us = started.elapsed().as_secs_f64() * 1e6 / cases.len().max(1) as f64;

    println!("set: {name}");
    println!(
        "training: {} phrasings, {train_ms:.0} ms; parsing: {parse_us:.0} us per message; threshold {threshold}",
        examples.len()
    );
    println!(
        "intent accuracy: {:.1}% ({}/{})",
        100.0 * eval.intent_accuracy(),
        eval.intent_correct,
        eval.cases
    );
    println!(
        "entity accuracy (every slot right, empty ones included): {:.1}% ({}/{})",
        100.0 * eval.entity_accuracy(),
        eval.entities_correct,
        eval.cases
    );
    println!("\n| slot | expected | correct | spurious |\n|---|---|---|---|");
    for (slot, s) in &eval.slots {
        println!(
            "| {} | {} | {} | {} |",
            serde_json::to_string(slot)?.trim_matches('"'),
            s.expected,
            s.correct,
            s.spurious
        );
    }
    println!("\nconfusion of the intent misses (expected -> predicted):");
    if eval.confusion.is_empty() {
        println!("  none");
    }
    for (pair, n) in &eval.confusion {
        println!("  {pair}: {n}");
    }
    println!("\nmisses:");
    for m in &eval.misses {
        let slots: Vec<String> = m
            .slots
            .iter()
            .map(|s| {
                serde_json::to_string(s)
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned()
            })
            .collect();
        println!(
            "  {:?}: expected {}, got {} ({:.2}){}",
            m.text,
            m.expected,
            m.predicted,
            m.confidence,
            if slots.is_empty() {
                String::new()
            } else {
                format!("; wrong slots: {}", slots.join(", "))
            }
        );
    }
    Ok(())
}
