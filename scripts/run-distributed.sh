#!/usr/bin/env bash
# Starts the whole order system in the distributed mode on this machine's servers: every
# service its own `reference-app serve` process on Postgres (a schema each) and RabbitMQ
# (default) or NATS, the web front on 8000. Ctrl-C stops them all (each drains its in-flight
# work first).
#
#   scripts/run-distributed.sh            # RabbitMQ
#   scripts/run-distributed.sh nats       # NATS JetStream
#   REPLICAS=2 scripts/run-distributed.sh # two replicas of order, inventory, payment, shipping
#
# Uses DATABASE_URL, AMQP_URL, NATS_URL (this machine's servers by default; started if down).
# Logs go to data/distributed/<service>[-<n>].log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/saga-target}"
# shellcheck source=scripts/services.sh
source scripts/services.sh
SAGA_SERVICES_STRICT=1 saga_services_up

broker=${1:-amqp}
case $broker in
    amqp | rabbitmq) BROKER_URL=$AMQP_URL ;;
    nats) BROKER_URL=$NATS_URL ;;
    *)
        echo "usage: $0 [amqp|nats]" >&2
        exit 2
        ;;
esac
replicas=${REPLICAS:-1}

cargo build --release -p reference-app
bin=$CARGO_TARGET_DIR/release/reference-app
logs=data/distributed
mkdir -p "$logs"

pids=()
stop() {
    echo "stopping ${#pids[@]} processes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM

start() { # service port log
    "$bin" serve "$1" --port "$2" --database-url "$DATABASE_URL" --broker-url "$BROKER_URL" \
        --model-dir data/models >"$3" 2>&1 &
    pids+=($!)
}

port=8001
for svc in order inventory payment shipping notification analytics ai; do
    start "$svc" "$port" "$logs/$svc.log"
    if ((replicas > 1)) && [[ $svc =~ ^(order|inventory|payment|shipping)$ ]]; then
        for ((n = 2; n <= replicas; n++)); do
            # Extra replicas listen on 9xxx; they share the work through the broker.
            start "$svc" $((port + 1000 * (n - 1))) "$logs/$svc-$n.log"
        done
    fi
    port=$((port + 1))
done
"$bin" serve web --port 8000 >"$logs/web.log" 2>&1 &
pids+=($!)

for port in 8000 8001 8002 8003 8004 8005 8006 8007; do
    for _ in $(seq 1 120); do
        if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
            break
        fi
        sleep 0.5
    done
done
curl -fsS http://127.0.0.1:8000/api/health && echo
echo "distributed system up on $broker ($((${#pids[@]})) processes); dashboard: http://127.0.0.1:8000; Ctrl-C stops"
wait
