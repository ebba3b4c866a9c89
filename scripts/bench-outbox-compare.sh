#!/usr/bin/env bash
# Runs bench/outbox-compare (outside the workspace, never built in CI) against scratch
# Postgres databases: outbox-core + outbox-postgres through their documented API, then
# ruststream-sqlx through its documented API (its Relay guide's table, then two variants, each
# in a database of its own), then saga-outbox's bench_relay with the same number of events.
# Usage: scripts/bench-outbox-compare.sh [events]   (default 50000)
# Needs psql and a server at DATABASE_URL's host (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/../bench/outbox-compare"
base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
db="outbox_compare_$$"
url="${base%/*}/$db"
cargo build --release
# outbox-postgres ships its schema as sqlx migrations (its README asks users to apply them).
pkg_dir=$(cargo metadata --format-version 1 | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in meta["packages"] if p["name"] == "outbox-postgres"))')
forms=(lease row-lock unordered)
psql -q "$base" -c "CREATE DATABASE $db"
for form in "${forms[@]}"; do psql -q "$base" -c "CREATE DATABASE ${db}_${form//-/_}"; done
drop() {
  psql -q "$base" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  for form in "${forms[@]}"; do psql -q "$base" -c "DROP DATABASE IF EXISTS ${db}_${form//-/_} WITH (FORCE)"; done
}
trap drop EXIT
for f in "$pkg_dir"/migrations/*.sql; do psql -q -v ON_ERROR_STOP=1 "$url" -f "$f"; done
target="${CARGO_TARGET_DIR:-target}"
uptime
"$target/release/outbox-compare" "$url" "${1:-50000}"
uptime
# ruststream-sqlx ships no migrations: its guides have the service create its tables, which
# ruststream-compare does (CREATE TABLE IF NOT EXISTS) before it produces.
for form in "${forms[@]}"; do
  "$target/release/ruststream-compare" "${base%/*}/${db}_${form//-/_}" "${1:-50000}" "$form"
  uptime
done
# saga-outbox in the same run, same event count and producers (BENCH_ONLY_COMPARE=1 skips it).
if [ -z "${BENCH_ONLY_COMPARE:-}" ]; then
  cd ../..
  DATABASE_URL="$base" cargo run --release -p saga-outbox --features bench --bin bench_relay -- "${1:-50000}" 10000
  uptime
fi
