-- The consultants' list of the practice's judgments (`GET /v1/judgments`) reads the index's
-- text, never its vectors: the request path may select those columns only (searching stays
-- `casebook_search`'s), its tenant's rows by the existing policy.
GRANT SELECT (tenant_id, judgment_id, source_position, title, body, tags, indexed_at)
    ON judgment_index TO casebook_app;
