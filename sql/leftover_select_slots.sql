-- Replication slots named like a run's: the database each lives in (a
-- logical slot is dropped from there), and the WAL it keeps.
SELECT slot_name::text AS name,
       active,
       coalesce(database::text, '') AS database,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint AS wal_bytes
FROM pg_replication_slots
WHERE slot_name LIKE 'dw\_%'
ORDER BY 1
