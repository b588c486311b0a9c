-- Takes a run's lease: a session-level advisory lock (class, run key),
-- held until released or until the session ends, however it ends.
SELECT pg_try_advisory_lock($1::int4, $2::int4)
