-- The two-phase coordinator's log: one row per prepared transaction whose
-- fate was decided. Only two-phase writes here; every run has the table so
-- that all runs share one schema.
--
-- The primary key is what makes the decision atomic: the coordinator
-- inserts `commit` and recovery inserts `abort`, both with ON CONFLICT DO
-- NOTHING, so exactly one of them decides, and the other reads its word.
CREATE TABLE coordinator_log (
    -- The PREPARE TRANSACTION identifier (`dw2pc:<schema>:<order id>`).
    gid          text        PRIMARY KEY,
    order_id     uuid        NOT NULL,
    -- NULL when recovery decided: it knows the gid, not the order.
    product_id   integer,
    decision     text        NOT NULL CHECK (decision IN ('commit', 'abort')),
    -- Who decided: the coordinator, or recovery (the transaction was in doubt).
    decided_by   text        NOT NULL CHECK (decided_by IN ('coordinator', 'recovery')),
    decided_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The event to publish once the decision is commit; recovery publishes
    -- it again if the coordinator never said it was delivered.
    event        jsonb,
    -- How long the order's stock UPDATE waited for the product's row lock,
    -- measured by the server (no network in it).
    lock_wait_ms float8,
    -- When recovery resolved the transaction, and when it had been prepared
    -- (from pg_prepared_xacts): how long it held its locks in doubt.
    prepared_at  timestamptz,
    resolved_at  timestamptz,
    published_at timestamptz,
    published_by text
);
