-- Every committed order's id (the drain check of the CDC connector).
SELECT order_id FROM orders
