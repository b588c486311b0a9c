SELECT gid, event FROM coordinator_log
WHERE decision = 'commit' AND published_at IS NULL AND decided_at < clock_timestamp() - $1::float8 * interval '1 millisecond'
ORDER BY decided_at
