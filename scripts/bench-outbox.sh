#!/usr/bin/env bash
# Outbox relay benchmarks (SQLite NORMAL/FULL, Postgres if DATABASE_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
cargo run --release -p saga-outbox --features bench --bin bench_relay -- "${1:-20000}"
