-- The access log's time filter by a BRIN index instead of a B-tree (decision 0020): records
-- arrive in time order, so block ranges summarise them well, and the API's writer no longer
-- maintains a second B-tree entry per request (the primary key is the chain's order).
DROP INDEX access_log_by_time;
CREATE INDEX access_log_by_time ON access_log USING brin (requested_at);
