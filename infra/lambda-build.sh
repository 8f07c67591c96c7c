#!/usr/bin/env bash
# Builds the five Lambda functions (infra/README.md, "Deploy to AWS", step 1): arm64 (Graviton,
# provided.al2023), cross-compiled by cargo-lambda with Zig, one `bootstrap` per function, each
# with only the features it needs (infra/functions.sh).
#
#   infra/lambda-build.sh        # as deployed: the `deploy` profile (LTO, stripped; Cargo.toml)
#   CASEBOOK_LAMBDA_PROFILE=dev infra/lambda-build.sh
#                                # what the test command runs: the same functions, features,
#                                # target and linker, unoptimised — proves they compile and link
#                                # for Lambda in a fraction of the time (BENCHMARKS.md "CI")
#   → target/lambda/<function>/bootstrap (LAMBDA_DIR overrides)
#
# cargo-lambda and Zig come from PyPI into the infra tools' venv (infra/tools/infra-venv.sh);
# the Rust target is added with rustup. The `deploy` build has a target dir of its own
# ($CASEBOOK_LAMBDA_TARGET_DIR, default ~/.cache/casebook/lambda-target), nothing of which the
# host's debug build could use; the `dev` build shares the host's (CARGO_TARGET_DIR), whose
# proc-macros and build scripts it reuses.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=functions.sh
source "$HERE/functions.sh"
LAMBDA_DIR=${LAMBDA_DIR:-$ROOT/target/lambda}

log() { printf 'lambda-build.sh: %s\n' "$*" >&2; }
die() { printf 'lambda-build.sh: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tools/infra-venv.sh
source "$HERE/tools/infra-venv.sh"

ensure_infra_venv
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu >&2

PROFILE=${CASEBOOK_LAMBDA_PROFILE:-deploy}
case $PROFILE in
  deploy) export CARGO_TARGET_DIR=${CASEBOOK_LAMBDA_TARGET_DIR:-$HOME/.cache/casebook/lambda-target} ;;
  dev) export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/casebook/target} ;;
  *) die "CASEBOOK_LAMBDA_PROFILE=$PROFILE: \`deploy\` or \`dev\`" ;;
esac
start=$SECONDS
build() {
  local features=$1
  shift
  log "cargo lambda build --profile $PROFILE --arm64 --features '$features' $*"
  # --disable-optimizations: the profile says how to optimise, not cargo-lambda's environment
  # overrides.
  (cd "$ROOT" && cargo lambda build --profile "$PROFILE" --disable-optimizations --arm64 \
    --locked --lambda-dir "$LAMBDA_DIR" -p casebook-handlers --no-default-features \
    --features "$features" "$@")
}
each_feature_set build

for function in "${FUNCTIONS[@]}"; do
  bootstrap=$LAMBDA_DIR/$function/bootstrap
  [[ -x $bootstrap ]] || die "$bootstrap was not built"
  # ELF header: class ELFCLASS64 at offset 4, machine EM_AARCH64 (0xb7, little-endian) at 18.
  header=$(od -An -tx1 -N20 "$bootstrap" | tr -d ' \n')
  [[ ${header:0:8} == 7f454c46 && ${header:8:2} == 02 && ${header:36:4} == b700 ]] \
    || die "$bootstrap is not a 64-bit arm64 ELF executable"
  if [[ $PROFILE != deploy ]]; then
    log "$function: arm64 bootstrap ($PROFILE profile)"
    continue
  fi
  # What Lambda's 50 MB zip limit and its cold start's download see: the bootstrap deflated.
  zipped=$(python3 -c 'import io, sys, zipfile
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    archive.write(sys.argv[1], "bootstrap")
print(buffer.tell())' "$bootstrap")
  log "$function: $(du -h "$bootstrap" | cut -f1) arm64 bootstrap, $((zipped / 1024)) KiB zipped"
done
log "built ${#FUNCTIONS[@]} functions ($PROFILE profile) in $((SECONDS - start)) s"
