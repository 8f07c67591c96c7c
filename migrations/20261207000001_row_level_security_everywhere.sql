-- Row-level security on every table that holds a tenant's rows, forced on the owner too.
--
-- Until now only the read models, the audit table and the judgment index had policies, and
-- the table owner (the migrator, and the replay tool's rebuilds) bypassed them. Now:
-- - every table with a `tenant_id` carries policies and FORCE ROW LEVEL SECURITY, so no role
--   but those named in a policy sees a row, the owner included: maintenance that reads or
--   writes rows (rebuilds) does so as `casebook_maintainer` (below), and keeps the owner's
--   rights for DDL alone;
-- - the request path's role (`casebook_app`) and the auditor see the tenants named by
--   `app.tenant_id`, which the request path sets for each transaction with `SET LOCAL`
--   along with `SET LOCAL ROLE casebook_app`; the events it may append are the same tenants';
-- - the projector reads and writes every tenant's rows (it projects them all).
--
-- `app.tenant_id` names one tenant, or several separated by commas: the event store appends
-- concurrent commands of different tenants in one statement (a group commit), whose
-- `RETURNING` must see each appended row, so that statement names every tenant it appends
-- for. Once a transaction that set it ends, the setting reads as '' (NULLIF) and the scope
-- is empty.
CREATE FUNCTION casebook_tenants_in_scope() RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT string_to_array(NULLIF(current_setting('app.tenant_id', true), ''), ',')::uuid[]
$$;

-- Snapshots had no tenant: they are a cache of folded state, so they are dropped rather
-- than backfilled (the next command of each aggregate replays its stream and snapshots again).
DELETE FROM snapshots;
ALTER TABLE snapshots ADD COLUMN tenant_id uuid NOT NULL;

-- Tables whose request-path access (casebook_app) is its tenants' rows, every command.
DO $$
DECLARE
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['snapshots', 'idempotency_keys', 'upload_grants',
                                      'processed_messages', 'audit_archives'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', table_name);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I FOR ALL TO casebook_app
                 USING (tenant_id = ANY (casebook_tenants_in_scope()))
                 WITH CHECK (tenant_id = ANY (casebook_tenants_in_scope()))',
            table_name);
    END LOOP;
END $$;

-- The relay (projector) records the messages it handled, for every tenant.
CREATE POLICY projector_writes ON processed_messages FOR ALL TO casebook_projector
    USING (true) WITH CHECK (true);
CREATE POLICY auditor_reads ON audit_archives FOR SELECT TO casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()));

-- The log: the request path reads and appends its tenants' events, the auditor reads its
-- tenant's, the projector reads them all. Nobody updates or deletes (no grant, no policy,
-- and the append-only trigger).
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON events FOR SELECT TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()));
CREATE POLICY tenant_appends ON events FOR INSERT TO casebook_app
    WITH CHECK (tenant_id = ANY (casebook_tenants_in_scope()));
CREATE POLICY projector_reads ON events FOR SELECT TO casebook_projector USING (true);

-- The older policies, read through the same scope function.
DO $$
DECLARE
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['tenants', 'sessions', 'session_queries', 'diagnoses',
                                      'decisions', 'tenant_usage', 'audit_log'] LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %I', table_name);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I FOR SELECT TO casebook_app, casebook_auditor
                 USING (tenant_id = ANY (casebook_tenants_in_scope()))',
            table_name);
    END LOOP;
END $$;
DROP POLICY judgment_index_tenant_read ON judgment_index;
CREATE POLICY judgment_index_tenant_read ON judgment_index FOR SELECT TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()));

-- Forced everywhere: the owner goes through the policies like everyone else. (The judgment
-- index's partitions are read directly by `casebook_search` and carry no policies: each holds
-- one tenant's rows by its partition bound, and only the owner's functions create them.)
DO $$
DECLARE
    tenant_table regclass;
BEGIN
    FOR tenant_table IN
        SELECT c.oid::regclass FROM pg_class c
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tenant_table);
    END LOOP;
END $$;

-- The request path assumes its role per transaction (`SET LOCAL ROLE`), so a login that acts
-- as the application must not hold the roles' rights by inheritance: outside such a
-- transaction it can read nothing. Existing logins (the deployed `casebook`) lose inheritance
-- here. Up to Postgres 15 that is the login's attribute; from 16 the attribute only sets the
-- default of later grants and each grant carries its own option, changed in place by a
-- re-grant from its grantor (dynamic SQL: 15 would not parse it).
DO $$
DECLARE
    membership record;
BEGIN
    FOR membership IN
        SELECT DISTINCT r.rolname AS granted, m.rolname AS login, g.rolname AS grantor
          FROM pg_auth_members a
          JOIN pg_roles r ON r.oid = a.roleid
          JOIN pg_roles m ON m.oid = a.member
          JOIN pg_roles g ON g.oid = a.grantor
         WHERE r.rolname IN ('casebook_app', 'casebook_projector', 'casebook_auditor', 'casebook_search')
           AND m.rolcanlogin AND NOT m.rolsuper
    LOOP
        EXECUTE format('ALTER ROLE %I NOINHERIT', membership.login);
        IF current_setting('server_version_num')::int >= 160000 AND membership.grantor = current_user THEN
            EXECUTE format('GRANT %I TO %I WITH INHERIT FALSE', membership.granted, membership.login);
        END IF;
    END LOOP;
END $$;

-- Rebuilds replace the projections' tables from the whole log: the owner's DDL, and the rows
-- as this role, which the owner (the migrator, who runs them) is a member of.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'casebook_maintainer') THEN
        CREATE ROLE casebook_maintainer NOLOGIN NOBYPASSRLS;
    END IF;
    EXECUTE format('GRANT casebook_maintainer TO %I', current_user);
END $$;
GRANT USAGE ON SCHEMA public TO casebook_maintainer;
GRANT SELECT ON events, audit_encoding_cutover TO casebook_maintainer;
GRANT SELECT, INSERT, UPDATE, DELETE ON subscriptions TO casebook_maintainer;
CREATE POLICY maintainer_reads ON events FOR SELECT TO casebook_maintainer USING (true);
DO $$
DECLARE
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['tenants', 'sessions', 'session_queries', 'diagnoses',
                                      'decisions', 'tenant_usage', 'audit_log'] LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO casebook_maintainer', table_name);
        EXECUTE format(
            'CREATE POLICY maintainer_rebuilds ON %I FOR ALL TO casebook_maintainer
                 USING (true) WITH CHECK (true)',
            table_name);
    END LOOP;
END $$;

-- An auditor may ask for a tenant's state "as of global position P", where P is any event of
-- the log, another tenant's included: placing P in reading order takes its transaction id,
-- which is all this reveals of a row the auditor cannot otherwise see. It runs as the
-- maintainer, whose policy reads the whole log.
CREATE FUNCTION casebook_log_point(at_position bigint) RETURNS xid8
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT transaction_id FROM events WHERE global_position = at_position
$$;
ALTER FUNCTION casebook_log_point(bigint) OWNER TO casebook_maintainer;
REVOKE ALL ON FUNCTION casebook_log_point(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION casebook_log_point(bigint) TO casebook_auditor;
