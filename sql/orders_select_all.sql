SELECT order_id, product_id, delta, quantity, version FROM orders ORDER BY product_id, version
