-- Every tenant's search walks its partition's HNSW graph, small tenants included.
--
-- The planner scans small partitions exactly (a sequential or bitmap scan, then a top-N
-- sort): below a few thousand rows pgvector's cost estimate for the graph walk is higher.
-- But an exact scan computes every row's distance, and on the smallest tenant of the
-- judgment_search benchmark (1,389 rows) the call took 0.92–1.27 ms against 0.40–0.50 ms
-- walking the tenant's graph at the same ef_search, recall@10 0.997 (BENCHMARKS.md). Every
-- exact plan needs a sort by distance and the walk does not, so with sorting off inside
-- the function the planner takes the partition's index whenever it has one (until the
-- model is recorded it has none, and the scan stays exact). A partition smaller than
-- ef_search is walked whole: the walk is then exact too.
--
-- A graph walk yields at most ef_search rows where an exact scan yielded all of them, so a
-- caller asking for more judgments than that gets an iterative scan: the walk goes on, still
-- in distance order. Only then: it costs the common case (k ≤ ef_search) 5–10 %.
CREATE OR REPLACE FUNCTION judgment_index_search(tenant uuid, query real[], k integer)
RETURNS TABLE (judgment_id uuid, score real, title text, body text, tags text[],
               source_position bigint)
LANGUAGE plpgsql VOLATILE
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = off
SET enable_sort = off
SET app.tenant_id = ''
AS $$
DECLARE
    dims integer := coalesce(array_length(query, 1), 0);
BEGIN
    IF dims < 1 OR dims > 2000 THEN
        RAISE EXCEPTION 'a query vector has 1 to 2000 dimensions, not %', dims
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('app.tenant_id', tenant::text, true);
    IF k > current_setting('hnsw.ef_search')::integer THEN
        PERFORM set_config('hnsw.iterative_scan', 'strict_order', true);
    END IF;
    -- A dynamic statement is planned for this call's values: pruned to the tenant's partition.
    RETURN QUERY EXECUTE judgment_index_search_sql(dims) USING tenant, query, k;
END $$;
