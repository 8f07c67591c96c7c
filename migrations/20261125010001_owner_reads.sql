-- A customer reads only the sessions they opened and the diagnoses they requested: these
-- indexes serve those lists (newest first) without walking the rest of the tenant's rows.
CREATE INDEX sessions_by_opener ON sessions (tenant_id, opened_by, position);
CREATE INDEX diagnoses_by_requester ON diagnoses (tenant_id, requested_by, position);
