-- 0004: the cancel intent of a run that ended is done with, however the run ended
-- (as on SQLite): a trigger deletes it in the transaction that stores the end,
-- and the intents of the runs that ended before this migration go now. Until
-- then they stayed until a later cancel pruned them, a day after.
--
-- The trigger's function runs with the search_path of this migration (the
-- store's schema), whatever the connection's.

CREATE FUNCTION run_ended() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM cancel_intents WHERE run_id = NEW.run_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_ended AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (NEW.status IN ('COMPLETED', 'CANCELLED', 'ERROR') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION run_ended();

DELETE FROM cancel_intents c USING runs r
    WHERE r.run_id = c.run_id AND r.status IN ('COMPLETED', 'CANCELLED', 'ERROR');
