# Sourced by infra/validate.sh and infra/lambda-build.sh: the offline infrastructure tools
# (cfn-lint, checkov, the SAM translator, cargo-lambda with its Zig) in one virtualenv under
# ${CASEBOOK_CACHE:-/var/cache/casebook} (as root; ~/.cache/casebook otherwise)/infra-venv,
# installed from PyPI at pinned versions once and reused after (a change of pins reinstalls).
# Defines ensure_infra_venv, which also puts the venv first on PATH.

INFRA_VENV_PINS=(cfn-lint==1.58.0 checkov==3.3.30 aws-sam-translator==1.115.0 cargo-lambda==1.9.2)

infra_venv_die() { printf '%s: ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
infra_venv_is_root() { [[ $(id -u) -eq 0 ]]; }

if [[ -n ${CASEBOOK_CACHE:-} ]]; then INFRA_CACHE=$CASEBOOK_CACHE
elif infra_venv_is_root; then INFRA_CACHE=/var/cache/casebook
else INFRA_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/casebook
fi
INFRA_VENV=$INFRA_CACHE/infra-venv

infra_venv_python() {
  local missing=()
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  ((${#missing[@]})) || return 0
  infra_venv_is_root || infra_venv_die "missing ${missing[*]}; run this once as root or install them"
  printf '%s: installing %s from Debian\n' "$(basename "$0")" "${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends "${missing[@]}" >&2
}

ensure_infra_venv() {
  local stamp=$INFRA_VENV/.casebook-pins
  mkdir -p -- "$INFRA_CACHE"
  # Two scripts may run at once (CI runs them one after the other; developers may not).
  exec 8>"$INFRA_CACHE/infra-venv.lock"
  flock -w 600 8 || infra_venv_die "timed out waiting for $INFRA_CACHE/infra-venv.lock"
  if ! [[ -f $stamp && $(<"$stamp") == "${INFRA_VENV_PINS[*]}" ]]; then
    infra_venv_python
    printf '%s: installing %s into %s (once)\n' "$(basename "$0")" \
      "${INFRA_VENV_PINS[*]}" "$INFRA_VENV" >&2
    rm -rf -- "$INFRA_VENV"
    python3 -m venv "$INFRA_VENV"
    "$INFRA_VENV/bin/pip" install --disable-pip-version-check -q "${INFRA_VENV_PINS[@]}" >&2
    printf '%s' "${INFRA_VENV_PINS[*]}" >"$stamp"
  fi
  exec 8>&-
  export PATH=$INFRA_VENV/bin:$PATH
}
