UPDATE coordinator_log SET resolved_at = clock_timestamp() WHERE gid = $1 AND resolved_at IS NULL
