-- 0003: cancel intents, and the notices that listeners poll (SQLite has no NOTIFY),
-- so that a cancel stored by one process reaches the process that executes the run
-- on the same file, and a process can follow a run another one executes.

CREATE TABLE cancel_intents (
	run_id     TEXT PRIMARY KEY,
	reason     TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);

-- Pruning and re-reading: by age.
CREATE INDEX cancel_intents_created ON cancel_intents (created_at);

-- The intent of a run that ended is done with, however the run ended.
CREATE TRIGGER cancel_intents_ended AFTER UPDATE OF status ON runs
	WHEN NEW.status IN ('COMPLETED', 'CANCELLED', 'ERROR')
BEGIN
	DELETE FROM cancel_intents WHERE run_id = NEW.run_id;
END;

-- What each write transaction stored that listeners are told of (cancels, events,
-- ends), one row per transaction, in commit order: SQLite has one writer at a time,
-- and AUTOINCREMENT never reuses a seq, even once older rows are pruned. A listener
-- reads the rows after the last seq it read. body is the notices, each
-- "<kind><len>:<run id><len>:<value>".
CREATE TABLE notices (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	body       BLOB NOT NULL,
	created_at INTEGER NOT NULL
);

-- Pruning: by age.
CREATE INDEX notices_created ON notices (created_at);
