-- The vault (decision 0027): each tenant's keys, wrapped by the root key (KMS deployed, a key
-- file locally), and each data subject's key, wrapped by its tenant's. A schema of its own so
-- that backups can hold the keys apart from the data, on a retention of their own: an erasure
-- is complete once no backup holds the destroyed key (docs/decisions/0027).
CREATE SCHEMA vault;

CREATE TABLE vault.tenant_keys (
    tenant_id  uuid        NOT NULL,
    version    integer     NOT NULL CHECK (version >= 1),
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);

-- An erased subject keeps a tombstone (no key, `erased_at` set), so that nothing seals under a
-- new key of theirs afterwards.
CREATE TABLE vault.subject_keys (
    tenant_id          uuid        NOT NULL,
    subject_id         text        NOT NULL,
    tenant_key_version integer,
    wrapped            bytea,
    created_at         timestamptz NOT NULL DEFAULT now(),
    erased_at          timestamptz,
    PRIMARY KEY (tenant_id, subject_id),
    -- A tenant key goes (rotated out, or its tenant erased) only once no live subject key is
    -- wrapped under it: a subject key made while a rotation runs fails its command, which a
    -- retry makes under the new tenant key.
    FOREIGN KEY (tenant_id, tenant_key_version) REFERENCES vault.tenant_keys (tenant_id, version),
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (tenant_key_version IS NULL))
);

-- The request path (casebook_app: commands seal and load) makes and reads its tenants' keys;
-- the auditor reads its tenants'; the projector reads every tenant's, erases subjects and
-- rotates tenant keys; the data teams' rebuilds (casebook_maintainer) read every tenant's.
GRANT USAGE ON SCHEMA vault
    TO casebook_app, casebook_projector, casebook_auditor, casebook_maintainer;

ALTER TABLE vault.tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault.tenant_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_keys ON vault.tenant_keys FOR ALL TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()))
    WITH CHECK (tenant_id = ANY (casebook_tenants_in_scope()));
CREATE POLICY projector_keys ON vault.tenant_keys FOR ALL TO casebook_projector
    USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON vault.tenant_keys TO casebook_app;
GRANT SELECT ON vault.tenant_keys TO casebook_auditor;
GRANT SELECT, INSERT, DELETE ON vault.tenant_keys TO casebook_projector;
CREATE POLICY maintainer_reads ON vault.tenant_keys FOR SELECT TO casebook_maintainer
    USING (true);
GRANT SELECT ON vault.tenant_keys TO casebook_maintainer;

ALTER TABLE vault.subject_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault.subject_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_keys ON vault.subject_keys FOR ALL TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()))
    WITH CHECK (tenant_id = ANY (casebook_tenants_in_scope()));
CREATE POLICY projector_keys ON vault.subject_keys FOR ALL TO casebook_projector
    USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON vault.subject_keys TO casebook_app;
GRANT SELECT ON vault.subject_keys TO casebook_auditor;
GRANT SELECT, INSERT, UPDATE ON vault.subject_keys TO casebook_projector;
CREATE POLICY maintainer_reads ON vault.subject_keys FOR SELECT TO casebook_maintainer
    USING (true);
GRANT SELECT ON vault.subject_keys TO casebook_maintainer;

-- Erasing a subject is an admin's request on the request path, which may neither update nor
-- delete keys: this function, run as its owner, tombstones one subject's key of a tenant in the
-- caller's scope, and nothing else. `false` when it already was.
CREATE FUNCTION vault.erase_subject(p_tenant uuid, p_subject text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    erased integer;
BEGIN
    IF NOT (p_tenant = ANY (casebook_tenants_in_scope())) THEN
        RAISE EXCEPTION 'tenant % is not in scope', p_tenant USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO vault.subject_keys (tenant_id, subject_id, erased_at)
    VALUES (p_tenant, p_subject, now())
    ON CONFLICT (tenant_id, subject_id) DO UPDATE
       SET wrapped = NULL, tenant_key_version = NULL, erased_at = now()
     WHERE vault.subject_keys.erased_at IS NULL;
    GET DIAGNOSTICS erased = ROW_COUNT;
    RETURN erased > 0;
END $$;
REVOKE ALL ON FUNCTION vault.erase_subject(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vault.erase_subject(uuid, text) TO casebook_app;

-- The read models purge an erased subject's rows by whose they are: decisions and the
-- judgment index name the customer too (NULL for rows recorded before it was carried).
ALTER TABLE decisions ADD COLUMN customer text;
CREATE INDEX decisions_by_customer ON decisions (tenant_id, customer) WHERE customer IS NOT NULL;
-- (`sessions_by_opener` and `diagnoses_by_requester` find the other read models' rows.)
-- IF NOT EXISTS: the index's upgrade test writes rows with today's writer into a schema of
-- before, which it gives the column first.
ALTER TABLE judgment_index ADD COLUMN IF NOT EXISTS customer text;
