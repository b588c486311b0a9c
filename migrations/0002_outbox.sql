-- The transactional outbox, with Debezium's outbox column names. Only the
-- outbox strategies write here; every run has the table so that all runs
-- share one schema.
CREATE TABLE outbox (
    id            uuid        PRIMARY KEY,
    aggregatetype text        NOT NULL,
    aggregateid   text        NOT NULL,
    type          text        NOT NULL,
    payload       jsonb       NOT NULL,
    -- Insertion order, for publishing in order. Assigned at INSERT but
    -- visible only at COMMIT, so it is NOT a safe resume position: a relay
    -- that remembers "the highest seq I published" skips rows whose
    -- transaction commits late. The relay selects unpublished rows instead.
    seq           bigserial   NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0
);

CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- Rows the relay could never publish (a permanent error), kept for a human.
CREATE TABLE outbox_dead_letter (
    id            uuid        PRIMARY KEY,
    aggregatetype text        NOT NULL,
    aggregateid   text        NOT NULL,
    type          text        NOT NULL,
    payload       jsonb       NOT NULL,
    error         text        NOT NULL,
    failed_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Wake the relay when an outbox row commits: NOTIFY is delivered at COMMIT,
-- so the relay never wakes for a row it cannot see yet. The channel is the
-- schema's name, so each run's relay hears only its own rows.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA, '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
