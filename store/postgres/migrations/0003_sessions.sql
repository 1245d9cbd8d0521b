-- 0003: a session exists from its first run.
--
-- Sessions get a name: the input of their first run, at most 256 characters, as
-- Agno names a session. A trigger creates the session of every run stored with a
-- session id, in the statement that stores the run (CreateRun, Enqueue), and moves
-- the session's updated_at to a later run's created_at when that is over a second
-- later, so that the runs of a busy session do not each wait for the lock on its
-- row until the run before commits. The sessions that runs already stored name,
-- but that were never saved, are created from the first top-level run of each (its
-- user, kind, component and input; no state). Indexes serve ListSessions.
--
-- The trigger's function runs with the search_path of this migration (the store's
-- schema), whatever the connection's: the store's statements name their schema,
-- and so must what they set off.

ALTER TABLE sessions ADD COLUMN name text NOT NULL DEFAULT '';

CREATE FUNCTION run_session() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO sessions (session_id, user_id, kind, component_id, name, state, created_at, updated_at)
    VALUES (NEW.session_id, NEW.user_id, NEW.kind, NEW.component_id, left(NEW.input, 256), NULL,
        NEW.created_at, NEW.created_at)
    ON CONFLICT (session_id) DO NOTHING;
    IF NOT FOUND THEN
        UPDATE sessions SET
            name = CASE WHEN name = '' THEN left(NEW.input, 256) ELSE name END,
            updated_at = greatest(updated_at, NEW.created_at)
        WHERE session_id = NEW.session_id
            AND (updated_at < NEW.created_at - interval '1 second' OR (name = '' AND NEW.input <> ''));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_session AFTER INSERT ON runs
    FOR EACH ROW WHEN (NEW.session_id <> '') EXECUTE FUNCTION run_session();

INSERT INTO sessions (session_id, user_id, kind, component_id, name, state, created_at, updated_at)
    SELECT DISTINCT ON (session_id) session_id, user_id, kind, component_id, left(input, 256), NULL,
        min(created_at) OVER w, max(created_at) OVER w
    FROM runs
    WHERE session_id <> ''
    WINDOW w AS (PARTITION BY session_id)
    ORDER BY session_id, parent_run_id <> '', created_at, run_id
    ON CONFLICT (session_id) DO UPDATE SET
        name = CASE WHEN sessions.name = '' THEN excluded.name ELSE sessions.name END,
        created_at = least(sessions.created_at, excluded.created_at),
        updated_at = greatest(sessions.updated_at, excluded.updated_at);

-- ListSessions: newest first by either time, by component, by user.
CREATE INDEX sessions_updated_idx   ON sessions (updated_at DESC, session_id DESC);
CREATE INDEX sessions_created_idx   ON sessions (created_at DESC, session_id DESC);
CREATE INDEX sessions_component_idx ON sessions (component_id, created_at DESC);
CREATE INDEX sessions_user_idx      ON sessions (user_id, created_at DESC) WHERE user_id <> '';
