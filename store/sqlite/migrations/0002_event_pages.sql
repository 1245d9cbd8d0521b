-- 0002: events are stored in pages, one row per run per write: a streamed run's
-- events cost one row each flush instead of one row each, which is what limited how
-- many runs per second SQLite could persist. A page holds its events one after the
-- other, each as a header line "idx<TAB>type<TAB>created_at<TAB>length<LF>" followed
-- by the event's JSON (length bytes).
CREATE TABLE event_pages (
	run_id    TEXT NOT NULL,
	first_idx INTEGER NOT NULL,
	last_idx  INTEGER NOT NULL,
	data      BLOB NOT NULL,
	PRIMARY KEY (run_id, first_idx)
) WITHOUT ROWID;

INSERT INTO event_pages (run_id, first_idx, last_idx, data)
	SELECT run_id, idx, idx,
		CAST(idx || char(9) || type || char(9) || created_at || char(9) || length(CAST(data AS BLOB)) || char(10) AS BLOB) || CAST(data AS BLOB)
	FROM events;

DROP TABLE events;
