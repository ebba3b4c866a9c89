#!/usr/bin/env bash
# Runs every test of the workspace. The one test command of the README: ./scripts/test.sh
#
# On a fresh machine it does its own set-up:
#   * builds into CARGO_TARGET_DIR, by default $HOME/.cache/saga-target (outside the clone);
#   * points DATABASE_URL, AMQP_URL, NATS_URL and REDIS_URL at this machine's servers (only
#     where unset) and starts any local server that does not answer (scripts/services.sh);
#     with CI=true a server that stays down fails the run, otherwise its tests skip;
#   * runs the unit and integration tests with cargo-nextest when it is installed (else with
#     `cargo test`), then the doc-tests (nextest does not run those).
#
# Extra arguments go to nextest (or cargo test), e.g. ./scripts/test.sh -p saga-core retry
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/saga-target}"

# shellcheck source=scripts/services.sh
source scripts/services.sh
saga_services_up

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features "$@"
    cargo test --workspace --all-features --doc
else
    echo "test.sh: cargo-nextest is not installed; running cargo test" \
        "(cargo install cargo-nextest --locked for the faster runner)" >&2
    # cargo test runs the doc-tests too.
    cargo test --workspace --all-features "$@"
fi
