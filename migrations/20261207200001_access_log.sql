-- The access log: one record per API request that touched a tenant's data (reads included,
-- refusals too), hash-chained per tenant (decision 0020, docs/architecture/audit.md).
--
-- `seq` numbers a tenant's records from 1; `hash` is SHA-256(prev_hash || canonical bytes of
-- the record), `prev_hash` the previous record's hash (32 zero bytes for seq 1). The canonical
-- encoding is defined in `projections/src/access_log.rs`. Requests refused before a tenant
-- was known are the platform's chain, under the nil tenant id, which no tenant's scope names.

CREATE TABLE access_log (
    tenant_id     uuid        NOT NULL,
    seq           bigint      NOT NULL CHECK (seq >= 1),
    requested_at  timestamptz NOT NULL,
    -- Who: the verified caller, and the role the route admitted them in (NULL when refused
    -- before that).
    actor_id      text,
    actor_role    text,
    -- What: the route as registered, the ids its path named and those a list returned.
    method        text        NOT NULL,
    route         text        NOT NULL,
    resource_ids  jsonb       NOT NULL CHECK (jsonb_typeof(resource_ids) = 'array'),
    result_count  bigint,
    status        smallint    NOT NULL,
    request_id    text        NOT NULL,
    prev_hash     bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash          bytea       NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX access_log_by_time ON access_log (tenant_id, requested_at);

-- The API appends its requests' records for the tenants its transaction names, and reads
-- them (the chain's head, the auditors' route); the auditor reads its tenant's.
ALTER TABLE access_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON access_log FOR SELECT TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()));
CREATE POLICY tenant_appends ON access_log FOR INSERT TO casebook_app
    WITH CHECK (tenant_id = ANY (casebook_tenants_in_scope()));
GRANT SELECT, INSERT ON access_log TO casebook_app;
GRANT SELECT ON access_log TO casebook_auditor;

-- Append-only for everyone, the owner included: no grant lets the product's roles change a
-- record, and this refuses it to whoever else can write the table.
CREATE FUNCTION access_log_reject_mutation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the access log is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER access_log_append_only
    BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_reject_mutation();

CREATE TRIGGER access_log_no_truncate
    BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_reject_mutation();
