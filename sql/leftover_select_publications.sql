-- Publications named like a run's, in the database of this session.
SELECT pubname::text AS name FROM pg_publication WHERE pubname LIKE 'dw\_%' ORDER BY 1
