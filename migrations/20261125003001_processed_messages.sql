-- Idempotent consumers: a consumer records each message's stable event id in the same
-- transaction as its effect, so a redelivered message finds its row and does nothing.
CREATE TABLE processed_messages (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    tenant_id    uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

GRANT SELECT, INSERT ON processed_messages TO casebook_app, casebook_projector;
