//! The named links between dualwrite and its stores.
//!
//! Every connection the workload makes crosses one of these fault-proxy links,
//! declared in `toxiproxy.json` (Toxiproxy's own `-config` format). A scenario
//! names a link to put a fault on it. The relay and the CDC connector reach
//! Postgres through their own link, so a scenario can cut them without
//! touching the app.
//!
//! Kafka has one link only: a Kafka client bootstraps, then connects to the
//! address the broker *advertises*, so every client of one broker follows the
//! same address. The broker is made to advertise the `kafka` link (the
//! embedded broker is told to; Redpanda in compose.yaml is configured to), and
//! all Kafka traffic — the app's, the relay's, the downstream consumer's —
//! crosses it.

/// The app's Postgres connections (writers, readers, the pool probe).
pub const POSTGRES: &str = "postgres";
/// The relay's and the CDC connector's Postgres connections.
pub const POSTGRES_RELAY: &str = "postgres_relay";
/// Every Redis connection.
pub const REDIS: &str = "redis";
/// Every Kafka connection (see the module doc for why there is one).
pub const KAFKA: &str = "kafka";

/// Every link, in the order `toxiproxy.json` declares them.
pub const ALL: [&str; 4] = [POSTGRES, POSTGRES_RELAY, REDIS, KAFKA];
