INSERT INTO orders (order_id, product_id, delta, quantity, version)
VALUES ($1, $2, $3, $4, $5)
