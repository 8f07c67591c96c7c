#!/usr/bin/env bash
# The web app's checks and build: installs its npm packages as locked (never a browser),
# type-checks, lints, runs its unit tests and builds web/dist, which `casebook serve` serves
# at /. run.sh and web-e2e.sh run it.
set -euo pipefail
cd "$(dirname "$0")/../../web"

log() { printf 'web-build.sh: %s\n' "$*" >&2; }

# The lock file decides; reinstall only when it changed since the last install.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "npm ci"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
log "type-check, lint, unit tests"
npm run --silent typecheck
npm run --silent lint
npm run --silent test
log "build"
npm run --silent build
