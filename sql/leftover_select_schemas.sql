-- Schemas named like a run's, with the mark a --keep run leaves.
SELECT nspname::text AS name, coalesce(obj_description(oid, 'pg_namespace'), '') AS note
FROM pg_namespace
WHERE nspname LIKE 'dw\_%'
ORDER BY 1
