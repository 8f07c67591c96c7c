-- The judgment index: every active captured judgment, embedded for similarity search.
--
-- Search is always within one tenant. One HNSW index over all tenants with a tenant filter
-- loses results to the filter (recall@10 0.18, or 0.95 at ~6 ms with iterative scans), and
-- per-tenant partial indexes are ignored by generic plans of prepared statements. So the
-- table is LIST-partitioned by tenant, each partition with an HNSW index of its own: the
-- planner prunes to one partition at run time, also in a generic plan, and the index only
-- ever holds that tenant's rows.
--
-- The vector column has no declared dimension (the embedding model is configuration: 384
-- for the local MiniLM, 256/512/1024 for Titan v2), so each partition indexes the
-- expression `embedding::vector(<dimension>)` with the dimension of the model recorded in
-- `judgment_index_model`; the search casts the same way. A model change means rebuilding
-- this projection (`judgment_index_reset()`, then replaying the log).

CREATE TABLE judgment_index (
    tenant_id       uuid        NOT NULL,
    judgment_id     uuid        NOT NULL,
    -- The event whose content the row holds (`events.global_position`).
    source_position bigint      NOT NULL,
    embedding_model text        NOT NULL,
    embedding_dim   integer     NOT NULL,
    title           text        NOT NULL,
    body            text        NOT NULL,
    tags            text[]      NOT NULL DEFAULT '{}',
    embedding       vector      NOT NULL,
    indexed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, judgment_id),
    CHECK (vector_dims(embedding) = embedding_dim)
) PARTITION BY LIST (tenant_id);

-- The one embedding model the index holds (a single row once the first judgment arrives).
CREATE TABLE judgment_index_model (
    singleton       boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    embedding_model text        NOT NULL,
    embedding_dim   integer     NOT NULL CHECK (embedding_dim BETWEEN 1 AND 2000),
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

-- Creates the tenant's partition and its HNSW index (m 16, ef_construction 64) unless it
-- exists; returns whether it created it. Creating a partition needs ownership of the
-- parent, which the projector role must not have, so this runs as the migration's owner.
-- Creation locks the parent until the calling transaction ends, so it happens once per
-- tenant (on onboarding, or with its first judgment).
CREATE FUNCTION judgment_index_ensure_partition(tenant uuid) RETURNS boolean
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
    EXECUTE format(
        'CREATE INDEX %I ON %I USING hnsw ((embedding::vector(%s)) vector_cosine_ops) '
        'WITH (m = 16, ef_construction = 64)',
        partition || '_hnsw', partition, dims);
    RETURN true;
END $$;

-- Empties the index for a rebuild with another model: drops every partition and forgets the
-- model. The projection's checkpoint is reset by the rebuild that calls this.
CREATE FUNCTION judgment_index_reset() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    partition regclass;
BEGIN
    FOR partition IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'judgment_index'::regclass LOOP
        EXECUTE format('DROP TABLE %s', partition);
    END LOOP;
    DELETE FROM judgment_index_model;
END $$;

REVOKE ALL ON FUNCTION judgment_index_ensure_partition(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION judgment_index_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION judgment_index_ensure_partition(uuid) TO casebook_projector;
GRANT EXECUTE ON FUNCTION judgment_index_reset() TO casebook_projector;

-- The request path reads one tenant's rows (`SET LOCAL app.tenant_id`); the projector
-- writes everyone's.
ALTER TABLE judgment_index ENABLE ROW LEVEL SECURITY;
CREATE POLICY judgment_index_tenant_read ON judgment_index
    FOR SELECT TO casebook_app, casebook_auditor
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY judgment_index_projector ON judgment_index
    FOR ALL TO casebook_projector
    USING (true) WITH CHECK (true);

GRANT SELECT ON judgment_index, judgment_index_model TO casebook_app, casebook_auditor;
GRANT SELECT, INSERT, UPDATE, DELETE ON judgment_index TO casebook_projector;
GRANT SELECT, INSERT ON judgment_index_model TO casebook_projector;
