-- What two-phase's log says about the run, for the report (see
-- strategy::two_phase::recovery::InDoubt). $1: the prepared-transaction
-- prefix; $2: the lock wait (ms) from which an order counts as blocked.
WITH in_doubt AS (
    SELECT * FROM coordinator_log WHERE resolved_at IS NOT NULL
), longest AS (
    SELECT gid, order_id, product_id, prepared_at, resolved_at,
           extract(epoch FROM resolved_at - prepared_at) * 1000 AS locked_ms
    FROM in_doubt ORDER BY resolved_at - prepared_at DESC NULLS LAST LIMIT 1
), blocked AS (
    SELECT lock_wait_ms FROM coordinator_log WHERE lock_wait_ms >= $2
)
SELECT
    (SELECT count(*) FROM in_doubt) AS in_doubt,
    (SELECT count(*) FROM in_doubt WHERE decision = 'commit') AS committed_by_recovery,
    (SELECT count(*) FROM coordinator_log WHERE published_by = 'recovery') AS republished,
    (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)) AS left_prepared,
    (SELECT count(*) FROM blocked) AS blocked,
    (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY lock_wait_ms) FROM blocked) AS lock_wait_p99_ms,
    (SELECT max(lock_wait_ms) FROM blocked) AS lock_wait_max_ms,
    (SELECT order_id FROM longest) AS longest_order,
    (SELECT locked_ms FROM longest)::float8 AS longest_locked_ms,
    -- The product: the log's, or (recovery decided, so no product was logged)
    -- the order's row, if it committed.
    (SELECT coalesce(l.product_id, o.product_id) FROM longest l LEFT JOIN orders o USING (order_id)) AS longest_product,
    -- Orders of that product that waited on its lock while it was held in doubt.
    (SELECT count(*) FROM coordinator_log c, longest l
      WHERE c.product_id = coalesce(l.product_id, (SELECT product_id FROM orders WHERE order_id = l.order_id))
        AND c.lock_wait_ms >= $2 AND c.gid <> l.gid
        AND c.decided_at > l.prepared_at
        AND c.decided_at - c.lock_wait_ms * interval '1 millisecond' < l.resolved_at) AS longest_waited
