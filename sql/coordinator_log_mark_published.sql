UPDATE coordinator_log SET published_at = clock_timestamp(), published_by = $2
WHERE gid = $1 AND published_at IS NULL
