-- The practice's captured judgment as consultants browse it: every judgment with its status
-- (active, revised or retired: a retired one leaves the index but not the practice's record),
-- where it came from, and each version of its content. The judgment index holds only the
-- active content and its vectors, for search.

CREATE TABLE judgment_revisions (
    judgment_id  uuid        NOT NULL,
    -- The event's sequence in the judgment's stream: 1 is the capture.
    revision     bigint      NOT NULL,
    tenant_id    uuid        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('captured', 'revised', 'retired')),
    -- The content a capture or revision set; NULL on a retirement.
    title        text,
    body         text,
    -- A JSON array: a batch binds its revisions' tags as one array of JSON texts.
    tags         jsonb,
    -- A retirement's reason.
    reason       text,
    -- A capture's origin: `decision` (with the decision, diagnosis and customer) or `authored`.
    origin       text CHECK (origin IN ('decision', 'authored')),
    decision_id  uuid,
    diagnosis_id uuid,
    customer     text,
    acted_by     text        NOT NULL,
    recorded_at  timestamptz NOT NULL,
    position     bigint      NOT NULL,
    PRIMARY KEY (judgment_id, revision)
);

CREATE TABLE judgments (
    judgment_id    uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('active', 'revised', 'retired')),
    origin         text        NOT NULL CHECK (origin IN ('decision', 'authored')),
    decision_id    uuid,
    diagnosis_id   uuid,
    -- Whose query the judgment was captured from: their erasure redacts it.
    customer       text,
    title          text        NOT NULL,
    body           text        NOT NULL,
    tags           text[]      NOT NULL,
    revisions      integer     NOT NULL,
    retired_reason text,
    captured_by    text        NOT NULL,
    captured_at    timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    -- The last event's global position: the list's order and cursor.
    position       bigint      NOT NULL
);
CREATE INDEX judgments_by_tenant ON judgments (tenant_id, position);
CREATE INDEX judgments_by_decision ON judgments (tenant_id, decision_id) WHERE decision_id IS NOT NULL;
CREATE INDEX judgments_by_customer ON judgments (tenant_id, customer) WHERE customer IS NOT NULL;

DO $$
DECLARE
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['judgments', 'judgment_revisions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', table_name);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', table_name);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I FOR SELECT TO casebook_app, casebook_auditor
                 USING (tenant_id = ANY (casebook_tenants_in_scope()))',
            table_name);
        EXECUTE format(
            'CREATE POLICY projector_writes ON %I FOR ALL TO casebook_projector
                 USING (true) WITH CHECK (true)',
            table_name);
        EXECUTE format(
            'CREATE POLICY maintainer_rebuilds ON %I FOR ALL TO casebook_maintainer
                 USING (true) WITH CHECK (true)',
            table_name);
        EXECUTE format('GRANT SELECT ON %I TO casebook_app, casebook_auditor', table_name);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO casebook_projector, casebook_maintainer',
                       table_name);
    END LOOP;
END $$;

-- The request path no longer reads the index (the list reads `judgments`; searches are
-- `casebook_search`'s).
REVOKE SELECT (tenant_id, judgment_id, source_position, title, body, tags, indexed_at)
    ON judgment_index FROM casebook_app;
