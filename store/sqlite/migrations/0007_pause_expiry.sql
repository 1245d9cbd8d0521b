-- 0007: when a paused run's pause expires (run.Paused.ExpiresAt, Unix milliseconds;
-- 0 is "never"), in a column of its own, so that a host finds the pauses due in a
-- small partial index instead of reading every paused run's output.

ALTER TABLE runs ADD COLUMN pause_expires INTEGER NOT NULL DEFAULT 0;

UPDATE runs SET pause_expires = COALESCE(CAST(ROUND(
		(julianday(json_extract(output, '$.paused.expires_at')) - 2440587.5) * 86400000) AS INTEGER), 0)
	WHERE status = 'PAUSED' AND json_extract(output, '$.paused.expires_at') IS NOT NULL;

CREATE INDEX runs_pause_expires ON runs (pause_expires, run_id) WHERE status = 'PAUSED' AND pause_expires > 0;
