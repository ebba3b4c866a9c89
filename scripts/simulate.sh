#!/usr/bin/env bash
# The long run of the saga engine's deterministic simulation (saga-core/tests/simulation.rs):
# 10,000 seeds by default (CI runs 1,000 through the normal test suite).
#   scripts/simulate.sh            # 10,000 seeds
#   scripts/simulate.sh 50000      # more
#   SIM_SEED=123 scripts/simulate.sh   # replay one seed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/saga-target}"
export SIM_SEEDS="${1:-${SIM_SEEDS:-10000}}"
cargo test --release -p saga-core --all-features --test simulation -- --nocapture
