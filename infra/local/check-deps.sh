#!/usr/bin/env bash
# The dependency graph against deny.toml, with cargo-deny (test.sh installs it):
#   bans      one sqlx, 0.8 (postgres-es needs it; pgvector would take 0.9 — fix with
#             cargo update -p sqlx@0.9.x --precise 0.8.6); one major version of each core
#             crate (tokio, serde, axum, hyper, sqlx, cqrs-es, aws-sdk-*, …)
#   licenses  only the licences deny.toml allows
#   sources   crates.io only
#   lambda    each Lambda function's build (casebook-handlers with that function's features,
#             infra/functions.sh; arm64, as infra/lambda-build.sh builds them) reaches none of
#             the embedded models' crates (candle, onnxruntime's ort, tokenizers): they run on
#             Bedrock; and only the functions built with `bedrock` / `cognito` / `secrets`
#             reach the Bedrock runtime / Cognito / Secrets Manager SDK crates
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

# shellcheck source=../functions.sh
source infra/functions.sh
model_crates='^(candle-[a-z-]+|ort|ort-sys|tokenizers) v'
bedrock_crates='^aws-sdk-bedrockruntime v'
cognito_crates='^aws-sdk-cognitoidentityprovider v'
secrets_crates='^aws-sdk-secretsmanager v'
# The normal dependencies of casebook-handlers built for Lambda with `features`.
graph() {
  cargo tree --locked -p casebook-handlers -e normal --target aarch64-unknown-linux-gnu \
    --prefix none --format '{p}' --no-default-features --features "$1"
}
# Fails when `function`'s graph (`deps`) links a crate matching `pattern`.
refuse() {
  local function=$1 deps=$2 what=$3 pattern=$4 found
  if found=$(grep -E "$pattern" <<<"$deps" | sort -u); then
    log "$function links $what: $(tr '\n' ' ' <<<"$found")"
    exit 1
  fi
}
# Each pattern must find its crates where they are, or the checks below prove nothing.
everything=$(graph "local-models,bedrock,cognito,secrets")
for pattern in "$model_crates" "$bedrock_crates" "$cognito_crates" "$secrets_crates"; do
  grep -Eq "$pattern" <<<"$everything" || { log "the pattern $pattern matches nothing"; exit 1; }
done
for function in "${FUNCTIONS[@]}"; do
  features=${FUNCTION_FEATURES[$function]}
  deps=$(graph "$features")
  refuse "$function" "$deps" "embedded-model crates" "$model_crates"
  absent="embedded models"
  if [[ ,$features, != *,bedrock,* ]]; then
    refuse "$function" "$deps" "Bedrock" "$bedrock_crates"
    absent+=", Bedrock"
  fi
  if [[ ,$features, != *,cognito,* ]]; then
    refuse "$function" "$deps" "Cognito" "$cognito_crates"
    absent+=", Cognito"
  fi
  if [[ ,$features, != *,secrets,* ]]; then
    refuse "$function" "$deps" "Secrets Manager" "$secrets_crates"
    absent+=", Secrets Manager"
  fi
  log "$function (features: ${features:-none}) links no $absent"
done
