-- The audit table: one row per event, hash-chained per tenant.
--
-- `seq` numbers a tenant's rows from 1 in the log's reading order; `hash` is
-- SHA-256(prev_hash || canonical bytes of the row) and `prev_hash` is the previous row's hash
-- (32 zero bytes for seq 1). The canonical encoding is defined and documented in
-- `projections/src/audit/chain.rs`; `projections/AUDIT_QUERIES.md` has auditors' queries.

CREATE TABLE audit_log (
    tenant_id              uuid        NOT NULL,
    seq                    bigint      NOT NULL CHECK (seq >= 1),
    global_position        bigint      NOT NULL,
    recorded_at            timestamptz NOT NULL,
    -- Who: the user (or `casebook:system`), the role acted in, the issuing part of the system.
    actor_id               text        NOT NULL,
    actor_role             text        NOT NULL,
    source                 text        NOT NULL,
    -- What: the event type, and the stream it was appended to.
    action                 text        NOT NULL,
    aggregate_type         text        NOT NULL,
    aggregate_id           text        NOT NULL,
    event_sequence         bigint      NOT NULL,
    -- The subjects the event names.
    session_id             uuid,
    query_id               uuid,
    diagnosis_id           uuid,
    decision_id            uuid,
    judgment_id            uuid,
    -- Outcome: a decision's or resolution's outcome, a failure's 'retryable' or 'final'.
    outcome                text,
    reason                 text,
    -- Auto-resolve: the threshold set or in force; the proposal's confidence.
    threshold              double precision,
    confidence             double precision,
    -- Model provenance of AI proposals.
    model_id               text,
    model_tier             text,
    prompt_template_id     text,
    prompt_template_hash   text,
    retrieved_judgment_ids jsonb,
    input_tokens           bigint,
    output_tokens          bigint,
    cost_usd_micros        bigint,
    request_id             text        NOT NULL,
    correlation_id         text        NOT NULL,
    causation_id           text        NOT NULL,
    prev_hash              bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash                   bytea       NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_log_by_time ON audit_log (tenant_id, recorded_at);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log FOR SELECT TO casebook_app, casebook_auditor
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY projector_writes ON audit_log FOR ALL TO casebook_projector
    USING (true) WITH CHECK (true);
GRANT SELECT ON audit_log TO casebook_app, casebook_auditor;
-- Append-only for the projector too: the chain is only ever extended.
GRANT SELECT, INSERT ON audit_log TO casebook_projector;
