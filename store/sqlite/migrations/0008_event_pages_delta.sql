-- 0008: an event of a page may be stored as its difference from the event before it
-- in the page: its header line then has two or five more numbers (see encodePage),
-- "idx<TAB>type<TAB>created_at<TAB>length<TAB>prefix<TAB>suffix[<TAB>gap<TAB>from<TAB>copied]<LF>",
-- and the length bytes that follow are what it does not share with the JSON of the
-- event before it. A run's events repeat most of their JSON: pages are a third as
-- large or less. Pages written before stay as they are (their headers have four
-- fields); binaries of schema 7 or older, which cannot read the new pages, no longer
-- open the file.
--
-- The trigger that deletes the cancel intent of a run that ended compares the status
-- with each terminal one: SQLite built a temporary index of the list of IN at every
-- update of a run's status.
DROP TRIGGER cancel_intents_ended;

CREATE TRIGGER cancel_intents_ended AFTER UPDATE OF status ON runs
	WHEN NEW.status = 'COMPLETED' OR NEW.status = 'CANCELLED' OR NEW.status = 'ERROR'
BEGIN
	DELETE FROM cancel_intents WHERE run_id = NEW.run_id;
END;
