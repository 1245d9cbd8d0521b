-- 0002: cancel intents, so that a cancel accepted by one replica reaches the
-- replica that executes the run (or will start it) through LISTEN/NOTIFY, and a
-- listener that reconnects re-reads the cancels it may have missed.

CREATE TABLE cancel_intents (
    run_id     text COLLATE "C" PRIMARY KEY,
    reason     text             NOT NULL DEFAULT '',
    created_at timestamptz      NOT NULL DEFAULT now()
);

-- Pruning and re-reading: by age.
CREATE INDEX cancel_intents_created_idx ON cancel_intents (created_at);
