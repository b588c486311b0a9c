UPDATE stock SET quantity = quantity + $2, version = version + 1
WHERE product_id = $1
RETURNING quantity, version
