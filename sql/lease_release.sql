-- Gives a run's lease back.
SELECT pg_advisory_unlock($1::int4, $2::int4)
