-- Every tenant's search walks its partition's HNSW graph, small tenants included, and never
-- comes back short.
--
-- The planner scans small partitions exactly (a sequential or bitmap scan, then a top-N
-- sort): below a few thousand rows pgvector's cost estimate for the graph walk is higher.
-- But an exact scan computes every row's distance, and on the smallest tenant of the
-- judgment_search benchmark (1,389 rows) the call took 0.92–1.27 ms against 0.40–0.50 ms
-- walking the tenant's graph at the same ef_search, recall@10 0.997 (BENCHMARKS.md). Every
-- exact plan needs a sort by distance and the walk does not, so with sorting off inside
-- the function the planner takes the partition's index whenever it has one (until the
-- model is recorded it has none, and the scan stays exact).
--
-- A walk yields at most ef_search candidates, some of which may be row versions a revision
-- or a retirement left dead until vacuum: without more, a search could return fewer than k
-- judgments although the tenant has them (and an exact scan used to return all k). With an
-- iterative scan the walk goes on, in distance order, until k live rows are found; when the
-- first candidates suffice it costs 5–10 % per search.
ALTER FUNCTION judgment_index_search(uuid, real[], integer) SET enable_sort = off;
ALTER FUNCTION judgment_index_search(uuid, real[], integer) SET hnsw.iterative_scan = strict_order;

-- With sorting off, the plan of a search that must still sort (a tenant whose partition the
-- projection has not created yet, or before the model is recorded) carries the planner's
-- disable cost, far above jit_above_cost: the call then spent 60–180 ms compiling itself.
-- A top-10 lookup never gains from JIT.
ALTER FUNCTION judgment_index_search(uuid, real[], integer) SET jit = off;
