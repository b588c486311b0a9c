-- Databases named like a CDC run's, with the mark a --keep run leaves.
SELECT datname::text AS name, coalesce(shobj_description(oid, 'pg_database'), '') AS note
FROM pg_database
WHERE datname LIKE 'dw\_%'
ORDER BY 1
