#!/usr/bin/env bash
# Local Casebook stack: a private PostgreSQL 15 cluster with pgvector plus the
# moto AWS emulator, both on loopback only, both owned by one cache directory.
#
#   eval "$(infra/local/stack.sh up)"   # install what is missing, start, print exports
#   infra/local/stack.sh env            # print the exports of the running stack
#   infra/local/stack.sh status         # what runs (exit 0 all up, 3 otherwise)
#   infra/local/stack.sh down           # stop what this cache dir started
#
# CASEBOOK_CACHE selects the cache dir (default /var/cache/casebook as root,
# ${XDG_CACHE_HOME:-~/.cache}/casebook otherwise), CASEBOOK_VENV the emulator's
# virtualenv (default: inside the cache dir). Stacks with different cache
# dirs run side by side on different ports. Only the export lines go to stdout;
# everything else goes to stderr so `eval "$(... up)"` stays clean.
set -euo pipefail

PG_VERSION=15
PGBIN=/usr/lib/postgresql/$PG_VERSION/bin
PGVECTOR_MIN=0.8.0
MOTO_SPEC='moto[server]==5.2.*'
WAIT_SECS=${CASEBOOK_WAIT_SECS:-60}
DEBIAN_SOURCES=/etc/apt/sources.list.d/debian.sources
ARCHIVE_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf 'stack.sh: %s\n' "$*" >&2; }
die() { printf 'stack.sh: ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

# /root is mode 700, so as root the cache must live where the postgres user
# can reach it (it owns the data dir and writes the socket and the log there).
if [[ -n ${CASEBOOK_CACHE:-} ]]; then CACHE=$CASEBOOK_CACHE
elif is_root; then CACHE=/var/cache/casebook
else CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/casebook
fi
CACHE=$(realpath -m -- "$CACHE")
# The path ends up inside postgresql.conf quotes and in export lines.
[[ $CACHE != *[[:space:]\'\"\\]* ]] || die "cache dir must not contain spaces or quotes: $CACHE"

PG_DIR=$CACHE/pg                 # owned by postgres when we are root
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/run
PG_LOG=$PG_DIR/postgres.log
PG_PORT_FILE=$CACHE/pg.port
# What vm.nr_hugepages was before this stack raised it; `down` puts it back.
HUGE_PAGES_FILE=$CACHE/huge_pages.before
# The emulator's virtualenv may be shared between stacks (tests start throwaway ones).
VENV=${CASEBOOK_VENV:-$CACHE/venv}
MOTO_BIN=$VENV/bin/moto_server
MOTO_PID_FILE=$CACHE/moto.pid
MOTO_PORT_FILE=$CACHE/moto.port
MOTO_LOG=$CACHE/moto.log
ENV_FILE=$CACHE/stack.env
# The verifiable logs' signing key (C2SP signed note, Ed25519) and its verifier key, which an
# auditor checks checkpoints with. Kept across restarts: a new key would orphan every
# checkpoint an auditor saved.
LOG_KEY=$CACHE/log.key
LOG_KEY_PUB=$CACHE/log.pub
LOG_KEY_NAME=${CASEBOOK_LOG_KEY_NAME:-casebook.local}
# The vault's root key (decision 0027): 32 random bytes in base64, wrapping every tenant's key.
# Kept across restarts: a new one would leave every sealed value of the database unreadable.
VAULT_KEY=$CACHE/vault.key
WORK_TMP=""
trap '[[ -z $WORK_TMP ]] || rm -rf -- "$WORK_TMP"' EXIT

# Postgres refuses to run as root, so server-side commands run as `postgres`
# (from / because runuser keeps the caller's cwd, which postgres may not read).
as_pg() {
  if is_root; then (cd / && exec runuser -u postgres -- "$@"); else "$@"; fi
}

# Serialise up/down per cache dir so parallel callers (test runners) do not
# race on initdb or port choice. Daemons get `9>&-` so they never hold it.
take_lock() {
  mkdir -p -- "$CACHE"
  exec 9>"$CACHE/stack.lock"
  flock -w 900 9 || die "timed out waiting for $CACHE/stack.lock"
}

# ---------------------------------------------------------------- install ---

# Ask pg_config where extensions live; before Postgres is installed it cannot
# answer, and then the extension is missing anyway.
vector_control() {
  local share
  share=$("$PGBIN/pg_config" --sharedir 2>/dev/null) || share=/nonexistent
  echo "$share/extension/vector.control"
}

ensure_packages() {
  local missing=()
  [[ -x $PGBIN/initdb && -x $PGBIN/psql ]] || missing+=("postgresql-$PG_VERSION")
  if [[ ! -f $(vector_control) ]]; then
    # Only building pgvector needs headers, a compiler and dpkg-source.
    [[ -f /usr/include/postgresql/$PG_VERSION/server/postgres.h ]] || missing+=("postgresql-server-dev-$PG_VERSION")
    command -v make >/dev/null && command -v gcc >/dev/null || missing+=(build-essential)
    command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
  fi
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
  command -v curl >/dev/null || missing+=(curl)
  ((${#missing[@]})) || return 0
  is_root || die "missing ${missing[*]}; run this once as root or install them"
  log "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends "${missing[@]}" >&2
}

# Debian 12 has no pgvector package; trixie's source package builds cleanly
# against PG 15. The trixie list and its apt state stay in a temp dir so the
# machine's own apt configuration never sees trixie.
ensure_pgvector() {
  [[ -f $(vector_control) ]] && return 0
  is_root || die "pgvector is not installed; run 'stack.sh up' once as root"
  local mirror build src
  mirror=$(awk '/^URIs:/ {print $2; exit}' "$DEBIAN_SOURCES" 2>/dev/null || true)
  [[ -n $mirror ]] || die "no URIs: line in $DEBIAN_SOURCES to take the Debian mirror from"
  WORK_TMP=$(mktemp -d)
  mkdir -p "$WORK_TMP/lists/partial" "$WORK_TMP/cache/archives/partial"
  echo "deb-src [signed-by=$ARCHIVE_KEYRING] $mirror trixie main" >"$WORK_TMP/sources.list"
  local apt_opts=(-o "Dir::Etc::SourceList=$WORK_TMP/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$WORK_TMP/lists" -o "Dir::Cache=$WORK_TMP/cache"
    -o APT::Sandbox::User=root)
  log "building pgvector from Debian trixie sources ($mirror)"
  apt-get "${apt_opts[@]}" update >&2
  build=$CACHE/build
  rm -rf -- "$build" && mkdir -p -- "$build"
  (cd "$build" && apt-get "${apt_opts[@]}" source pgvector >&2)
  src=$(find "$build" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | sort -V | tail -n 1)
  [[ -n $src ]] || die "apt-get source pgvector produced no source dir in $build"
  # with_llvm=no: Debian's PGXS asks for clang bitcode we neither have nor need.
  make -C "$src" PG_CONFIG="$PGBIN/pg_config" with_llvm=no >&2
  make -C "$src" PG_CONFIG="$PGBIN/pg_config" with_llvm=no install >&2
  [[ -f $(vector_control) ]] || die "pgvector installed but $(vector_control) is missing"
}

ensure_moto() {
  if [[ -x $MOTO_BIN ]] && "$VENV/bin/python" -c 'import moto' 2>/dev/null; then return 0; fi
  log "installing $MOTO_SPEC into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q "$MOTO_SPEC" >&2
  [[ -x $MOTO_BIN ]] || die "pip installed moto but $MOTO_BIN is missing"
}

# ------------------------------------------------------------------ ports ---

# A port is free if we can bind it on loopback (SO_REUSEADDR, as postgres does,
# so a TIME_WAIT leftover from our own last run does not count as taken).
port_free() {
  "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()
PY
}

# Reuse the remembered port when still free; otherwise pick a random free one
# in 20000-29999 (below the kernel's ephemeral range, so outgoing connections
# do not steal it between runs) and remember it.
pick_port() {
  local file=$1 port i
  if [[ -f $file ]] && port=$(<"$file") && [[ $port =~ ^[0-9]+$ ]] && port_free "$port"; then
    echo "$port"; return 0
  fi
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 10000))
    if port_free "$port"; then echo "$port" >"$file"; echo "$port"; return 0; fi
  done
  die "no free loopback port found in 20000-29999"
}

# --------------------------------------------------------------- postgres ---

pg_running() { [[ -f $PG_DATA/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
# The running postmaster's own record of its port (line 4 of postmaster.pid).
pg_port() { sed -n 4p "$PG_DATA/postmaster.pid"; }
pg_sql() { PGOPTIONS='-c client_min_messages=warning' "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -Atq -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -c "$2"; }

init_pg() {
  mkdir -p -- "$PG_SOCK"
  if is_root; then
    chown postgres: "$PG_DIR" "$PG_SOCK"
    as_pg test -w "$PG_DIR" || die "user postgres cannot reach $PG_DIR; pick a CASEBOOK_CACHE outside /root"
  fi
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  local locale=C
  locale -a 2>/dev/null | grep -qix 'c.utf-\?8' && locale=C.UTF-8
  log "initdb $PG_DATA"
  as_pg "$PGBIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --locale="$locale" >&2
  # Our settings live in their own file, rewritten at each start.
  echo "include_if_exists = 'casebook.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

# RDS runs Postgres on huge pages, and so does this cluster where we may reserve them: the
# judgment index's HNSW walk hops across shared_buffers, and 2 MB pages cut its TLB misses
# (≈ 20 % per search here, see docs/benchmarks-history.md). Best effort: only as root with a writable
# /proc/sys, never lowering what is reserved; without them Postgres uses normal pages.
# Reserved pages are memory nothing else may use, so `down` gives back what `up` took
# (the first count seen is kept, should an `up` run again without a `down`).
reserve_huge_pages() {
  local knob=/proc/sys/vm/nr_hugepages need have
  is_root && [[ -w $knob ]] || return 0
  need=$(as_pg "$PGBIN/postgres" -D "$PG_DATA" -C shared_memory_size_in_huge_pages 2>/dev/null) || return 0
  have=$(<"$knob")
  [[ $need =~ ^[0-9]+$ ]] && (( have < need )) || return 0
  echo "$need" >"$knob" 2>/dev/null || return 0
  [[ -e $HUGE_PAGES_FILE ]] || echo "$have" >"$HUGE_PAGES_FILE"
  log "reserved $(<"$knob") huge pages for shared_buffers (had $have)"
}

# After postgres stopped: pages another cluster still maps stay until it lets them go.
release_huge_pages() {
  local knob=/proc/sys/vm/nr_hugepages before
  [[ -f $HUGE_PAGES_FILE ]] || return 0
  before=$(<"$HUGE_PAGES_FILE")
  rm -f -- "$HUGE_PAGES_FILE"
  [[ $before =~ ^[0-9]+$ && -w $knob ]] || return 0
  echo "$before" >"$knob" 2>/dev/null || return 0
  log "released the huge pages this stack reserved (vm.nr_hugepages back to $before)"
}

start_pg() {
  PG_PORT=$(pick_port "$PG_PORT_FILE")
  # Sized for parallel test suites on a 2-core box; fsync stays on because
  # benchmarks run against this cluster and must see realistic commit costs.
  as_pg tee "$PG_DATA/casebook.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 400
shared_buffers = 512MB
max_locks_per_transaction = 256
fsync = on
huge_pages = try
log_min_messages = warning
EOF
  reserve_huge_pages
  log "starting postgres on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
  as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$WAIT_SECS" start >&2 9>&- ||
    die "postgres did not start; see $PG_LOG"
}

wait_pg() {
  local i
  for ((i = 0; i < WAIT_SECS; i++)); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && pg_sql postgres 'select 1' >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "postgres on 127.0.0.1:$PG_PORT not answering after ${WAIT_SECS}s; see $PG_LOG"
}

# Proves the extension really loads in this server, in a throwaway database.
check_vector() {
  local v
  pg_sql postgres 'drop database if exists casebook_vector_check' && pg_sql postgres 'create database casebook_vector_check'
  v=$(pg_sql casebook_vector_check "create extension if not exists vector; select extversion from pg_extension where extname = 'vector'") ||
    die "CREATE EXTENSION vector failed; see $PG_LOG"
  pg_sql postgres 'drop database casebook_vector_check'
  [[ $(printf '%s\n' "$PGVECTOR_MIN" "$v" | sort -V | head -n 1) == "$PGVECTOR_MIN" ]] ||
    die "pgvector $v is older than $PGVECTOR_MIN; remove $(vector_control) and rerun up"
  log "pgvector $v OK"
}

# ------------------------------------------------------------------- moto ---

# The pid file is only trusted if that pid is still *our* venv's moto_server,
# so a recycled pid or another stack's moto is never touched.
moto_pid() {
  local pid
  [[ -f $MOTO_PID_FILE ]] && pid=$(<"$MOTO_PID_FILE") && [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] && [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"$MOTO_BIN "* ]] || return 1
  echo "$pid"
}

stop_moto() {
  local i
  log "stopping moto (pid $1)"
  kill -TERM "$1" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$1" 2>/dev/null || true
}

moto_answers() { curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$1/moto-api/"; }

start_moto() {
  local pid i
  MOTO_PORT=$(pick_port "$MOTO_PORT_FILE")
  log "starting moto on 127.0.0.1:$MOTO_PORT (log: $MOTO_LOG)"
  # setsid: own session, so the caller's Ctrl-C or terminal hangup spares it.
  setsid nohup "$MOTO_BIN" -H 127.0.0.1 -p "$MOTO_PORT" </dev/null >>"$MOTO_LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$MOTO_PID_FILE"
  for ((i = 0; i < WAIT_SECS * 2; i++)); do
    moto_answers "$MOTO_PORT" && return 0
    kill -0 "$pid" 2>/dev/null || die "moto exited during start; see $MOTO_LOG"
    sleep 0.5
  done
  die "moto on 127.0.0.1:$MOTO_PORT not answering after ${WAIT_SECS}s; see $MOTO_LOG"
}

# ------------------------------------------------------------- log key ---

# Writes the signing key and its verifier key unless they exist, with the emulator's Python
# (its `cryptography`): `PRIVATE+KEY+<name>+<id>+<key>` and `<name>+<id>+<key>`, the id the
# first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key), as C2SP signed-note says.
ensure_log_key() {
  [[ -s $LOG_KEY && -s $LOG_KEY_PUB ]] && return 0
  log "creating the verifiable logs' signing key $LOG_KEY ($LOG_KEY_NAME)"
  (umask 077 && "$VENV/bin/python" - "$LOG_KEY_NAME" "$LOG_KEY" "$LOG_KEY_PUB" <<'PY')
import base64, hashlib, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat, PublicFormat, NoEncryption
name, private_path, public_path = sys.argv[1:4]
key = Ed25519PrivateKey.generate()
seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
public = b"\x01" + key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
key_id = hashlib.sha256(name.encode() + b"\n" + public).hexdigest()[:8]
private = base64.b64encode(b"\x01" + seed).decode()
with open(private_path, "w") as f:
    f.write(f"PRIVATE+KEY+{name}+{key_id}+{private}\n")
with open(public_path, "w") as f:
    f.write(f"{name}+{key_id}+{base64.b64encode(public).decode()}\n")
PY
  chmod 644 "$LOG_KEY_PUB"
}

# ------------------------------------------------------------ vault key ---

ensure_vault_key() {
  [[ -s $VAULT_KEY ]] && return 0
  log "creating the vault's root key $VAULT_KEY"
  (umask 077 && head -c 32 /dev/urandom | base64 >"$VAULT_KEY")
}

# ---------------------------------------------------------------- exports ---

print_env() {
  local k v
  while IFS='=' read -r k v; do printf 'export %s=%q\n' "$k" "$v"; done <<EOF
DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/casebook
CASEBOOK_PG_ADMIN_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
AWS_REGION=us-east-1
AWS_DEFAULT_REGION=us-east-1
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
CASEBOOK_CACHE=$CACHE
CASEBOOK_LOG_KEY_FILE=$LOG_KEY
CASEBOOK_VAULT_KEY_FILE=$VAULT_KEY
EOF
}

# Fills PG_PORT/MOTO_PORT from the running processes; fails if either is down.
running_ports() {
  pg_running || return 1
  moto_pid >/dev/null || return 1
  PG_PORT=$(pg_port)
  MOTO_PORT=$(<"$MOTO_PORT_FILE")
}

# --------------------------------------------------------------- commands ---

cmd_up() {
  take_lock
  ensure_packages
  ensure_pgvector
  ensure_moto
  init_pg
  if pg_running; then
    PG_PORT=$(pg_port)
    log "postgres already running on 127.0.0.1:$PG_PORT"
    wait_pg
  else
    start_pg
    wait_pg
    check_vector
  fi
  echo "$PG_PORT" >"$PG_PORT_FILE"
  [[ $(pg_sql postgres "select 1 from pg_database where datname = 'casebook'") == 1 ]] ||
    pg_sql postgres 'create database casebook owner postgres'
  local pid
  if pid=$(moto_pid) && MOTO_PORT=$(<"$MOTO_PORT_FILE") && moto_answers "$MOTO_PORT"; then
    log "moto already running on 127.0.0.1:$MOTO_PORT"
  else
    [[ -z ${pid:-} ]] || stop_moto "$pid"  # ours but not answering: replace it
    start_moto
  fi
  ensure_log_key
  ensure_vault_key
  print_env >"$ENV_FILE"
  print_env
}

cmd_env() {
  running_ports || die "stack for $CACHE is not running; run: $0 up"
  print_env
}

cmd_status() {
  local ok=0 pid
  echo "cache: $CACHE"
  if pg_running; then
    echo "postgres: running on 127.0.0.1:$(pg_port) (pid $(head -n 1 "$PG_DATA/postmaster.pid"), log $PG_LOG)"
  else echo "postgres: stopped"; ok=3; fi
  if pid=$(moto_pid); then
    echo "moto: running on 127.0.0.1:$(<"$MOTO_PORT_FILE") (pid $pid, log $MOTO_LOG)"
  else echo "moto: stopped"; ok=3; fi
  return "$ok"
}

cmd_down() {
  local pid
  take_lock
  if pg_running; then
    log "stopping postgres ($PG_DATA)"
    as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$WAIT_SECS" stop >&2
  fi
  release_huge_pages
  if pid=$(moto_pid); then stop_moto "$pid"; fi
  rm -f -- "$MOTO_PID_FILE" "$ENV_FILE"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 {up|down|env|status}   (cache dir: CASEBOOK_CACHE=$CACHE)" >&2; exit 2 ;;
esac
