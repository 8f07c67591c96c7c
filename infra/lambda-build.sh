#!/usr/bin/env bash
# Builds the five Lambda functions exactly as a deployment does (infra/README.md, "Deploy to
# AWS", step 1): release, arm64 (Graviton, provided.al2023), cross-compiled by cargo-lambda
# with Zig, one `bootstrap` per function.
#
#   infra/lambda-build.sh        # → target/lambda/<function>/bootstrap (LAMBDA_DIR overrides)
#
# cargo-lambda and Zig come from PyPI into the infra tools' venv (infra/tools/infra-venv.sh);
# the Rust target is added with rustup. The build has a target dir of its own
# ($CASEBOOK_LAMBDA_TARGET_DIR, default ~/.cache/casebook/lambda-target): its release arm64
# artifacts share nothing with the debug host build, and a separate dir keeps the two from
# waiting on each other's lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
FUNCTIONS=(api authorizer worker scheduler projector)
LAMBDA_DIR=${LAMBDA_DIR:-$ROOT/target/lambda}

log() { printf 'lambda-build.sh: %s\n' "$*" >&2; }
die() { printf 'lambda-build.sh: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tools/infra-venv.sh
source "$HERE/tools/infra-venv.sh"

ensure_infra_venv
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu >&2

export CARGO_TARGET_DIR=${CASEBOOK_LAMBDA_TARGET_DIR:-$HOME/.cache/casebook/lambda-target}
start=$SECONDS
bins=()
for function in "${FUNCTIONS[@]}"; do bins+=(--bin "$function"); done
# Without default features: the functions run on Bedrock and link no embedded-model code
# (infra/local/check-deps.sh checks the graph).
log "cargo lambda build --release --arm64 --no-default-features ${FUNCTIONS[*]}"
(cd "$ROOT" && cargo lambda build --release --arm64 --locked --lambda-dir "$LAMBDA_DIR" \
  -p casebook-handlers --no-default-features "${bins[@]}")

for function in "${FUNCTIONS[@]}"; do
  bootstrap=$LAMBDA_DIR/$function/bootstrap
  [[ -x $bootstrap ]] || die "$bootstrap was not built"
  # ELF header: class ELFCLASS64 at offset 4, machine EM_AARCH64 (0xb7, little-endian) at 18.
  header=$(od -An -tx1 -N20 "$bootstrap" | tr -d ' \n')
  [[ ${header:0:8} == 7f454c46 && ${header:8:2} == 02 && ${header:36:4} == b700 ]] \
    || die "$bootstrap is not a 64-bit arm64 ELF executable"
  log "$function: $(du -h "$bootstrap" | cut -f1) arm64 bootstrap"
done
log "built ${#FUNCTIONS[@]} functions in $((SECONDS - start)) s"
