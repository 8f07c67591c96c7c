#!/usr/bin/env bash
# HTTP read latency with and without the access audit (decision 0020): `oha` against a release
# `casebook serve --api-only` on loopback, the consultant reading one session
# (`GET /v1/sessions/{id}`: one record naming it) and the first page of 20 sessions
# (`GET /v1/sessions?limit=20`: one record naming the 20), each for BENCH_DURATION, with
# CASEBOOK_ACCESS_LOG=off (the raw baseline) and on, alternating, BENCH_ROUNDS times. Prints a
# Markdown table: p50 and p99 of each, and on ÷ off.
#
#   handlers/benches/http_reads.sh                          # 16 connections, 15 s, 2 rounds
#   BENCH_CONNECTIONS=4 BENCH_DURATION=5s BENCH_ROUNDS=1 handlers/benches/http_reads.sh
#
# Needs: the local stack (infra/local/stack.sh), oha (`cargo install oha --locked`; OHA names
# another binary), psql, jq, curl. The server gets its own database (dropped at the end) and the
# demo tenant; the sessions are opened and projected by a `casebook serve` first. Rate limits
# are scaled by CASEBOOK_RATE_LIMIT_SCALE (default here 1000) so the plan doesn't throttle.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNECTIONS=${BENCH_CONNECTIONS:-16}
DURATION=${BENCH_DURATION:-15s}
ROUNDS=${BENCH_ROUNDS:-2}
OHA=${OHA:-oha}

eval "$(infra/local/stack.sh env)"
: "${CARGO_TARGET_DIR:=target}"
BIN=${CASEBOOK_BIN:-$CARGO_TARGET_DIR/release/casebook}
if [ -z "${CASEBOOK_BIN:-}" ]; then
    cargo build --release --quiet -p casebook-handlers --bin casebook
fi

DB="casebook_http_reads_$$"
ADMIN_URL="$DATABASE_URL"
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
WORK=$(mktemp -d)
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() {
    stop_server
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

eval "$("$BIN" demo 2>/dev/null)"

# Starts `casebook <args>` on a free port with the access log `$1` (on/off); sets BASE.
start_server() {
    local access_log=$1 port
    shift
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    BASE="http://127.0.0.1:$port"
    env CASEBOOK_ENV=local CASEBOOK_LISTEN="127.0.0.1:$port" CASEBOOK_ACCESS_LOG="$access_log" \
        CASEBOOK_RATE_LIMIT_SCALE="${CASEBOOK_RATE_LIMIT_SCALE:-1000}" \
        RUST_LOG="${RUST_LOG:-warn}" "$BIN" "$@" 2>>"$WORK/serve.log" >/dev/null &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        if curl -sf "$BASE/health" >/dev/null; then return; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/serve.log" >&2; exit 1; fi
        sleep 0.1
    done
    curl -sf "$BASE/health" >/dev/null
}

# Twenty sessions, opened by the customer and projected, so every read finds them.
start_server off serve
SESSION=""
for _ in $(seq 1 20); do
    SESSION=$(cat /proc/sys/kernel/random/uuid)
    curl -sf -X PUT "$BASE/v1/sessions/$SESSION" -H "Authorization: Bearer $CUSTOMER_TOKEN" \
        -H 'Content-Type: application/json' -d '{"subject":"Load test"}' >/dev/null
done
for _ in $(seq 1 300); do
    listed=$(curl -sf "$BASE/v1/sessions?limit=20" -H "Authorization: Bearer $CONSULTANT_TOKEN" | jq '.items | length')
    if [ "$listed" = 20 ]; then break; fi
    sleep 0.1
done
[ "$listed" = 20 ] || { echo "the sessions were never projected" >&2; exit 1; }
stop_server

ONE="/v1/sessions/$SESSION"
PAGE="/v1/sessions?limit=20"
records() { psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM access_log"; }
# One run: the server with the access log $1, loaded on $2; prints "p50 p99 ok total rate"
# (ms, requests/s). With the access log on, every request must have its record once the server
# stopped (it drains as it stops): anything missing was dropped, and fails the run. (The
# requests oha abandons at its deadline, one per connection at most, may be answered and
# recorded too.)
measure() {
    local access_log=$1 path=$2 out="$WORK/oha.json" before after expected
    before=$(records)
    start_server "$access_log" serve --api-only
    "$OHA" --no-tui --output-format json -c "$CONNECTIONS" -n 2000 \
        -H "Authorization: Bearer $CONSULTANT_TOKEN" "$BASE$path" >/dev/null # warm-up
    "$OHA" --no-tui --output-format json -c "$CONNECTIONS" -z "$DURATION" \
        -H "Authorization: Bearer $CONSULTANT_TOKEN" "$BASE$path" >"$out"
    stop_server
    after=$(records)
    expected=$([ "$access_log" = on ] && jq '2000 + ([.statusCodeDistribution[]] | add)' "$out" || echo 0)
    if [ $((after - before)) -lt "$expected" ] || [ $((after - before)) -gt $((expected + CONNECTIONS)) ]; then
        echo "access records: $((after - before)) stored for $expected requests ($path, $access_log)" >&2
        exit 1
    fi
    jq -r '[(.latencyPercentiles.p50 * 1000), (.latencyPercentiles.p99 * 1000),
            ([.statusCodeDistribution | to_entries[] | select(.key == "200") | .value] | add // 0),
            ([.statusCodeDistribution | to_entries[] | .value] | add // 0),
            .summary.requestsPerSec] | @tsv' "$out"
}

declare -A P50 P99 RATE
for round in $(seq 1 "$ROUNDS"); do
    for path in "$ONE" "$PAGE"; do
        for access_log in off on; do
            read -r p50 p99 ok all rate < <(measure "$access_log" "$path")
            if [ "$ok" != "$all" ]; then echo "non-200 answers: $ok of $all ($path, $access_log)" >&2; fi
            key="$path|$access_log"
            P50[$key]="${P50[$key]:-} $p50"
            P99[$key]="${P99[$key]:-} $p99"
            RATE[$key]="${RATE[$key]:-} $rate"
        done
    done
done

# "lo–hi" of a list of numbers, to 2 decimals (0 for rates).
range() {
    local digits=$1
    shift
    printf '%s\n' "$@" | sort -g | sed -n '1p;$p' | xargs printf "%.${digits}f " | awk '{ if ($1 == $2 || NF == 1) print $1; else print $1 "–" $2 }'
}
ratio() {
    python3 -c 'import sys; on=[float(x) for x in sys.argv[1].split()]; off=[float(x) for x in sys.argv[2].split()]
r=[a/b for a,b in zip(on,off)]; print(("%.2f" % min(r)) if min(r)==max(r) else "%.2f–%.2f" % (min(r), max(r)))' "$1" "$2"
}

echo "| read | connections | p50 off → on (ms) | p99 off → on (ms) | p99 on ÷ off | requests/s off → on |"
echo "|---|---|---|---|---|---|"
for path in "$ONE" "$PAGE"; do
    name=$([ "$path" = "$ONE" ] && echo "one session" || echo "a page of 20 sessions")
    off="$path|off" on="$path|on"
    # shellcheck disable=SC2086
    echo "| $name | $CONNECTIONS | $(range 2 ${P50[$off]}) → $(range 2 ${P50[$on]}) | $(range 2 ${P99[$off]}) → $(range 2 ${P99[$on]}) | $(ratio "${P99[$on]}" "${P99[$off]}") | $(range 0 ${RATE[$off]}) → $(range 0 ${RATE[$on]}) |"
done
if grep -q '"level":"ERROR"' "$WORK/serve.log"; then
    echo "server errors:" >&2
    grep '"level":"ERROR"' "$WORK/serve.log" | head -5 >&2
fi
