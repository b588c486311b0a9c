SELECT product_id, quantity, version FROM stock ORDER BY product_id
