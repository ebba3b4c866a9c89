#!/usr/bin/env bash
# The crash-and-restart harness, long version (issue 9): per stack, the load generator places
# CHAOS_ORDERS orders while CHAOS_ROUNDS times a process is killed with SIGKILL and restarted
# (and, on the distributed stacks, the broker connections dropped and the services' Postgres
# backends terminated); then the invariant checker must find nothing. The harness is
# reference-app/tests/chaos.rs; CI runs its short version (3 rounds, 500 orders).
#
#   scripts/chaos.sh                 # every stack: embedded, Postgres+RabbitMQ, Postgres+NATS
#   scripts/chaos.sh embedded        # one of them: embedded | amqp | nats
#   CHAOS_SEED=7 scripts/chaos.sh nats
#
# Settings (environment): CHAOS_ROUNDS (20), CHAOS_ORDERS (5000), CHAOS_CONCURRENCY (24),
# CHAOS_SEED (the test's default), CHAOS_QUIESCE_SECS (180). Release build. Prints a table
# row per stack (the columns of docs/RELIABILITY.md) and exits non-zero if any stack failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/saga-target}"

case ${1:-all} in
    embedded) tests=(embedded) ;;
    amqp | rabbitmq) tests=(postgres_rabbitmq) ;;
    nats) tests=(postgres_nats) ;;
    all) tests=(embedded postgres_rabbitmq postgres_nats) ;;
    *)
        echo "usage: $0 [embedded|amqp|nats|all]" >&2
        exit 2
        ;;
esac

# shellcheck source=scripts/services.sh
source scripts/services.sh
if [[ ${tests[*]} != embedded ]]; then
    SAGA_SERVICES_STRICT=1 saga_services_up
fi

export CHAOS_ROUNDS="${CHAOS_ROUNDS:-20}"
export CHAOS_ORDERS="${CHAOS_ORDERS:-5000}"
export CHAOS_CONCURRENCY="${CHAOS_CONCURRENCY:-24}"

cargo test --release -p reference-app --test chaos --no-run

out=$(mktemp)
trap 'rm -f "$out"' EXIT
failed=()
for t in "${tests[@]}"; do
    echo "==> chaos $t: $CHAOS_ROUNDS rounds, $CHAOS_ORDERS orders, concurrency $CHAOS_CONCURRENCY"
    start=$SECONDS
    # The test's stderr (progress, the checker's report, logs of a failure) goes to the
    # terminal; its stdout carries the result row.
    if cargo test --release -p reference-app --test chaos -- --exact "$t" --nocapture \
        --test-threads 1 | tee -a "$out"; then
        echo "<== chaos $t: ok ($((SECONDS - start)) s)"
    else
        echo "<== chaos $t: FAILED ($((SECONDS - start)) s)"
        failed+=("$t")
    fi
done

echo
echo "| stack | rounds | orders sent | accepted | terminal | completed | lost | double effects | stuck sagas | panics | violations | seconds | load average |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
grep '^CHAOS-ROW' "$out" | sed 's/^CHAOS-ROW //' || true
echo "(CHAOS_SEED=${CHAOS_SEED:-default} scripts/chaos.sh ${1:-all}; $(date -u +%F))"
if ((${#failed[@]} > 0)); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
