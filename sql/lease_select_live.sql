-- The keys of every lease held right now, in any database of the cluster.
-- pg_locks stores a two-key advisory lock as classid = key 1, objid = key 2
-- (as unsigned oids) and objsubid = 2.
SELECT objid::bigint AS run_key
FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid = $1::int4::oid
