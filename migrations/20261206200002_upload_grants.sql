-- Who was issued each upload URL. A customer may attach only the uploads issued to them:
-- without this record, a second customer of a practice could attach the first one's file to
-- their own query, and the model would read it to them.
CREATE TABLE upload_grants (
    tenant_id  uuid        NOT NULL,
    key        text        NOT NULL CHECK (length(key) BETWEEN 1 AND 1024),
    issued_to  text        NOT NULL CHECK (length(issued_to) BETWEEN 1 AND 128),
    issued_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

GRANT SELECT, INSERT ON upload_grants TO casebook_app;
