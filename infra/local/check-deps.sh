#!/usr/bin/env bash
# The dependency graph against deny.toml, with cargo-deny (test.sh installs it):
#   bans      one sqlx, 0.8 (postgres-es needs it; pgvector would take 0.9 — fix with
#             cargo update -p sqlx@0.9.x --precise 0.8.6); one major version of each core
#             crate (tokio, serde, axum, hyper, sqlx, cqrs-es, aws-sdk-*, …)
#   licenses  only the licences deny.toml allows
#   sources   crates.io only
#   advisories  only when the RustSec database (a GitHub repository) can be fetched: where
#             GitHub is out of reach, as on this project's machines and CI, the check is
#             skipped and this script says so.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf 'check-deps.sh: %s\n' "$*" >&2; }

if ! command -v cargo-deny >/dev/null 2>&1; then
  log "cargo-deny is missing: cargo install --locked cargo-deny"
  exit 1
fi

checks=(bans licenses sources)
# A failed fetch answers at once where the host does not resolve; the timeout bounds a
# network that swallows packets instead.
if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
  checks+=(advisories)
else
  log "advisories NOT checked: the RustSec advisory database could not be fetched"
fi
log "cargo deny check ${checks[*]}"
cargo deny --locked check "${checks[@]}"
