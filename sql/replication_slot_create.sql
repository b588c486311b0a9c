-- A logical replication slot decoding with pgoutput, named after the run.
SELECT slot_name::text FROM pg_create_logical_replication_slot($1::text::name, 'pgoutput')
