-- Tenant-scoped judgment search in one round trip.
--
-- The search used to take four: BEGIN, set_config (hnsw.ef_search and app.tenant_id for
-- row-level security), the prepared query, COMMIT. This function does the same in one
-- statement: its SET clauses scope both settings to the call (set_config(..., true) inside
-- a function with a SET clause for that setting is undone when the function returns), it
-- runs as the caller (SECURITY INVOKER), so row-level security still applies, and the query
-- is planned for the call's tenant, so the planner prunes to that tenant's partition and
-- scans its HNSW index.
--
-- ef_search 64: recall@10 ≥ 0.98 on 100,000 real MiniLM vectors over 20 uneven tenants,
-- also for the largest tenant (40 gave 0.977 there; see BENCHMARKS.md).
--
-- The cast to `vector(<dimension>)` matches the expression each partition's HNSW index is
-- built on (see 20261125002001_judgment_index.sql); the dimension is the query's.
-- The statement the search runs for query vectors of `dims` dimensions ($1 tenant, $2 the
-- query as real[], $3 k). A function of its own so tests can EXPLAIN exactly this text.
CREATE FUNCTION judgment_index_search_sql(dims integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
RETURN format(
    'SELECT j.judgment_id, (1 - (j.embedding::vector(%1$s) <=> $2::vector(%1$s)))::real AS score,
            j.title, j.body, j.tags, j.source_position
       FROM judgment_index j
      WHERE j.tenant_id = $1
      ORDER BY j.embedding::vector(%1$s) <=> $2::vector(%1$s)
      LIMIT $3', dims);

CREATE FUNCTION judgment_index_search(tenant uuid, query real[], k integer)
RETURNS TABLE (judgment_id uuid, score real, title text, body text, tags text[],
               source_position bigint)
LANGUAGE plpgsql VOLATILE
SET hnsw.ef_search = 64
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
    -- A dynamic statement is planned for this call's values: pruned to the tenant's partition.
    RETURN QUERY EXECUTE judgment_index_search_sql(dims) USING tenant, query, k;
END $$;

REVOKE ALL ON FUNCTION judgment_index_search(uuid, real[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION judgment_index_search(uuid, real[], integer)
    TO casebook_app, casebook_auditor, casebook_projector;
