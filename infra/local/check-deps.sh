#!/usr/bin/env bash
# The dependency graph against deny.toml, with cargo-deny (test.sh installs it):
#   bans      one sqlx, 0.8 (postgres-es needs it; pgvector would take 0.9 — fix with
#             cargo update -p sqlx@0.9.x --precise 0.8.6); one major version of each core
#             crate (tokio, serde, axum, hyper, sqlx, cqrs-es, aws-sdk-*, …)
#   licenses  only the licences deny.toml allows
#   sources   crates.io only
#   lambda    the Lambda functions' build (handlers without default features, arm64, as
#             infra/lambda-build.sh builds them) reaches none of the embedded models' crates
#             (candle, onnxruntime's ort, tokenizers): they run on Bedrock
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

# What the five functions link: one package built with one feature set, so one graph for all.
model_crates='^(candle-[a-z-]+|ort|ort-sys|tokenizers) v'
graph() {
  cargo tree --locked -p casebook-handlers -e normal --target aarch64-unknown-linux-gnu \
    --prefix none --format '{p}' "$@"
}
# The pattern must find them where they are, or the check below proves nothing.
graph | grep -Eq "$model_crates" || { log "the model crates pattern matches nothing"; exit 1; }
log "the Lambda functions' dependencies: none of candle, ort, tokenizers"
if found=$(graph --no-default-features | grep -E "$model_crates" | sort -u); then
  log "the Lambda build links embedded-model crates: $(tr '\n' ' ' <<<"$found")"
  exit 1
fi
