-- The judgment index was designed and measured on pgvector 0.8 (recall and latency in
-- BENCHMARKS.md); older versions lack iterative index scans, without which a filtered HNSW
-- search can return fewer rows than asked. RDS offers several pgvector versions per engine
-- version and an older one would migrate cleanly, so deployments stop here instead, naming
-- the version found.
DO $$
DECLARE
    installed text := (SELECT extversion FROM pg_extension WHERE extname = 'vector');
BEGIN
    IF string_to_array(split_part(installed, '-', 1), '.')::int[] < ARRAY[0, 8] THEN
        RAISE EXCEPTION 'pgvector % is installed; Casebook needs 0.8 or later', installed
            USING HINT = 'ALTER EXTENSION vector UPDATE, or choose an engine version that ships pgvector 0.8';
    END IF;
END $$;
