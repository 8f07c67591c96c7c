-- Every tenant's judgment graph built with ef_construction 400 instead of 200, so a search
-- walks a shorter candidate list (ef_search 32 instead of 40, `HNSW_EF_SEARCH`) for the same
-- recall, and without an iterative scan unless a walk comes back short.
--
-- Measured on the largest tenant of the judgment_search benchmark (27,803 real MiniLM
-- vectors), server-side, medians of interleaved rounds (BENCHMARKS.md, issue 7):
--   ef_construction 200, ef_search 40, strict_order iterative scan (before): recall@10
--   0.983–0.985, 0.50–0.51 ms per search;
--   ef_construction 400, ef_search 32, no iterative scan (now): recall@10 0.983–0.986,
--   0.37–0.43 ms per search.
-- The iterative scan cost 6–20 % of the walk even when its first candidates sufficed; it now
-- runs only when they did not (`judgment_index::search`). A denser build costs about twice
-- as much per insert, as the step from 64 to 200 did.
CREATE OR REPLACE FUNCTION judgment_index_create_hnsw(partition text, dims integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON %I USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops) '
        'WITH (m = 16, ef_construction = 400)',
        partition || '_hnsw', partition, dims);
END $$;

-- Existing partitions' graphs are rebuilt in place. A partition's searches and writes wait
-- for its rebuild (tens of seconds for tens of thousands of judgments); REINDEX CONCURRENTLY
-- cannot run inside a migration.
DO $$
DECLARE
    index regclass;
BEGIN
    FOR index IN
        SELECT i.indexrelid::regclass
          FROM pg_inherits p
          JOIN pg_index i ON i.indrelid = p.inhrelid
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_am a ON a.oid = c.relam
         WHERE p.inhparent = 'judgment_index'::regclass AND a.amname = 'hnsw'
    LOOP
        EXECUTE format('ALTER INDEX %s SET (ef_construction = 400)', index);
        EXECUTE format('REINDEX INDEX %s', index);
    END LOOP;
END $$;
