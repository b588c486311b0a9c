UPDATE outbox SET published_at = clock_timestamp(), attempts = attempts + 1
WHERE id = ANY($1)
