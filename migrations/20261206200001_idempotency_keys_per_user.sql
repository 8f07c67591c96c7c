-- Idempotency keys belong to one caller, (tenant, user): a key scoped to the tenant alone
-- replayed one user's stored answer (a presigned upload URL, a 201) to any other user of the
-- tenant who sent the same key and body.
--
-- Stored answers can't be attributed to a user after the fact, so they are dropped: keys live
-- 24 hours, and a client retrying across the upgrade re-runs a command whose creations are
-- idempotent by id anyway.
DELETE FROM idempotency_keys;

ALTER TABLE idempotency_keys
    ADD COLUMN user_id text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD PRIMARY KEY (tenant_id, user_id, key);
