#!/usr/bin/env bash
# HTTP API fuzzing of the running embedded app with schemathesis (PyPI), against EVERY
# service's own /openapi.json: no server error, every response (status, content type, body)
# as its operation documents. Fails on any finding.
#
#   scripts/schemathesis.sh                # 100 examples per operation and phase (CI)
#   SCHEMATHESIS_MAX_EXAMPLES=1000 scripts/schemathesis.sh
#   SCHEMATHESIS_SEED=7 scripts/schemathesis.sh   # replay a run (the seed is printed)
#
# On a fresh machine it installs schemathesis (a pinned version) into a venv under
# $HOME/.cache, and python3 with its venv module from Debian first if they are missing.
# It builds the reference app (debug, into CARGO_TARGET_DIR), starts the embedded system on a
# temporary data directory and free loopback ports, runs schemathesis on each service, stops
# the app and removes the data. The app's log and the reports stay in the work folder it
# prints, when a run fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/saga-target}"
VERSION="4.32.5"
VENV="${SCHEMATHESIS_VENV:-$HOME/.cache/saga-schemathesis}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
SEED="${SCHEMATHESIS_SEED:-$RANDOM}"

st="$VENV/bin/schemathesis"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "schemathesis: installing python3 and python3-venv (Debian)"
    sudo=""
    if ((EUID != 0)); then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
fi
if [[ ! -x $st ]] || [[ $("$VENV/bin/pip" show schemathesis 2>/dev/null | sed -n 's/^Version: //p') != "$VERSION" ]]; then
    echo "schemathesis: installing schemathesis $VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi
"$st" --version

# The features of the whole workspace, as the test stage builds them: no second build of the
# dependencies after it.
cargo build --workspace --all-features --bin reference-app
bin="$CARGO_TARGET_DIR/debug/reference-app"

work=$(mktemp -d)
app_pid=""
cleanup() {
    local rc=$?
    if [[ -n $app_pid ]] && kill -0 "$app_pid" 2>/dev/null; then
        kill -TERM "$app_pid" 2>/dev/null || true
        wait "$app_pid" 2>/dev/null || true
    fi
    if ((rc == 0)); then
        rm -rf "$work"
    else
        echo "schemathesis: failed; the app's log and the reports are in $work" >&2
    fi
}
trap cleanup EXIT

# Port 0: every service on a free loopback port; the app prints where each one is. The models
# are trained once into a cache folder shared by later runs.
models="$HOME/.cache/saga-schemathesis-models"
"$bin" --data-dir "$work/data" --base-port 0 --model-dir "$models" \
    --payment-latency-ms 1 --delivery-step-ms 200 >"$work/app.log" 2>&1 &
app_pid=$!

declare -A urls=()
for _ in $(seq 1 240); do
    if ! kill -0 "$app_pid" 2>/dev/null; then
        cat "$work/app.log" >&2
        echo "schemathesis: the app exited before it was ready" >&2
        exit 1
    fi
    if grep -q "open http" "$work/app.log"; then
        while read -r name url; do
            urls[$name]=$url
        done < <(sed -n 's|^  \([a-z]*\) *\(http://[0-9.:]*\)  (.*|\1 \2|p' "$work/app.log")
        break
    fi
    sleep 0.5
done
if ((${#urls[@]} != 8)); then
    cat "$work/app.log" >&2
    echo "schemathesis: expected 8 services in the app's output, found ${#urls[@]}" >&2
    exit 1
fi

# One worker: with two, schemathesis 4.32.5 failed now and then with an internal KeyError in its
# coverage phase (a race in its own caches, not a finding about the app).
# Which checks: no 5xx; every response's body validates against its documented schema; its
# status and content type are documented for the operation.
checks="not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
echo "schemathesis: $MAX_EXAMPLES examples per operation, seed $SEED, checks $checks"
failed=()
for name in web order inventory payment shipping notification analytics ai; do
    url=${urls[$name]:?}
    echo
    echo "== $name ($url/openapi.json)"
    # Run from the work folder: schemathesis keeps a cache (`.schemathesis/`) where it runs.
    if ! (cd "$work" && "$st" --no-color run "$url/openapi.json" \
        --checks "$checks" \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --workers 1 \
        --phases examples,coverage,fuzzing \
        --request-timeout 30 \
        --suppress-health-check all \
        --generation-database none \
        --report junit --report-dir "$work/reports/$name" \
        >"$work/$name.out" 2>&1); then
        failed+=("$name")
    fi
    # The summary: operations, test cases and the checks' counts.
    sed -n '/SUMMARY/,$p' "$work/$name.out" | grep -E "passed|failed|errored|skipped|Test cases|Operations|Tested|Seed" | sed 's/^/   /' || true
done

if ((${#failed[@]} > 0)); then
    for name in "${failed[@]}"; do
        echo
        echo "== findings on $name"
        cut -c1-600 "$work/$name.out"
    done
    echo
    echo "schemathesis: findings on ${failed[*]} (seed $SEED)" >&2
    exit 1
fi
echo
echo "schemathesis: every service passed ($MAX_EXAMPLES examples per operation, seed $SEED)"
