-- An erasure purges the customer's uploads (decision 0027): the erasure-purge reaction deletes
-- each object issued to them, then their grants, whose keys end in the names of their files.
-- It runs as the request path's role scoped to the tenant, so the `tenant_isolation` policy
-- (FOR ALL, row-level security everywhere) already confines the delete to that tenant's rows.
GRANT DELETE ON upload_grants TO casebook_app;

-- The purge finds a customer's grants by whom they were issued to, without reading every
-- grant of the tenant.
CREATE INDEX upload_grants_by_subject ON upload_grants (tenant_id, issued_to);
