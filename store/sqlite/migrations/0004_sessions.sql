-- 0004: a session exists from its first run.
--
-- Sessions get a name: the input of their first run, at most 256 characters, as
-- Agno names a session. A trigger creates the session of every run stored with a
-- session id, in the statement that stores the run, and moves the session's
-- updated_at to a later run's created_at when that is over a second later, so that
-- the runs of a busy session do not each rewrite its row. The sessions that runs
-- already stored name, but that were never saved, are created from the first
-- top-level run of each (its user, kind, component and input; no state). Indexes
-- serve ListSessions.
ALTER TABLE sessions ADD COLUMN name TEXT NOT NULL DEFAULT '';

CREATE TRIGGER runs_session AFTER INSERT ON runs WHEN NEW.session_id <> '' BEGIN
	INSERT INTO sessions (session_id, user_id, kind, component_id, name, state, created_at, updated_at)
	VALUES (NEW.session_id, NEW.user_id, NEW.kind, NEW.component_id, substr(NEW.input, 1, 256),
		CAST('null' AS BLOB), NEW.created_at, NEW.created_at)
	ON CONFLICT (session_id) DO NOTHING;
	UPDATE sessions SET
		name = CASE WHEN name = '' THEN substr(NEW.input, 1, 256) ELSE name END,
		updated_at = MAX(updated_at, NEW.created_at)
	WHERE session_id = NEW.session_id
		AND (updated_at < NEW.created_at - 1000 OR (name = '' AND NEW.input <> ''));
END;

INSERT INTO sessions (session_id, user_id, kind, component_id, name, state, created_at, updated_at)
	SELECT r.session_id, r.user_id, r.kind, r.component_id, substr(r.input, 1, 256), CAST('null' AS BLOB),
		span.first, span.last
	FROM (SELECT session_id, MIN(created_at) AS first, MAX(created_at) AS last
		FROM runs WHERE session_id <> '' GROUP BY session_id) AS span
	JOIN runs AS r ON r.run_id = (SELECT run_id FROM runs WHERE session_id = span.session_id
		ORDER BY parent_run_id <> '', created_at, run_id LIMIT 1)
	WHERE true
	ON CONFLICT (session_id) DO UPDATE SET
		name = CASE WHEN sessions.name = '' THEN excluded.name ELSE sessions.name END,
		created_at = MIN(sessions.created_at, excluded.created_at),
		updated_at = MAX(sessions.updated_at, excluded.updated_at);

-- ListSessions: by either time, by component, by user. A new run of a session
-- moves only updated_at, so only the first index changes then.
CREATE INDEX sessions_updated   ON sessions (updated_at, session_id);
CREATE INDEX sessions_created   ON sessions (created_at, session_id);
CREATE INDEX sessions_component ON sessions (component_id, kind, created_at);
CREATE INDEX sessions_user      ON sessions (user_id, created_at) WHERE user_id <> '';
