-- An erasure purges a customer's queries by who submitted them (decision 0027): without this
-- index each erasure read every query of every tenant. A tenant's erasure uses its first column.
CREATE INDEX session_queries_by_submitter ON session_queries (tenant_id, submitted_by);
