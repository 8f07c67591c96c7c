# Sourced by the judgment-search benchmark scripts: `load_corpus <database URL>` creates the
# table `corpus (id, tenant, v vector(384))` in that database (with the extension) and fills
# it with the cached MiniLM corpus of the judgment_search benchmark, each line with that
# benchmark's tenant (0 the largest … 19 the smallest; sizes ∝ 1/rank, line i to the owner at
# slot (i · 7,919) mod 100,000); -1 marks the held-out queries. The corpus is cached by
# `cargo bench -p casebook-adapters --bench embeddings`.
load_corpus() {
  local db=$1 cache=${CASEBOOK_CACHE:-/var/cache/casebook}/bench
  python3 - "$cache/minilm-corpus.f32" <<'PY' | command psql -X -q -v ON_ERROR_STOP=1 "$db" \
    -c "CREATE EXTENSION IF NOT EXISTS vector" \
    -c "CREATE TABLE corpus (id int PRIMARY KEY, tenant int, v vector(384))" -c "COPY corpus FROM STDIN"
import struct, sys
D, INDEXED, TENANTS = 384, 100_000, 20
raw = open(sys.argv[1], 'rb').read()
weights = [1 / rank for rank in range(1, TENANTS + 1)]
sizes = [int(w / sum(weights) * INDEXED) for w in weights]
sizes[0] += INDEXED - sum(sizes)
owner = [t for t, size in enumerate(sizes) for _ in range(size)]
for i in range(len(raw) // (4 * D)):
    v = struct.unpack_from('<%df' % D, raw, i * 4 * D)
    tenant = owner[(i * 7919) % INDEXED] if i < INDEXED else -1
    sys.stdout.write('%d\t%d\t[%s]\n' % (i, tenant, ','.join('%.7g' % x for x in v)))
PY
}
