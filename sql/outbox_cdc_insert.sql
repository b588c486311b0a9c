-- An outbox row for the CDC connector (Debezium's columns): one event, keyed by
-- its aggregate. $1 id, $2 aggregateid, $3 payload (JSON text).
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
VALUES ($1, 'stock', $2, 'StockChanged', $3::text::jsonb)
