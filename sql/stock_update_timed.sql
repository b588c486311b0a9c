UPDATE stock SET quantity = quantity + $2, version = version + 1
WHERE product_id = $1
RETURNING quantity, version,
    (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::float8 AS lock_wait_ms
