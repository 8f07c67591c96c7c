#!/usr/bin/env bash
# The web app, checked and then driven in a real browser:
#   infra/local/web-e2e.sh [extra Playwright arguments]
# Installs what is missing (Debian's chromium and chromium-driver; the app's npm packages,
# without any browser download), type-checks, lints, unit-tests and builds web/, then starts
# `casebook serve` on a free loopback port over a database of its own (with the emulator and
# the embedded models, as run.sh does) and runs the Playwright end-to-end test in the system
# Chromium against it. Screenshots land in web/test-results/. test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf 'web-e2e.sh: %s\n' "$*" >&2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/casebook/target}

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  log "installing Debian's chromium and chromium-driver"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
fi

eval "$(infra/local/stack.sh up)"
# Against the stack's AWS emulator, as run.sh serves.
export CASEBOOK_ENV=local
infra/local/models.sh

infra/local/web-build.sh

cargo build --locked -p casebook-handlers --bin casebook
casebook=$CARGO_TARGET_DIR/debug/casebook

# A database of its own, dropped afterwards; the emulator's user pool is the local one, so
# the test signs its practices up with addresses of its own run.
database=casebook_e2e_$(date +%s)_$$
psql "$CASEBOOK_PG_ADMIN_URL" -qXc "CREATE DATABASE $database"
export DATABASE_URL=${DATABASE_URL%/*}/$database
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CASEBOOK_LISTEN=127.0.0.1:$port
export CASEBOOK_WEB_DIR=$PWD/web/dist
# The local pool's token settings (the demo practice comes along; the test doesn't use it).
eval "$("$casebook" demo --exports)"

mkdir -p web/test-results
server_log=$PWD/web/test-results/server.log
"$casebook" serve > "$server_log" 2>&1 &
server=$!
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql "$CASEBOOK_PG_ADMIN_URL" -qXc "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
}
trap stop EXIT

for _ in $(seq 1 300); do
  curl -fs "http://$CASEBOOK_LISTEN/health" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { log "the server stopped:"; tail -20 "$server_log" >&2; exit 1; }
  sleep 0.2
done

log "Playwright in $(command -v chromium) against http://$CASEBOOK_LISTEN"
cd web
CASEBOOK_E2E_URL=http://$CASEBOOK_LISTEN CASEBOOK_E2E_LOG=$server_log \
  npx --no-install playwright test "$@"
