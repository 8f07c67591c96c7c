-- Erasing a whole tenant (decision 0027), a practice leaving the product: the operator's
-- command tombstones every subject key of the tenant, destroys its tenant keys and marks it, so
-- that no key is made for it again and nothing of it is sealed or opened from then on.
CREATE TABLE vault.erased_tenants (
    tenant_id uuid        PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE vault.erased_tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault.erased_tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY erased_tenants ON vault.erased_tenants FOR SELECT
    TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()));
CREATE POLICY everyone_erased ON vault.erased_tenants FOR SELECT
    TO casebook_projector, casebook_maintainer
    USING (true);
GRANT SELECT ON vault.erased_tenants
    TO casebook_app, casebook_auditor, casebook_projector, casebook_maintainer;

-- Run as its owner, for the operator's command on the request path's role (which may neither
-- update nor delete keys), confined to the tenant in the caller's scope. `false` when the
-- tenant already was erased.
CREATE FUNCTION vault.erase_tenant(p_tenant uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    marked integer;
BEGIN
    IF NOT (p_tenant = ANY (casebook_tenants_in_scope())) THEN
        RAISE EXCEPTION 'tenant % is not in scope', p_tenant USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO vault.erased_tenants (tenant_id) VALUES (p_tenant) ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS marked = ROW_COUNT;
    UPDATE vault.subject_keys
       SET wrapped = NULL, tenant_key_version = NULL, erased_at = now()
     WHERE tenant_id = p_tenant AND erased_at IS NULL;
    DELETE FROM vault.tenant_keys WHERE tenant_id = p_tenant;
    RETURN marked > 0;
END $$;
REVOKE ALL ON FUNCTION vault.erase_tenant(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vault.erase_tenant(uuid) TO casebook_app;

-- The tenants read model shows an erased tenant as such.
ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
    CHECK (status IN ('active', 'suspended', 'erased'));
