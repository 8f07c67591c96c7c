-- Blue/green rebuilds of the judgment index (decision 0028).
--
-- A rebuild used to drop every partition and rewind the live subscription: searches found
-- nothing until the replay reached their tenant. Now a rebuild builds a second, "green"
-- index beside the live one — `judgment_index_green`, partitioned by tenant like the live
-- index, with its own model record, so it can hold another embedding model — while searches
-- keep reading the live partitions. Once the green index has caught up and passed its
-- verification, one transaction swaps it in: each green partition is detached, renamed to
-- the live partition's name and attached to `judgment_index` in place of the old one, and the
-- live model record takes the green one's. A search statement names its tenant's partition,
-- so it finds the new table under the old name (its kept plan is made again once, after the
-- swap commits; it waits for the swap meanwhile, and never finds the partition missing).
--
-- The rebuild (the replay tool's `judgment-index` commands) runs as the tables' owner with its
-- rows read and written as `casebook_maintainer`; the DDL is these functions', each the
-- owner's, as the live partitions' creation is. The green tables are made afresh by each
-- rebuild with `LIKE judgment_index`, so a later migration of the live index reaches them
-- without changing anything here.

-- The rebuild compares the green index with the live one and reads the live model.
GRANT SELECT ON judgment_index, judgment_index_model TO casebook_maintainer;
CREATE POLICY maintainer_reads ON judgment_index FOR SELECT TO casebook_maintainer USING (true);

-- Drops the green index and its model record, if any.
CREATE FUNCTION judgment_index_green_drop() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    EXECUTE 'DROP TABLE IF EXISTS judgment_index_green, judgment_index_green_model';
END $$;

-- Creates an empty green index (replacing any) for vectors of `model`, `dims` dimensions: the
-- live index's columns, defaults and constraints, partitioned by tenant, written by the
-- maintainer alone.
CREATE FUNCTION judgment_index_green_create(model text, dims integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM judgment_index_green_drop();
    EXECUTE 'CREATE TABLE judgment_index_green
                 (LIKE judgment_index INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
                 PARTITION BY LIST (tenant_id)';
    EXECUTE 'ALTER TABLE judgment_index_green ADD PRIMARY KEY (tenant_id, judgment_id)';
    EXECUTE 'ALTER TABLE judgment_index_green ENABLE ROW LEVEL SECURITY';
    EXECUTE 'ALTER TABLE judgment_index_green FORCE ROW LEVEL SECURITY';
    EXECUTE 'CREATE POLICY maintainer_rebuilds ON judgment_index_green FOR ALL TO casebook_maintainer
                 USING (true) WITH CHECK (true)';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON judgment_index_green TO casebook_maintainer';
    EXECUTE 'CREATE TABLE judgment_index_green_model (LIKE judgment_index_model INCLUDING ALL)';
    EXECUTE 'GRANT SELECT, INSERT ON judgment_index_green_model TO casebook_maintainer';
    EXECUTE 'INSERT INTO judgment_index_green_model (embedding_model, embedding_dim) VALUES ($1, $2)'
        USING model, dims;
END $$;

-- Creates `tenant`'s green partition unless it exists; returns whether it created it. Its
-- graph is built once its rows are in (`judgment_index_green_build_graph`): one pass over
-- them is much cheaper than maintaining the graph row by row. The search role may read it
-- (it becomes a live partition), the maintainer too (the verification searches it). Its
-- partition bound is also a constraint of its own, so attaching it to the live index needs
-- no scan of its rows.
CREATE FUNCTION judgment_index_green_ensure_partition(tenant uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    partition text := 'judgment_index_green_' || replace(tenant::text, '-', '');
BEGIN
    IF to_regclass(partition) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF judgment_index_green FOR VALUES IN (%L)',
                   partition, tenant);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT tenant_bound CHECK (tenant_id = %L)',
                   partition, tenant);
    EXECUTE format('GRANT SELECT ON %I TO casebook_search, casebook_maintainer', partition);
    RETURN true;
END $$;

-- Builds the HNSW graph of `tenant`'s green partition for the green model's dimension, as
-- the live partitions' are built, unless it has one; returns whether it built it.
CREATE FUNCTION judgment_index_green_build_graph(tenant uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    partition text := 'judgment_index_green_' || replace(tenant::text, '-', '');
    dims integer;
BEGIN
    IF to_regclass(partition) IS NULL OR to_regclass(partition || '_hnsw') IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT embedding_dim FROM judgment_index_green_model' INTO dims;
    PERFORM judgment_index_create_hnsw(partition, dims);
    RETURN true;
END $$;

-- Moves `tenant`'s green partition into the live index (inside the swap's transaction): its
-- live partition, if any, is dropped; the green one detached, renamed to the live name with
-- its indexes, and attached.
CREATE FUNCTION judgment_index_green_promote(tenant uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    hex text := replace(tenant::text, '-', '');
    green text := 'judgment_index_green_' || hex;
    live text := 'judgment_index_' || hex;
    index_name text;
BEGIN
    IF to_regclass(live) IS NOT NULL THEN
        EXECUTE format('DROP TABLE %I', live);
    END IF;
    IF to_regclass(green) IS NULL THEN
        RETURN;
    END IF;
    PERFORM judgment_index_green_build_graph(tenant);
    EXECUTE format('ALTER TABLE judgment_index_green DETACH PARTITION %I', green);
    FOR index_name IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = green::regclass
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', index_name,
                       'judgment_index_' || substr(index_name, length('judgment_index_green_') + 1));
    END LOOP;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', green, live);
    EXECUTE format('ALTER TABLE judgment_index ATTACH PARTITION %I FOR VALUES IN (%L)', live, tenant);
END $$;

-- Swaps the green index in for `tenant`'s partition, or for every tenant's when `tenant` is
-- NULL (then every live partition goes, and the live model record takes the green one's),
-- and drops what is left of the green index. Inside the caller's transaction, which holds
-- the live subscription's row so that no batch of it commits meanwhile. One tenant's swap
-- must keep the live index's model: an index holds one model.
CREATE FUNCTION judgment_index_green_swap(tenant uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    model text;
    dims integer;
    live_model text;
    live_dims integer;
    partition text;
BEGIN
    IF to_regclass('judgment_index_green') IS NULL THEN
        RAISE EXCEPTION 'there is no green judgment index to swap in'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE 'SELECT embedding_model, embedding_dim FROM judgment_index_green_model' INTO model, dims;
    SELECT embedding_model, embedding_dim INTO live_model, live_dims FROM judgment_index_model;
    IF tenant IS NULL THEN
        FOR partition IN
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'judgment_index'::regclass
        LOOP
            EXECUTE format('DROP TABLE %I', partition);
        END LOOP;
        FOR partition IN
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'judgment_index_green'::regclass
        LOOP
            PERFORM judgment_index_green_promote(
                substr(partition, length('judgment_index_green_') + 1)::uuid);
        END LOOP;
        DELETE FROM judgment_index_model;
    ELSIF live_model IS NOT NULL AND (live_model, live_dims) IS DISTINCT FROM (model, dims) THEN
        RAISE EXCEPTION 'the green judgment index holds %, the live one %: swap every tenant to change models',
            model, live_model
            USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSE
        PERFORM judgment_index_green_promote(tenant);
    END IF;
    INSERT INTO judgment_index_model (embedding_model, embedding_dim) VALUES (model, dims)
        ON CONFLICT (singleton) DO NOTHING;
    PERFORM judgment_index_green_drop();
END $$;

DO $$
DECLARE
    function_name text;
BEGIN
    FOREACH function_name IN ARRAY ARRAY[
        'judgment_index_green_drop()',
        'judgment_index_green_create(text, integer)',
        'judgment_index_green_ensure_partition(uuid)',
        'judgment_index_green_build_graph(uuid)',
        'judgment_index_green_promote(uuid)',
        'judgment_index_green_swap(uuid)'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', function_name);
    END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION judgment_index_green_drop(), judgment_index_green_create(text, integer),
    judgment_index_green_ensure_partition(uuid), judgment_index_green_build_graph(uuid),
    judgment_index_green_swap(uuid)
    TO casebook_maintainer;

-- The rebuild that emptied the index is gone.
DROP FUNCTION judgment_index_reset();
