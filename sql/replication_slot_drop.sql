-- Drops the slot if it exists (an error if it is still active).
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1::text::name
