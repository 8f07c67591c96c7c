#!/usr/bin/env bash
# Everything, locally, on embedded defaults: starts the stack (installing what is missing),
# builds and runs `casebook serve` in the foreground (Ctrl-C stops it; the stack keeps
# running — `infra/local/stack.sh down` stops that).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/casebook/target}
eval "$(infra/local/stack.sh up)"
export CASEBOOK_LISTEN=${CASEBOOK_LISTEN:-127.0.0.1:8080}
echo "run.sh: serving on http://$CASEBOOK_LISTEN (try: curl http://$CASEBOOK_LISTEN/health)" >&2
exec cargo run --release --locked -p casebook-handlers --bin casebook -- serve
