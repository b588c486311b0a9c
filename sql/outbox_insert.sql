INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
VALUES ($1, 'stock', $2, 'StockChanged', $3)
