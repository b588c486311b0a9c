//! What a strategy (and the relay or connector behind it) is built from:
//! the run's namespace and how to reach each store, through the proxy's
//! links or directly.

use std::net::SocketAddr;

use sqlx::postgres::PgConnectOptions;

use crate::config::Tuning;
use crate::db::AppDb;
use crate::error::Result;
use crate::names::Strategy;
use crate::scenario::schedule::WorkloadKnobs;

/// The addresses of the fault-proxy links (see [`crate::links`]).
#[derive(Debug, Clone, Copy)]
pub struct Links {
    pub postgres: SocketAddr,
    pub postgres_relay: SocketAddr,
    pub redis: SocketAddr,
    pub kafka: SocketAddr,
}

/// Everything a strategy is built from: the run's namespace and how to reach
/// each store.
#[derive(Debug, Clone)]
pub struct Env {
    pub strategy: Strategy,
    /// Postgres, direct (no proxy); pools through links are built from it.
    pub db: PgConnectOptions,
    /// The run's schema (its tables), topic and Redis key prefix.
    pub schema: String,
    pub topic: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub links: Links,
    /// Kafka bootstrap address: the `kafka` link.
    pub kafka: String,
    pub tuning: Tuning,
    pub seed: u64,
    pub knobs: WorkloadKnobs,
}

impl Env {
    /// The app's database: a pool through the `postgres` link.
    pub fn app_db(&self) -> AppDb {
        let pool =
            crate::db::pool_through(&self.db, self.links.postgres, &self.schema, self.tuning.pool(), "dualwrite-app");
        AppDb::new(pool, self.tuning.db_timeout)
    }

    /// A producer for the run's topic with the given client id.
    pub fn publisher(&self, client_id: &str) -> Result<crate::kafka::Publisher> {
        crate::kafka::Publisher::new(crate::kafka::PublisherConfig {
            bootstrap: self.kafka.clone(),
            topic: self.topic.clone(),
            publish_timeout: self.tuning.publish_timeout,
            client_id: client_id.to_string(),
        })
    }
}
