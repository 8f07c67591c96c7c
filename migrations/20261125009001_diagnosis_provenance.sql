-- DiagnosisProposed v3 records more provenance: why the model stopped, the embedding model the
-- query was retrieved with, each precedent's score and source event position, and every
-- attachment of the session with what became of it. NULL on proposals recorded before v3
-- ("not recorded"), like the events they come from.
ALTER TABLE diagnoses
    ADD COLUMN stop_reason         text,
    ADD COLUMN embedding_model_id  text,
    ADD COLUMN embedding_dimension integer,
    -- [{judgment_id, score, source_position}], best first.
    ADD COLUMN precedents          jsonb,
    -- [{key, content_type, outcome: {status: included, bytes, truncated} | {status: skipped, reason}}].
    ADD COLUMN attachments         jsonb;
