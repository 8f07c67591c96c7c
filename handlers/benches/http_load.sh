#!/usr/bin/env bash
# HTTP command load: `oha` against a release `casebook serve` on loopback, opening one new
# session per request (`PUT /v1/sessions/{random uuid}`, the customer's command with its id in
# the URL, so oha's --rand-regex-url gives every request its own aggregate: no conflicts, no
# idempotency keys needed). Prints a Markdown table next to the raw-append figures of
# BENCHMARKS.md "Event store" at 16 connections, one row per server mode: `api-only` (the api
# Lambda's share of the work) and `everything` (the projections in the same process, on the
# same two cores).
#
#   handlers/benches/http_load.sh                 # 16 connections, 20 s, both modes
#   BENCH_CONNECTIONS=4 BENCH_DURATION=10s BENCH_MODES=everything handlers/benches/http_load.sh
#
# Needs: the local stack (infra/local/stack.sh), oha (`cargo install oha --locked`), psql, jq.
# The server gets its own database (dropped at the end), the demo tenant's users from the
# local Cognito, rate limits scaled by CASEBOOK_RATE_LIMIT_SCALE (default here 1000, so the
# tenant's plan doesn't throttle the run). `everything` runs what `casebook serve` runs against
# the emulator (CASEBOOK_ENV=local): the projections, the relay, the worker and the jobs, as
# a deployment would beside its API.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNECTIONS=${BENCH_CONNECTIONS:-16}
DURATION=${BENCH_DURATION:-20s}
# BENCHMARKS.md "Event store", 16 connections: (a) raw INSERT commits/s, (b) raw command/s.
RAW_APPEND=${RAW_APPEND:-9972}
RAW_COMMAND=${RAW_COMMAND:-6212}

eval "$(infra/local/stack.sh env)"
: "${CARGO_TARGET_DIR:=target}"
# CASEBOOK_BIN: an already built binary (e.g. to check the script with a debug build).
BIN=${CASEBOOK_BIN:-$CARGO_TARGET_DIR/release/casebook}
if [ -z "${CASEBOOK_BIN:-}" ]; then
    cargo build --release --quiet -p casebook-handlers --bin casebook
fi

DB="casebook_http_bench_$$"
ADMIN_URL="$DATABASE_URL"
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The demo migrates the database, onboards the demo tenant and prints the token settings and
# the users' ID tokens as export lines.
eval "$("$BIN" demo 2>/dev/null)"

UUID='[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}'
# One server in `mode` (`everything`: `casebook serve`; `api-only`: `casebook serve --api-only`,
# the api Lambda's share, with the projections not running on the same cores), warmed up,
# then loaded for DURATION; prints the table row.
measure() {
    local mode=$1 port base load_before load_after
    local serve_args=(serve)
    if [ "$mode" = api-only ]; then serve_args+=(--api-only); fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    base="http://127.0.0.1:$port"
    env CASEBOOK_ENV=local CASEBOOK_LISTEN="127.0.0.1:$port" \
        CASEBOOK_RATE_LIMIT_SCALE="${CASEBOOK_RATE_LIMIT_SCALE:-1000}" \
        RUST_LOG="${RUST_LOG:-warn}" "$BIN" "${serve_args[@]}" 2>"$WORK/serve-$mode.log" &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        if curl -sf "$base/health" >/dev/null; then break; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/serve-$mode.log" >&2; exit 1; fi
        sleep 0.1
    done
    curl -sf "$base/health" >/dev/null
    load() {
        oha --no-tui --output-format json -c "$CONNECTIONS" "$@" -m PUT \
            -H "Authorization: Bearer $CUSTOMER_TOKEN" -H 'Content-Type: application/json' \
            -d '{"subject":"Load test"}' --rand-regex-url "$base/v1/sessions/$UUID"
    }
    load -n 2000 >/dev/null # warm-up: connections, JWKS cache, the tenant's tier
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    load -z "$DURATION" >"$WORK/oha-$mode.json"
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    jq -r --arg mode "$mode" --arg c "$CONNECTIONS" --arg a "$RAW_APPEND" --arg b "$RAW_COMMAND" \
        --arg before "$load_before" --arg after "$load_after" '
      (.statusCodeDistribution // {}) as $codes
      | ([$codes | to_entries[] | select(.key | startswith("2")) | .value] | add // 0) as $ok
      | ([$codes | to_entries[] | .value] | add // 0) as $all
      | ($ok / .summary.total) as $rate
      | "| \($mode) | \($c) | \($all) | \($ok) | \($rate | floor) | \(.latencyPercentiles.p50 * 1000 * 100 | round / 100) ms | \(.latencyPercentiles.p99 * 1000 * 100 | round / 100) ms | \($rate / ($a | tonumber) * 100 | round) % | \($rate / ($b | tonumber) * 100 | round) % | \($before) → \($after) |",
        (if ($all - $ok) > 0 then "\nnon-2xx answers: \($codes)" else empty end)
    ' "$WORK/oha-$mode.json"
    if grep -q '"level":"ERROR"' "$WORK/serve-$mode.log"; then
        echo "server errors ($mode):" >&2
        grep '"level":"ERROR"' "$WORK/serve-$mode.log" | head -5 >&2
    fi
}

echo "| server | connections | requests | 2xx | commands/s (2xx) | p50 | p99 | vs (a) raw append $RAW_APPEND/s | vs (b) raw command $RAW_COMMAND/s | load avg before → after |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for mode in ${BENCH_MODES:-api-only everything}; do
    measure "$mode"
done
