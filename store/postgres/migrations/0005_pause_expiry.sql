-- 0005: when a paused run's pause expires (run.Paused.ExpiresAt; NULL is
-- "never"), in a column of its own, so that a host finds the pauses due in a
-- small partial index instead of reading every paused run's output.

ALTER TABLE runs ADD COLUMN pause_expires timestamptz;

UPDATE runs SET pause_expires = (output->'paused'->>'expires_at')::timestamptz
    WHERE status = 'PAUSED' AND output->'paused'->>'expires_at' IS NOT NULL;

CREATE INDEX runs_pause_expires_idx ON runs (pause_expires, run_id)
    WHERE status = 'PAUSED' AND pause_expires IS NOT NULL;
