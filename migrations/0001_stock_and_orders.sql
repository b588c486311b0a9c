-- The workload's tables. Each run creates them in its own schema (the
-- connection's search_path), so runs and tests never see each other's rows.

-- One row per product. `version` grows by one with every change, so every
-- event and every cached value can be ordered against the truth.
CREATE TABLE stock (
    product_id integer PRIMARY KEY,
    quantity   bigint  NOT NULL,
    version    bigint  NOT NULL
);

-- One row per committed order: the ground truth the reconciler counts from.
-- `quantity` and `version` are the product's state right after this order.
CREATE TABLE orders (
    order_id     uuid        PRIMARY KEY,
    product_id   integer     NOT NULL REFERENCES stock (product_id),
    delta        integer     NOT NULL,
    quantity     bigint      NOT NULL,
    version      bigint      NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (product_id, version)
);
