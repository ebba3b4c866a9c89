# shellcheck shell=bash
# The servers the integration suites talk to: PostgreSQL, RabbitMQ, NATS (JetStream) and Redis.
#
# Source this file, then call `saga_services_up`. It
#   1. sets DATABASE_URL, AMQP_URL, NATS_URL and REDIS_URL to this machine's servers, only where
#      they are unset, and exports them;
#   2. checks that each server answers on its port (a TCP connect with a timeout);
#   3. starts a local server that does not answer (when its program is installed) and waits
#      up to SAGA_SERVICES_WAIT seconds (default 60) for all of them;
#   4. strict mode (CI=true, or SAGA_SERVICES_STRICT=1 as `.ci/run` sets): returns non-zero and
#      names every server that still does not answer. Otherwise it prints a warning: the tests
#      that need that server skip themselves.
#
# Run directly (`bash scripts/services.sh`) it does the same and exits with that status.

: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/test}"
: "${AMQP_URL:=amqp://guest:guest@127.0.0.1:5672/%2f}"
: "${NATS_URL:=nats://127.0.0.1:4222}"
: "${REDIS_URL:=redis://127.0.0.1:6379}"
export DATABASE_URL AMQP_URL NATS_URL REDIS_URL

saga_services_log() {
    printf 'services: %s\n' "$*" >&2
}

# Prints "host port" of a URL such as scheme://user:pass@host:port/path, using the scheme's
# default port when none is given.
saga_url_host_port() {
    local url=$1 default_port=$2 rest host port
    rest=${url#*://}
    rest=${rest%%/*}
    rest=${rest##*@}
    if [[ $rest == *:* ]]; then
        host=${rest%:*}
        port=${rest##*:}
    else
        host=$rest
        port=$default_port
    fi
    printf '%s %s\n' "${host:-127.0.0.1}" "$port"
}

# Whether something accepts TCP connections on host:port (within one second).
saga_port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

saga_is_local_host() {
    [[ $1 == 127.0.0.1 || $1 == localhost || $1 == ::1 ]]
}

# Starts one local server; never fails the caller (whether it came up is checked afterwards).
saga_start_service() {
    case $1 in
        postgres)
            if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
                local version
                for version in /etc/postgresql/*/; do
                    version=$(basename "$version")
                    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
                done
            else
                saga_services_log "PostgreSQL is not installed (no pg_ctlcluster)"
                return 1
            fi
            ;;
        rabbitmq)
            if command -v rabbitmq-server >/dev/null; then
                rabbitmq-server -detached >&2 || true
            else
                saga_services_log "RabbitMQ is not installed (no rabbitmq-server)"
                return 1
            fi
            ;;
        redis)
            if command -v redis-server >/dev/null; then
                redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
                    --save "" --appendonly no >&2 || true
            else
                saga_services_log "Redis is not installed (no redis-server)"
                return 1
            fi
            ;;
        nats)
            if [[ -x /usr/sbin/nats-server ]] && command -v start-stop-daemon >/dev/null; then
                mkdir -p /var/lib/nats-server 2>/dev/null || true
                start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server \
                    -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server >&2 || true
            else
                saga_services_log "NATS is not installed (no /usr/sbin/nats-server)"
                return 1
            fi
            ;;
    esac
}

# Creates the database named in DATABASE_URL when the server answers but the database is
# missing (a fresh PostgreSQL has only `postgres`). Needs psql; silent when all is well.
saga_ensure_database() {
    command -v psql >/dev/null || return 0
    psql "$DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1 && return 0
    local base=${DATABASE_URL%%\?*} db admin_url
    db=${base##*/}
    admin_url="${base%/*}/postgres"
    [[ -n $db && $db != "$base" && $db =~ ^[A-Za-z0-9_]+$ ]] || return 0
    if psql "$admin_url" -Atqc "create database \"$db\"" >/dev/null 2>&1; then
        saga_services_log "created database $db"
    fi
}

saga_services_up() {
    local strict=0
    if [[ ${CI:-} == true || ${SAGA_SERVICES_STRICT:-0} == 1 ]]; then
        strict=1
    fi
    local wait_secs=${SAGA_SERVICES_WAIT:-60}

    local -a names=(postgres rabbitmq nats redis)
    local -A label=([postgres]=PostgreSQL [rabbitmq]=RabbitMQ [nats]=NATS [redis]=Redis)
    local -A endpoint
    endpoint[postgres]=$(saga_url_host_port "$DATABASE_URL" 5432)
    endpoint[rabbitmq]=$(saga_url_host_port "$AMQP_URL" 5672)
    endpoint[nats]=$(saga_url_host_port "$NATS_URL" 4222)
    endpoint[redis]=$(saga_url_host_port "$REDIS_URL" 6379)

    local name host port
    local -a waiting=() missing=()
    for name in "${names[@]}"; do
        read -r host port <<<"${endpoint[$name]}"
        if saga_port_open "$host" "$port"; then
            continue
        fi
        if ! saga_is_local_host "$host"; then
            saga_services_log "${label[$name]} does not answer on $host:$port (not local: not started here)"
            waiting+=("$name")
        elif saga_services_log "${label[$name]} does not answer on $host:$port; starting it" &&
            saga_start_service "$name"; then
            waiting+=("$name")
        else
            missing+=("$name")
        fi
    done

    local deadline=$((SECONDS + wait_secs))
    local -a still
    while ((${#waiting[@]} > 0 && SECONDS < deadline)); do
        sleep 1
        still=()
        for name in "${waiting[@]}"; do
            read -r host port <<<"${endpoint[$name]}"
            if saga_port_open "$host" "$port"; then
                saga_services_log "${label[$name]} answers on $host:$port"
            else
                still+=("$name")
            fi
        done
        waiting=("${still[@]}")
    done

    read -r host port <<<"${endpoint[postgres]}"
    if saga_port_open "$host" "$port"; then
        saga_ensure_database
    fi

    waiting+=("${missing[@]}")
    if ((${#waiting[@]} == 0)); then
        saga_services_log "PostgreSQL, RabbitMQ, NATS and Redis answer"
        return 0
    fi
    local down=""
    for name in "${waiting[@]}"; do
        read -r host port <<<"${endpoint[$name]}"
        down+="${down:+, }${label[$name]} ($host:$port)"
    done
    if ((strict)); then
        saga_services_log "FAILED: not answering: $down"
        return 1
    fi
    saga_services_log "WARNING: not answering: $down; the tests that need them will skip"
    return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    saga_services_up
fi
