//! The examples live under `examples/<name>/main.rs`; run one with `cargo run --example NAME`.
