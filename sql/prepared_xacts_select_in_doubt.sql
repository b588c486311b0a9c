SELECT gid FROM pg_prepared_xacts
WHERE database = current_database() AND starts_with(gid, $1)
  AND prepared < clock_timestamp() - $2::float8 * interval '1 millisecond'
ORDER BY prepared
