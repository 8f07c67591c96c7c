#!/usr/bin/env bash
# Which HNSW layout the judgment index uses, measured: recall@10 and server-side time per
# top-10 search over the largest tenant of the judgment_search benchmark (27,803 real MiniLM
# vectors), for `vector` and `halfvec` graphs built with different m, ef_construction and
# operator classes, at several ef_search and iterative-scan modes. Each search runs in a
# PL/pgSQL loop inside the server, so the figures leave out the client and the network;
# recall is against exact single-precision search.
#
#   eval "$(infra/local/stack.sh up)"
#   cargo bench -p casebook-adapters --bench embeddings     # embeds and caches the corpus
#   projections/benches/hnsw_params.sh                        # ROUNDS=5 passes, medians
#   CONFIGS="halfvec 200 cosine,halfvec 200 ip" EF="32 40" projections/benches/hnsw_params.sh
#   CONFIGS="halfvec 200 cosine,halfvec 400 cosine 12" ITERATIVE="off strict_order" projections/benches/hnsw_params.sh
#
# A config is "<type> <ef_construction> <cosine|ip> [m, default 16]": `ip` indexes with
# `<type>_ip_ops` and searches with `<#>` (negative inner product, the cosine order for
# normalized vectors). ITERATIVE lists the `hnsw.iterative_scan` modes to search with (the
# product's search role walks with it off, and again with strict_order when a walk comes back
# short).
#
# Uses a scratch database `casebook_hnsw_params`, dropped at the end.
set -euo pipefail
: "${CASEBOOK_PG_ADMIN_URL:?start the stack first: eval \"\$(infra/local/stack.sh up)\"}"
db=${CASEBOOK_PG_ADMIN_URL%/*}/casebook_hnsw_params
rounds=${ROUNDS:-5}
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql "$CASEBOOK_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS casebook_hnsw_params" -c "CREATE DATABASE casebook_hnsw_params"
trap 'psql "$CASEBOOK_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS casebook_hnsw_params"' EXIT

# shellcheck source=projections/benches/corpus.sh
source "$(dirname "$0")/corpus.sh"
load_corpus "$db"

psql "$db" <<'SQL'
SET max_parallel_workers_per_gather = 0;
SET maintenance_work_mem = '1GB';
CREATE TABLE q AS SELECT row_number() OVER (ORDER BY id)::int AS qid, v FROM corpus WHERE tenant = -1 ORDER BY id LIMIT 300;
CREATE TABLE largest AS SELECT id, v FROM corpus WHERE tenant = 0;
CREATE TABLE truth AS
  SELECT q.qid, (SELECT array_agg(id) FROM (SELECT id FROM largest ORDER BY v <=> q.v LIMIT 10) s) AS ids FROM q;
CREATE FUNCTION measure(tbl text, typ text, op text, ef int, iterative text, n int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz;
    recall float8;
    hits int;
    search text := format(
        'SELECT count(*) FROM (SELECT id FROM %I ORDER BY v %s (SELECT v::%s FROM q WHERE qid = $1) LIMIT 10) s',
        tbl, op, typ);
BEGIN
    PERFORM set_config('hnsw.ef_search', ef::text, true);
    PERFORM set_config('hnsw.iterative_scan', iterative, true);
    EXECUTE format(
        'SELECT avg((SELECT count(*) FROM unnest(t.ids) x WHERE x = ANY(r.ids)) / 10.0) FROM truth t
           CROSS JOIN LATERAL (SELECT array_agg(id) ids FROM (SELECT id FROM %I
             ORDER BY v %s (SELECT v::%s FROM q WHERE qid = t.qid) LIMIT 10) s) r', tbl, op, typ) INTO recall;
    started := clock_timestamp();
    FOR i IN 1..n LOOP
        EXECUTE search INTO hits USING 1 + i % 300;
    END LOOP;
    RETURN format('%s %s %s %s %s', tbl, ef, iterative, round(recall::numeric, 4),
                  round((extract(epoch FROM clock_timestamp() - started) * 1000 / n)::numeric, 3));
END $$;
SQL

IFS=, read -r -a configs <<<"${CONFIGS:-vector 64 cosine,halfvec 64 cosine,halfvec 200 cosine}"
operator() { if [ "$1" = ip ]; then echo '<#>'; else echo '<=>'; fi; }
# The scratch table of a config, named after its four fields (the report splits the name).
table_of() { local type efc ops m; read -r type efc ops m <<<"$1"; echo "${type}_${efc}_${ops}_${m:-16}"; }
for config in "${configs[@]}"; do
  read -r type efc ops m <<<"$config"
  table=$(table_of "$config")
  psql "$db" -c "SET maintenance_work_mem = '1GB'" \
    -c "CREATE TABLE ${table} AS SELECT id, v::${type}(384) AS v FROM largest" \
    -c "CREATE INDEX ON ${table} USING hnsw (v ${type}_${ops}_ops) WITH (m = ${m:-16}, ef_construction = ${efc})" \
    -c "VACUUM ANALYZE ${table}"
done

for _ in $(seq "$rounds"); do
  for config in "${configs[@]}"; do
    read -r type _ ops _ <<<"$config"
    for ef in ${EF:-32 40 64}; do
      for iterative in ${ITERATIVE:-off}; do
        psql "$db" -At -c "SELECT measure('$(table_of "$config")', '${type}(384)', '$(operator "$ops")', $ef, '$iterative', 600)"
      done
    done
  done
done | python3 -c '
import collections, statistics, sys
runs = collections.defaultdict(list)
recall = {}
for line in sys.stdin:
    table, ef, iterative, r, ms = line.split()
    key = (table, int(ef), iterative)
    runs[key].append(float(ms))
    recall[key] = r
print("| graph | ef_search | iterative scan | recall@10 | median ms per search | best |")
print("|---|---|---|---|---|---|")
for (table, ef, iterative), ms in runs.items():
    kind, efc, ops, m = table.split("_")
    print(f"| {kind} {ops}, m {m}, ef_construction {efc} | {ef} | {iterative} | {recall[(table, ef, iterative)]} | {statistics.median(ms):.3f} | {min(ms):.3f} |")
'
