-- The audit chain covers each event's full content (issue 24): every row written from now on
-- carries the SHA-256 of its event's canonical JSON (`event_digest`) and is hashed in the
-- canonical encoding 2, which includes that digest. Both encodings are defined in
-- `projections/src/audit/chain.rs`, the event's canonical form in
-- `projections/src/audit/content.rs`.
--
-- Rows already written keep their version-1 hash (a chain anchored in archives must not
-- change under them): `encoding` records which encoding each row's hash covers, and the
-- verifier hashes each row in its own. A constant default adds the columns without
-- rewriting the table; checking the constraint reads it once.
ALTER TABLE audit_log
    ADD COLUMN event_digest bytea CHECK (length(event_digest) = 32),
    ADD COLUMN encoding smallint NOT NULL DEFAULT 1,
    ADD CONSTRAINT audit_log_event_digest_by_encoding
        CHECK ((encoding = 1 AND event_digest IS NULL)
            OR (encoding = 2 AND event_digest IS NOT NULL));
-- Writers name the encoding: a writer that doesn't know about it fails instead of adding
-- version-1 rows to a chain that has moved on.
ALTER TABLE audit_log ALTER COLUMN encoding DROP DEFAULT;

-- Where the version-1 rows end, so that a rebuild from history writes the rows it replaces
-- exactly as they are: events up to this checkpoint (in the log's reading order) get
-- version-1 rows, every later one a version-2 row. The audit subscription's checkpoint is
-- where its rows end (rows and checkpoint commit together); the ALTER above holds off its
-- writer until this migration commits. No row on a database whose audit projection had
-- applied nothing: every row is version 2 there.
CREATE TABLE audit_encoding_cutover (
    one                 boolean PRIMARY KEY DEFAULT true CHECK (one),
    checkpoint_tx       xid8    NOT NULL,
    checkpoint_position bigint  NOT NULL
);
INSERT INTO audit_encoding_cutover (checkpoint_tx, checkpoint_position)
SELECT checkpoint_tx, checkpoint_position
  FROM subscriptions
 WHERE name = 'audit' AND checkpoint_position > 0;
GRANT SELECT ON audit_encoding_cutover TO casebook_projector;
