-- 0006: a run's events are stored in pages, a write's consecutive events of one
-- run in one row (see pages.go for a page's format), instead of a row each: a
-- flush of many streaming runs inserted a row and an index entry per event, whose
-- cost was most of the server's time per run and most of the WAL it wrote. A
-- run's pages never overlap; the unique index on (run_id, last_idx) finds a run's
-- pages in order, and its last stored index.
--
-- Events already stored become pages: each run's consecutive events, at most
-- about 1 MiB of them a page, keep their index, type, data and time (whole
-- milliseconds, as stored).
--
-- Pages are compressed with lz4 where the server has it (pglz, PostgreSQL's
-- default, costs several times its CPU); PostgreSQL 14 and later.

CREATE TABLE event_pages (
    run_id    text COLLATE "C" NOT NULL,
    first_idx integer          NOT NULL,
    last_idx  integer          NOT NULL,
    data      bytea            NOT NULL
);

DO $$
BEGIN
    EXECUTE 'ALTER TABLE event_pages ALTER COLUMN data SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    NULL; -- no lz4 in this server, or a server before PostgreSQL 14
END
$$;

INSERT INTO event_pages (run_id, first_idx, last_idx, data)
SELECT run_id, min(idx), max(idx),
    string_agg(convert_to(idx || E'\t' || round(extract(epoch FROM created_at) * 1000)::bigint || E'\t' ||
        octet_length(convert_to(type, 'UTF8')) || E'\t' || octet_length(convert_to(data, 'UTF8')) || E'\n' || type, 'UTF8')
        || convert_to(data, 'UTF8'), ''::bytea ORDER BY idx)
FROM (
    SELECT run_id, idx, type, data, created_at, island,
        (sum(octet_length(data)) OVER (PARTITION BY run_id, island ORDER BY idx) - octet_length(data)) / 1048576 AS part
    FROM (
        SELECT run_id, idx, type, data, created_at,
            idx - row_number() OVER (PARTITION BY run_id ORDER BY idx) AS island
        FROM events
    ) AS consecutive
) AS parted
GROUP BY run_id, island, part
ORDER BY run_id, min(idx);

DROP TABLE events;

CREATE UNIQUE INDEX event_pages_run_idx ON event_pages (run_id, last_idx);
