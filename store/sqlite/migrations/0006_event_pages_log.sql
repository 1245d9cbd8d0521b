-- 0006: event pages are written in the order they arrive. Keyed by (run_id,
-- first_idx), a flush of many streaming runs put one small row in each run's part
-- of the table, so that every commit rewrote a page of the table per run, and the
-- WAL grew by megabytes a flush. Rows now go at the end of a rowid table (a
-- commit dirties the few last pages), and a small index finds a run's pages: by
-- (run_id, last_idx), unique (an index is stored once per run: see AppendEvents),
-- which also answers a run's last stored index.
CREATE TABLE event_log (
	seq       INTEGER PRIMARY KEY,
	run_id    TEXT NOT NULL,
	first_idx INTEGER NOT NULL,
	last_idx  INTEGER NOT NULL,
	data      BLOB NOT NULL
);

INSERT INTO event_log (run_id, first_idx, last_idx, data)
	SELECT run_id, first_idx, last_idx, data FROM event_pages ORDER BY run_id, first_idx;

DROP TABLE event_pages;
ALTER TABLE event_log RENAME TO event_pages;
CREATE UNIQUE INDEX event_pages_run ON event_pages (run_id, last_idx);
