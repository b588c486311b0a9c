INSERT INTO stock (product_id, quantity, version)
SELECT product_id, $2, 0 FROM generate_series(1, $1::integer) AS product_id
