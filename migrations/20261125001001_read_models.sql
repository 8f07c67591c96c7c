-- Read models: tables built from the event log by the projections in `projections/`.
--
-- Every row is derived from events only (times are the events' `recorded_at`, never now()),
-- so a rebuild from history reproduces the tables exactly. `version` is the sequence of the
-- last event of the row's own aggregate; `position` is the global position of the event that
-- created the row: unique, stable and close to time order, it is the list order and the
-- keyset cursor of the read functions.
--
-- Rebuilds clone these tables with `CREATE TABLE … (LIKE … INCLUDING ALL)` and copy their
-- policies and grants, so keep everything a table needs on the table itself: no foreign keys,
-- no views over them, no sequences.

CREATE TABLE tenants (
    tenant_id              uuid        PRIMARY KEY,
    name                   text        NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('active', 'suspended')),
    plan                   text        NOT NULL,
    model_policy           text        NOT NULL,
    -- NULL: auto-resolve disabled.
    auto_resolve_threshold double precision CHECK (auto_resolve_threshold BETWEEN 0 AND 1),
    -- Set while suspended.
    suspended_reason       text,
    onboarded_by           text        NOT NULL,
    onboarded_at           timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    version                bigint      NOT NULL
);

CREATE TABLE sessions (
    session_id       uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    subject          text        NOT NULL,
    -- JSON array of upload keys.
    attachments      jsonb       NOT NULL,
    status           text        NOT NULL CHECK (status IN ('open', 'closed')),
    opened_by        text        NOT NULL,
    opened_at        timestamptz NOT NULL,
    closed_by        text,
    closed_at        timestamptz,
    query_count      integer     NOT NULL,
    last_activity_at timestamptz NOT NULL,
    version          bigint      NOT NULL,
    position         bigint      NOT NULL
);
CREATE INDEX sessions_by_tenant ON sessions (tenant_id, position);

CREATE TABLE session_queries (
    session_id   uuid        NOT NULL,
    query_id     uuid        NOT NULL,
    tenant_id    uuid        NOT NULL,
    text         text        NOT NULL,
    submitted_by text        NOT NULL,
    submitted_at timestamptz NOT NULL,
    position     bigint      NOT NULL,
    PRIMARY KEY (session_id, query_id)
);

CREATE TABLE diagnoses (
    diagnosis_id           uuid        PRIMARY KEY,
    tenant_id              uuid        NOT NULL,
    session_id             uuid        NOT NULL,
    query_id               uuid        NOT NULL,
    query                  text        NOT NULL,
    requested_by           text        NOT NULL,
    requested_at           timestamptz NOT NULL,
    position               bigint      NOT NULL,
    status                 text        NOT NULL
                           CHECK (status IN ('requested', 'context_retrieved', 'proposed', 'failed', 'resolved')),
    attempt                integer     NOT NULL,
    -- Set while failed: whether another attempt may start.
    retryable              boolean,
    -- The latest failure's reason (kept after a retry, for the record).
    failure_reason         text,
    -- The proposal and its provenance, once proposed.
    proposal               text,
    findings               jsonb,
    confidence             double precision,
    proposed_at            timestamptz,
    proposed_position      bigint,
    model_id               text,
    model_tier             text,
    prompt_template_id     text,
    prompt_template_hash   text,
    retrieved_judgment_ids jsonb,
    input_tokens           bigint,
    output_tokens          bigint,
    cost_usd_micros        bigint,
    -- The decision (ConsultantDecision's DecisionMade; its id is the diagnosis' id), once decided.
    decision_outcome       text,
    decided_by             text,
    decided_at             timestamptz,
    -- DiagnosisResolved, once resolved.
    resolution_outcome     text,
    resolved_at            timestamptz,
    updated_at             timestamptz NOT NULL,
    version                bigint      NOT NULL
);
CREATE INDEX diagnoses_by_tenant ON diagnoses (tenant_id, position);
CREATE INDEX diagnoses_by_session ON diagnoses (session_id);
-- The consultant review queue: proposed, not yet decided, oldest first.
CREATE INDEX diagnoses_review_queue ON diagnoses (tenant_id, proposed_position)
    WHERE status = 'proposed' AND decided_at IS NULL;

CREATE TABLE decisions (
    decision_id     uuid        PRIMARY KEY,
    diagnosis_id    uuid        NOT NULL,
    tenant_id       uuid        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('approved', 'amended', 'rejected', 'auto_approved')),
    amended_text    text,
    reason          text,
    -- For auto-approvals: the threshold in force and the proposal's confidence.
    threshold       double precision,
    confidence      double precision,
    decided_by      text        NOT NULL,
    decided_by_role text        NOT NULL,
    decided_at      timestamptz NOT NULL,
    position        bigint      NOT NULL
);
CREATE INDEX decisions_by_tenant ON decisions (tenant_id, position);
CREATE INDEX decisions_by_decider ON decisions (tenant_id, decided_by, position);

-- Tokens and cost per tenant, model and UTC day (of the proposal's recorded_at).
CREATE TABLE tenant_usage (
    tenant_id       uuid   NOT NULL,
    day             date   NOT NULL,
    model_id        text   NOT NULL,
    proposals       bigint NOT NULL,
    input_tokens    bigint NOT NULL,
    output_tokens   bigint NOT NULL,
    cost_usd_micros bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, model_id)
);

-- Row-level security: request-path roles see the rows of the tenant named by
-- `SET LOCAL app.tenant_id`, and nothing when it is unset. NULLIF: once a transaction that
-- set it ends, the setting reads as '' rather than NULL, and ''::uuid would be an error.
-- The projector writes every tenant's rows. The owner (the migrator) is not subject to RLS.
DO $$
DECLARE
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['tenants', 'sessions', 'session_queries', 'diagnoses',
                                      'decisions', 'tenant_usage'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', table_name);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I FOR SELECT TO casebook_app, casebook_auditor
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            table_name);
        EXECUTE format(
            'CREATE POLICY projector_writes ON %I FOR ALL TO casebook_projector
                 USING (true) WITH CHECK (true)',
            table_name);
        EXECUTE format('GRANT SELECT ON %I TO casebook_app, casebook_auditor', table_name);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO casebook_projector', table_name);
    END LOOP;
END $$;
