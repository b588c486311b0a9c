INSERT INTO coordinator_log (gid, order_id, product_id, decision, decided_by, event, lock_wait_ms, prepared_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT prepared FROM pg_prepared_xacts WHERE gid = $1))
ON CONFLICT (gid) DO NOTHING
