-- Removes the outbox row in the transaction that inserted it: the insert is in
-- the WAL already, which is all the CDC connector reads.
DELETE FROM outbox WHERE id = $1
