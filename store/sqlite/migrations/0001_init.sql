-- 0001: sessions, runs and their events. Times are Unix milliseconds; 0 is "unset".

CREATE TABLE sessions (
	session_id   TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL DEFAULT '',
	kind         TEXT NOT NULL DEFAULT '',
	component_id TEXT NOT NULL DEFAULT '',
	state        BLOB NOT NULL,            -- JSON object
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);

CREATE TABLE runs (
	run_id        TEXT PRIMARY KEY,
	session_id    TEXT NOT NULL DEFAULT '',
	user_id       TEXT NOT NULL DEFAULT '',
	parent_run_id TEXT NOT NULL DEFAULT '',
	kind          TEXT NOT NULL DEFAULT '',
	component_id  TEXT NOT NULL DEFAULT '',
	status        TEXT NOT NULL,
	input         TEXT NOT NULL,
	output        BLOB NOT NULL,           -- run.Output as JSON
	replica       TEXT NOT NULL DEFAULT '',
	lease_until   INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);

CREATE INDEX runs_created   ON runs (created_at);
CREATE INDEX runs_session   ON runs (session_id, created_at);
CREATE INDEX runs_component ON runs (component_id, kind, created_at);
CREATE INDEX runs_status    ON runs (status, lease_until);
CREATE INDEX runs_user      ON runs (user_id, created_at) WHERE user_id <> '';
CREATE INDEX runs_parent    ON runs (parent_run_id) WHERE parent_run_id <> '';

-- Events are stored under the top-level run's id. No foreign key to runs: a batch
-- of many runs' events must not fail because of one run; DeleteSession deletes a
-- session's events explicitly.
CREATE TABLE events (
	run_id     TEXT NOT NULL,
	idx        INTEGER NOT NULL,
	type       TEXT NOT NULL,
	data       BLOB NOT NULL,              -- the event's JSON as sent to clients
	created_at INTEGER NOT NULL,
	PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
