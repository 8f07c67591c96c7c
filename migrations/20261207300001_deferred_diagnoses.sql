-- Monthly token budgets (issue 28): a diagnosis deferred while its tenant's budget is spent
-- shows as `deferred_budget`, with the day the budget renews (when it resumes at the latest).
ALTER TABLE diagnoses DROP CONSTRAINT diagnoses_status_check;
ALTER TABLE diagnoses ADD CONSTRAINT diagnoses_status_check
    CHECK (status IN ('requested', 'context_retrieved', 'proposed', 'deferred_budget', 'failed', 'resolved'));
ALTER TABLE diagnoses ADD COLUMN budget_renews_on date;
-- The budget jobs list each tenant's deferred diagnoses.
CREATE INDEX diagnoses_deferred ON diagnoses (tenant_id, position)
    WHERE status = 'deferred_budget';
