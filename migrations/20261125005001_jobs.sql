-- The nightly audit archive's record of what it wrote: one row per archive file, never
-- updated. A tenant's next archive starts after its highest `through_seq`, so the files
-- cover the chain without gaps or overlaps, and each row keeps the head it anchored.
CREATE TABLE audit_archives (
    tenant_id   uuid        NOT NULL,
    from_seq    bigint      NOT NULL CHECK (from_seq >= 1),
    through_seq bigint      NOT NULL CHECK (through_seq >= from_seq),
    head_hash   bytea       NOT NULL CHECK (length(head_hash) = 32),
    bucket      text        NOT NULL,
    key         text        NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, through_seq),
    UNIQUE (tenant_id, from_seq)
);

-- The scheduler runs as casebook_app: it reads and appends, nothing else.
GRANT SELECT, INSERT ON audit_archives TO casebook_app;
GRANT SELECT ON audit_archives TO casebook_auditor;
