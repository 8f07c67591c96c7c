-- Judgment search reads the tenant's partition directly, as a role of its own, through a
-- statement each connection prepares once per tenant.
--
-- The search was one call of `judgment_index_search()`, whose dynamic statement was parsed
-- and planned on every call: for a small tenant, planning and the PL/pgSQL call cost more
-- than walking the graph. A statement naming the tenant's partition keeps its plan (a
-- generic plan of one table prunes nothing and locks one partition, where a generic plan of
-- the parent would lock every tenant's). Through the benchmark's Rust client on 100,000
-- real vectors, p50 went from 1.39 to 0.38–0.48 ms for the smallest tenant and from 1.73 to
-- 0.68–0.74 ms for the largest (BENCHMARKS.md, issue 7, sixth pass).
--
-- A prepared statement cannot scope settings to itself as the function did, so the settings
-- live in the sessions of a pool that only searches (`DbRole::Search`: enable_sort off so
-- even a small partition's graph is walked, iterative scans, no JIT, ef_search, and generic
-- plans, which Postgres would otherwise not keep for a statement with a LIMIT). That pool
-- assumes this role, which may read the judgment index's partitions and nothing else. The
-- partitions carry no row-level security: a partition only ever holds its tenant's rows (its
-- partition bound), and every search statement also filters by the tenant explicitly.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'casebook_search') THEN
        CREATE ROLE casebook_search NOLOGIN NOBYPASSRLS;
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO casebook_search;

-- Every login that acts as the application (the deployed `casebook`) now also searches.
DO $$
DECLARE
    login name;
BEGIN
    FOR login IN SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member
                  WHERE a.roleid = 'casebook_app'::regrole LOOP
        EXECUTE format('GRANT casebook_search TO %I', login);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION judgment_index_ensure_partition(tenant uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    partition text := 'judgment_index_' || replace(tenant::text, '-', '');
    dims integer;
BEGIN
    IF to_regclass(partition) IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT embedding_dim INTO dims FROM judgment_index_model;
    IF dims IS NULL THEN
        RAISE EXCEPTION 'judgment index has no embedding model recorded yet'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Two transactions creating the same partition: the second waits, then finds it.
    PERFORM pg_advisory_xact_lock(hashtextextended('judgment_index_partition:' || tenant::text, 0));
    IF to_regclass(partition) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF judgment_index FOR VALUES IN (%L)', partition, tenant);
    PERFORM judgment_index_create_hnsw(partition, dims);
    EXECUTE format('GRANT SELECT ON %I TO casebook_search', partition);
    RETURN true;
END $$;

DO $$
DECLARE
    partition regclass;
BEGIN
    FOR partition IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'judgment_index'::regclass LOOP
        EXECUTE format('GRANT SELECT ON %s TO casebook_search', partition);
    END LOOP;
END $$;

-- The request-path role searched through the function; nothing else of it reads the index.
-- Workers of the previous release fail their retrievals from here until they are updated
-- (retryably: their queue message comes back), so deploy the functions right after this.
DROP FUNCTION judgment_index_search(uuid, real[], integer);
DROP FUNCTION judgment_index_search_sql(integer);
REVOKE SELECT ON judgment_index, judgment_index_model FROM casebook_app;
