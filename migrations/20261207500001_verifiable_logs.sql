-- The verifiable logs (docs/architecture/audit.md, decision 0026): per tenant, a Merkle tree
-- over each chained log's rows (RFC 9162 hashing), stored as C2SP tlog-tiles, and the signed
-- checkpoints (C2SP signed notes) of its sizes.
--
-- `log` names the rows a tree is over: `audit` (audit_log) or `access` (access_log); leaf n is
-- the canonical bytes of the row whose `seq` is n + 1.

-- A tile: the hashes at tree level 8 × `level` of 256 consecutive nodes from
-- 256 × `level_index`, concatenated (32 bytes each). A partial tile (fewer than 256) grows in
-- place as the tree does; the hashes it already holds never change.
CREATE TABLE tlog_tiles (
    log         text     NOT NULL CHECK (log IN ('audit', 'access')),
    tenant_id   uuid     NOT NULL,
    level       smallint NOT NULL CHECK (level >= 0),
    level_index bigint   NOT NULL CHECK (level_index >= 0),
    hashes      bytea    NOT NULL
        CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (log, tenant_id, level, level_index)
);

-- Every checkpoint signed: the tree's size and root, and the signed note as published.
-- `archived_key` is where the integrator copied it in the audit-archive bucket.
CREATE TABLE tlog_checkpoints (
    log          text        NOT NULL CHECK (log IN ('audit', 'access')),
    tenant_id    uuid        NOT NULL,
    size         bigint      NOT NULL CHECK (size >= 1),
    root         bytea       NOT NULL CHECK (length(root) = 32),
    note         text        NOT NULL,
    signed_at    timestamptz NOT NULL DEFAULT now(),
    archived_key text,
    PRIMARY KEY (log, tenant_id, size)
);
CREATE INDEX tlog_checkpoints_to_archive ON tlog_checkpoints (signed_at)
    WHERE archived_key IS NULL;

-- The projector integrates every tenant's rows and archives the checkpoints; the API
-- (casebook_app, for its auditors) and the auditor role read their tenant's tree and
-- checkpoints.
ALTER TABLE tlog_tiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE tlog_tiles FORCE ROW LEVEL SECURITY;
CREATE POLICY projector_writes ON tlog_tiles FOR ALL TO casebook_projector
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_reads ON tlog_tiles FOR SELECT TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()));
GRANT SELECT, INSERT, UPDATE ON tlog_tiles TO casebook_projector;
GRANT SELECT ON tlog_tiles TO casebook_app, casebook_auditor;

ALTER TABLE tlog_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE tlog_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY projector_writes ON tlog_checkpoints FOR ALL TO casebook_projector
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_reads ON tlog_checkpoints FOR SELECT TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()));
GRANT SELECT, INSERT ON tlog_checkpoints TO casebook_projector;
GRANT UPDATE (archived_key) ON tlog_checkpoints TO casebook_projector;
GRANT SELECT ON tlog_checkpoints TO casebook_auditor, casebook_app;

-- A checkpoint's size, root and note never change once signed.
CREATE FUNCTION tlog_checkpoints_keep_what_was_signed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.size <> OLD.size OR NEW.root <> OLD.root
       OR NEW.note <> OLD.note OR NEW.tenant_id <> OLD.tenant_id OR NEW.log <> OLD.log THEN
        RAISE EXCEPTION 'a signed checkpoint cannot change: % rejected', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER tlog_checkpoints_signed
    BEFORE UPDATE OR DELETE ON tlog_checkpoints
    FOR EACH ROW EXECUTE FUNCTION tlog_checkpoints_keep_what_was_signed();

-- The integrator (the projector) reads every tenant's access records to hash them.
CREATE POLICY projector_reads ON access_log FOR SELECT TO casebook_projector USING (true);
GRANT SELECT ON access_log TO casebook_projector;
