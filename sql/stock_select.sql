SELECT quantity, version FROM stock WHERE product_id = $1
