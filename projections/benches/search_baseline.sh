#!/usr/bin/env bash
# The raw-Postgres baseline of the judgment search: the bare top-10 statement over a table
# holding one tenant's rows of the judgment_search benchmark's corpus (half-precision HNSW,
# m 16, ef_construction 400, ef_search 40 = HNSW_EF_SEARCH, as the product's partitions),
# through pgbench's C client, prepared, one connection — no partitioning, roles, payload
# columns or Rust client.
# Prints p50/p99 per cell from pgbench's per-transaction log, for the largest (27,803 rows)
# and the smallest (1,389) tenant, with the planner's choice and with the walk forced
# (`enable_sort = off`, as the product's search role runs).
#
#   eval "$(infra/local/stack.sh up)"
#   cargo bench -p casebook-adapters --bench embeddings     # embeds and caches the corpus
#   projections/benches/search_baseline.sh                    # PASSES=3 × DURATION=10 s per cell
#   BUILD=bulk projections/benches/search_baseline.sh         # graphs indexed after the rows
#
# Uses a scratch database `casebook_search_baseline`, dropped at the end.
set -euo pipefail
: "${CASEBOOK_PG_ADMIN_URL:?start the stack first: eval \"\$(infra/local/stack.sh up)\"}"
db=${CASEBOOK_PG_ADMIN_URL%/*}/casebook_search_baseline
passes=${PASSES:-3}
duration=${DURATION:-10}
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
work=$(mktemp -d)
trap 'psql "$CASEBOOK_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS casebook_search_baseline" || true; rm -rf "$work"' EXIT
psql "$CASEBOOK_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS casebook_search_baseline" -c "CREATE DATABASE casebook_search_baseline"

# shellcheck source=projections/benches/corpus.sh
source "$(dirname "$0")/corpus.sh"
load_corpus "$db"

psql "$db" >/dev/null <<'SQL'
CREATE TABLE q AS
  SELECT row_number() OVER (ORDER BY id)::int AS qid, v::halfvec(384) AS v
    FROM corpus WHERE tenant = -1 ORDER BY id LIMIT 1000;
ALTER TABLE q ADD PRIMARY KEY (qid);
CREATE TABLE largest (id int, v halfvec(384));
CREATE TABLE smallest (id int, v halfvec(384));
SQL
# The product's partitions get their index when created and their rows one insert at a time,
# which builds a different graph than indexing the rows afterwards (BUILD=bulk).
index() {
  psql "$db" -c "SET maintenance_work_mem = '1GB'" -c "SET max_parallel_maintenance_workers = 0" \
    -c "CREATE INDEX ON largest USING hnsw (v halfvec_cosine_ops) WITH (m = 16, ef_construction = 400)" \
    -c "CREATE INDEX ON smallest USING hnsw (v halfvec_cosine_ops) WITH (m = 16, ef_construction = 400)" >/dev/null
}
[ "${BUILD:-insert}" = bulk ] || index
psql "$db" >/dev/null <<'SQL'
INSERT INTO largest SELECT id, v::halfvec(384) FROM corpus WHERE tenant = 0 ORDER BY id;
INSERT INTO smallest SELECT id, v::halfvec(384) FROM corpus WHERE tenant = 19 ORDER BY id;
SQL
[ "${BUILD:-insert}" != bulk ] || index
psql "$db" >/dev/null <<'SQL'
VACUUM ANALYZE q, largest, smallest;
CREATE EXTENSION pg_prewarm;
SELECT pg_prewarm(c.oid) FROM pg_class c WHERE c.relname IN ('q', 'largest', 'smallest')
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ('largest'::regclass, 'smallest'::regclass));
SQL

# One cell: `table` searched for DURATION seconds with the extra session settings `opts`;
# prints the p50 and p99 latency in ms.
cell() {
  local table=$1 opts=$2
  printf '\\set i random(1, 1000)\nSELECT id FROM %s ORDER BY v <=> (SELECT v FROM q WHERE qid = :i) LIMIT 10;\n' \
    "$table" >"$work/search.sql"
  rm -f "$work"/pgbench_log.*
  (cd "$work" && PGOPTIONS="-c hnsw.ef_search=40 -c jit=off $opts" \
    pgbench -n -M prepared -c 1 -T "$duration" -f search.sql -l "$db" >/dev/null)
  awk '{print $3}' "$work"/pgbench_log.* | sort -n |
    awk '{a[NR] = $1} END {printf "%.3f %.3f\n", a[int(NR * 0.5)] / 1000, a[int(NR * 0.99)] / 1000}'
}

cells=("largest|" "largest|-c enable_sort=off" "smallest|" "smallest|-c enable_sort=off")
for _ in $(seq "$passes"); do
  for c in "${cells[@]}"; do
    echo "${c%%|*}|${c#*|}|$(cell "${c%%|*}" "${c#*|}")"
  done
done | python3 -c '
import collections, sys
runs = collections.defaultdict(list)
for line in sys.stdin:
    table, opts, figures = line.rstrip("\n").split("|")
    p50, p99 = map(float, figures.split())
    runs[(table, opts)].append((p50, p99))
print("| table | plan | p50 | p99 |")
print("|---|---|---|---|")
for (table, opts), figures in runs.items():
    plan = "walk forced (enable_sort off)" if opts else "the planner'"'"'s choice"
    p50 = [f[0] for f in figures]
    p99 = [f[1] for f in figures]
    print(f"| {table} | {plan} | {min(p50):.3f}–{max(p50):.3f} ms | {min(p99):.3f}–{max(p99):.3f} ms |")
'
