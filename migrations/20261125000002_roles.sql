-- Roles are cluster-wide, so they are created once and reused by every database of the
-- cluster (each test database, for one). None can log in: a login user is granted the
-- role it needs and the pools assume it with SET ROLE, so privileges are tested as deployed.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['casebook_app', 'casebook_projector', 'casebook_auditor'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOBYPASSRLS', role_name);
        END IF;
    END LOOP;
END $$;

GRANT USAGE ON SCHEMA public TO casebook_app, casebook_projector, casebook_auditor;

-- The application appends and reads; it can never rewrite history.
GRANT SELECT, INSERT ON events TO casebook_app;
GRANT SELECT, INSERT, UPDATE ON snapshots TO casebook_app;
GRANT SELECT ON subscriptions TO casebook_app;

-- Projections read the log and own their checkpoints (and, later, their tables).
GRANT SELECT ON events TO casebook_projector;
GRANT SELECT, INSERT, UPDATE ON subscriptions TO casebook_projector;

-- Auditors read, nothing else.
GRANT SELECT ON events, subscriptions TO casebook_auditor;
