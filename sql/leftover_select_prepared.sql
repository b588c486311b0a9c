-- Prepared transactions named like a two-phase run's (`dw2pc:<run>:<order>`):
-- the run, the identifier, and the database they must be resolved from.
-- They hold their row locks and keep WAL until someone resolves them.
SELECT split_part(gid, ':', 2) AS name, gid, database::text AS database
FROM pg_prepared_xacts
WHERE gid LIKE 'dw2pc:dw\_%'
ORDER BY prepared
