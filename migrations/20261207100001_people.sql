-- A tenant's people (issue: sign-up and people).
--
-- `tenant_users` is a read model of the tenants projection: each member's role, whether they
-- are let in, and their identity provider's subject once their account exists. Besides the
-- people list, the API reads it (briefly cached) on every request, so a disabled user or a
-- role that changed is refused whatever the token still says.
CREATE TABLE tenant_users (
    tenant_id  uuid        NOT NULL,
    email      text        NOT NULL,
    name       text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('customer', 'consultant', 'auditor', 'admin')),
    enabled    boolean     NOT NULL,
    -- The `sub` of their tokens; NULL until the people subscription created their account.
    user_id    text,
    invited_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- The tenant stream's sequence of the last event that changed the row.
    version    bigint      NOT NULL,
    PRIMARY KEY (tenant_id, email)
);
CREATE INDEX tenant_users_by_subject ON tenant_users (tenant_id, user_id);

GRANT SELECT ON tenant_users TO casebook_app, casebook_auditor;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_users TO casebook_projector, casebook_maintainer;
ALTER TABLE tenant_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_users FOR SELECT TO casebook_app, casebook_auditor
    USING (tenant_id = ANY (casebook_tenants_in_scope()));
CREATE POLICY projector_writes ON tenant_users FOR ALL TO casebook_projector
    USING (true) WITH CHECK (true);
CREATE POLICY maintainer_rebuilds ON tenant_users FOR ALL TO casebook_maintainer
    USING (true) WITH CHECK (true);

-- One address, one practice: Cognito has one user per address, so an address taken by one
-- tenant can't be invited by another. The claim is taken before the invitation is appended;
-- the request path can't see other tenants' claims and goes through `casebook_claim_email`.
CREATE TABLE user_emails (
    email      text        PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON user_emails TO casebook_maintainer;
ALTER TABLE user_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_emails FORCE ROW LEVEL SECURITY;
CREATE POLICY claims ON user_emails FOR ALL TO casebook_maintainer USING (true) WITH CHECK (true);

-- Claims `claimed_email` for `for_tenant` (a tenant in the caller's scope); whether it is now
-- that tenant's. It already is if the tenant claimed it before (a retried invitation). A claim
-- whose invitation never landed (the process died between the two) is taken over once it is
-- an hour old and its tenant has no such member — by then the projection has long caught up.
-- It reveals nothing of the other tenant: not who, not since when.
CREATE FUNCTION casebook_claim_email(claimed_email text, for_tenant uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NOT for_tenant = ANY (casebook_tenants_in_scope()) THEN
        RAISE EXCEPTION 'tenant % is not in the transaction''s scope', for_tenant
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO user_emails AS claim (email, tenant_id) VALUES (claimed_email, for_tenant)
    ON CONFLICT (email) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, claimed_at = now()
     WHERE claim.tenant_id = EXCLUDED.tenant_id
        OR (claim.claimed_at < now() - interval '1 hour'
            AND NOT EXISTS (SELECT 1 FROM tenant_users member
                             WHERE member.tenant_id = claim.tenant_id
                               AND member.email = claim.email));
    RETURN FOUND;
END $$;
ALTER FUNCTION casebook_claim_email(text, uuid) OWNER TO casebook_maintainer;
REVOKE ALL ON FUNCTION casebook_claim_email(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION casebook_claim_email(text, uuid) TO casebook_app;

-- Every attempt at the public sign-up and how it ended, for the operator: abuse shows here
-- before it shows anywhere else. The address is kept hashed: enough to answer "did this
-- address try", without keeping the address of someone who never became a user.
CREATE TABLE signup_attempts (
    attempt_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    attempted_at  timestamptz NOT NULL DEFAULT now(),
    -- The caller's address as the gateway (or the local listener) saw it.
    source        text        NOT NULL,
    email_sha256  text,
    -- created, replayed, email_taken, rate_limited, invalid, idempotency_key_reused, unavailable.
    outcome       text        NOT NULL,
    -- The tenant created or replayed; NULL when none was.
    tenant_id     uuid,
    request_id    text        NOT NULL
);
GRANT INSERT ON signup_attempts TO casebook_app;
ALTER TABLE signup_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE signup_attempts FORCE ROW LEVEL SECURITY;
-- The request path records attempts and never reads them; they are the platform's, not a
-- tenant's, whatever tenant they created.
CREATE POLICY records_attempts ON signup_attempts FOR INSERT TO casebook_app WITH CHECK (true);
GRANT SELECT ON signup_attempts TO casebook_maintainer;
CREATE POLICY maintainer_reads ON signup_attempts FOR SELECT TO casebook_maintainer USING (true);
