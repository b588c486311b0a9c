WITH failed AS (
    DELETE FROM outbox WHERE id = $1
    RETURNING id, aggregatetype, aggregateid, type, payload
)
INSERT INTO outbox_dead_letter (id, aggregatetype, aggregateid, type, payload, error)
SELECT id, aggregatetype, aggregateid, type, payload, $2 FROM failed
