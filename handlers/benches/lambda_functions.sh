#!/usr/bin/env bash
# The Lambda functions' cold and warm starts, memory and sizes, for BENCHMARKS.md "Lambda
# functions":
#
#   handlers/benches/lambda_functions.sh          # 200 warm invocations per function
#   BENCH_WARM=50 handlers/benches/lambda_functions.sh
#
# 1. infra/lambda-build.sh: the arm64 bootstraps as deployed, their sizes unzipped and zipped.
# 2. The same functions built for this machine (x86_64: the arm64 ones don't run here), in the
#    same `deploy` profile with the same features (infra/functions.sh), then started one by
#    one against a local Lambda Runtime API by handlers/benches/lambda_functions.rs: init,
#    first invocation, warm p50/p99, memory, beside a bare lambda_runtime function.
#
# Needs the local stack (infra/local/stack.sh up).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../../infra/functions.sh
source infra/functions.sh

eval "$(infra/local/stack.sh env)"
WARM=${BENCH_WARM:-200}
LAMBDA_TARGET=${CASEBOOK_LAMBDA_TARGET_DIR:-$HOME/.cache/casebook/lambda-target}

infra/lambda-build.sh

build_here() {
  local features=$1
  shift
  CARGO_TARGET_DIR=$LAMBDA_TARGET cargo build --quiet --profile deploy --locked \
    -p casebook-handlers --no-default-features --features "$features" "$@"
}
each_feature_set build_here

cargo bench --quiet -p casebook-handlers --bench lambda_functions -- "$LAMBDA_TARGET/deploy" "$WARM"
