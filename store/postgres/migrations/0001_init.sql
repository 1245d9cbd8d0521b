-- 0001: sessions, runs and their events.
--
-- Values written by the runtime keep their text as written: events' data is text
-- (what clients were sent, byte for byte) and outputs and session state are json,
-- not jsonb, which would reorder keys and refuse the \u0000 a tool result may hold.
-- Times are timestamptz at millisecond precision (the store truncates them).
-- Ids and other keys compare bytewise (COLLATE "C"): they are opaque, and a
-- database's linguistic collation would make every index comparison slower.

CREATE TABLE sessions (
    session_id    text COLLATE "C" PRIMARY KEY,
    user_id       text             NOT NULL DEFAULT '',
    kind          text             NOT NULL DEFAULT '',
    component_id  text             NOT NULL DEFAULT '',
    state         json,
    created_at    timestamptz      NOT NULL,
    updated_at    timestamptz      NOT NULL
);

CREATE TABLE runs (
    run_id        text COLLATE "C" PRIMARY KEY,
    session_id    text COLLATE "C" NOT NULL DEFAULT '',
    user_id       text             NOT NULL DEFAULT '',
    parent_run_id text             NOT NULL DEFAULT '',
    kind          text             NOT NULL DEFAULT '',
    component_id  text COLLATE "C" NOT NULL DEFAULT '',
    status        text COLLATE "C" NOT NULL,
    replica       text             NOT NULL DEFAULT '',
    lease_until   timestamptz,
    created_at    timestamptz      NOT NULL,
    updated_at    timestamptz      NOT NULL,
    input         text             NOT NULL DEFAULT '',
    output        json
);

-- ListRuns: newest first, by session, by component (kind is checked on the rows
-- found), or over all runs (a status filter alone is checked on the rows found).
CREATE INDEX runs_created_idx   ON runs (created_at DESC, run_id DESC);
CREATE INDEX runs_session_idx   ON runs (session_id, created_at DESC, run_id DESC);
CREATE INDEX runs_component_idx ON runs (component_id, created_at DESC, run_id DESC);
-- Interrupt: the runs that are not over, by lease.
CREATE INDEX runs_lease_idx     ON runs (lease_until) WHERE status IN ('RUNNING', 'PENDING');

CREATE TABLE events (
    run_id        text COLLATE "C" NOT NULL,
    idx           integer          NOT NULL,
    type          text             NOT NULL,
    data          text             NOT NULL,
    created_at    timestamptz      NOT NULL,
    PRIMARY KEY (run_id, idx)
);
