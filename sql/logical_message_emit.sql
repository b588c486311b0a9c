-- Writes a transactional logical decoding message into the WAL: decoded, like
-- a row, only if and when the transaction commits. $1 prefix, $2 content.
SELECT pg_logical_emit_message(true, $1::text, $2::text)
