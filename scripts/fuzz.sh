#!/usr/bin/env bash
# Fuzzes the decoders and the order body with cargo-fuzz (libFuzzer): each target for SECONDS
# (default 600).
#   scripts/fuzz.sh            # every target, 10 minutes each
#   scripts/fuzz.sh 60 envelope_json
# Installs cargo-fuzz if missing. cargo-fuzz needs nightly flags; on the stable toolchain
# RUSTC_BOOTSTRAP=1 allows them. Seeds are in fuzz/corpus/<target>/ (committed); new corpus
# entries go to a temporary copy, and crashes to fuzz/artifacts/<target>/ (turn each into a
# regression test, then delete it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(envelope_json cloudevents_json registry_upcast order_request)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/saga-target}-fuzz"
for target in "${targets[@]}"; do
    work=$(mktemp -d)
    cp -r "fuzz/corpus/$target/." "$work/"
    echo "== $target for ${seconds}s"
    (cd fuzz && cargo fuzz run --sanitizer none "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1)
    rm -rf "$work"
done
