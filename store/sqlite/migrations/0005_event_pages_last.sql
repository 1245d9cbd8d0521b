-- 0005: the last stored index of a run is found by an index seek. AppendEvents asks
-- it on every write of a run's events; answered from the primary key (run_id,
-- first_idx) it read every page of the run, so a flush of a long run cost more the
-- longer the run was (quadratic in its events).
CREATE INDEX event_pages_last ON event_pages (run_id, last_idx);
