-- Responses of POST requests that carried an Idempotency-Key, so a retry gets the original
-- answer instead of a second effect. Keyed per tenant: keys are the client's namespace.
CREATE TABLE idempotency_keys (
    tenant_id     uuid        NOT NULL,
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea       NOT NULL,
    status_code   smallint,
    response_body bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Old keys are swept by the scheduler; clients are told keys live 24 hours.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO casebook_app;
