//! The resolved configuration: what a run will do, validated, with every
//! default applied and the scenario loaded.
//!
//! [`crate::cli`] holds the flags as typed; this module turns them into
//! values the runner can use without re-checking anything.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{OutboxCdcMode, ServiceArgs, TuningArgs, WorkloadArgs};
use crate::error::{Error, Result};

/// Where the services are.
#[derive(Debug, Clone)]
pub struct Services {
    /// PostgreSQL, direct (the fault proxy forwards to it).
    pub database_url: String,
    /// Redis, direct.
    pub redis_url: String,
    /// A Kafka bootstrap address; `None` = embedded (or behind --toxiproxy).
    pub brokers: Option<String>,
    /// With `brokers` and the built-in proxy: where the `kafka` link listens
    /// (the broker must advertise it). `None`: toxiproxy.json's port.
    pub kafka_proxy_listen: Option<std::net::SocketAddr>,
    /// A Toxiproxy API; `None` = built in.
    pub toxiproxy: Option<String>,
    /// The proxies to create (Toxiproxy's -config format).
    pub toxiproxy_config: ProxyConfigSource,
}

/// Where the list of proxies comes from.
#[derive(Debug, Clone)]
pub enum ProxyConfigSource {
    /// The toxiproxy.json compiled into the binary.
    BuiltIn,
    File(PathBuf),
}

/// The toxiproxy.json at the repository's top level, compiled in so that
/// `dualwrite` works from any directory. compose.yaml loads the same file.
pub const BUILTIN_TOXIPROXY_JSON: &str = include_str!("../toxiproxy.json");

impl Services {
    pub fn from_args(args: &ServiceArgs) -> Result<Services> {
        Ok(Services {
            database_url: args.database_url.clone(),
            redis_url: args.redis_url.clone(),
            brokers: args.brokers.clone().filter(|b| !b.trim().is_empty()),
            kafka_proxy_listen: args.kafka_proxy_listen,
            toxiproxy: args.toxiproxy.clone().filter(|t| !t.trim().is_empty()),
            toxiproxy_config: match &args.toxiproxy_config {
                Some(path) => ProxyConfigSource::File(path.clone()),
                None => ProxyConfigSource::BuiltIn,
            },
        })
    }

    /// The local defaults (what `make setup` provides), for tests.
    pub fn local() -> Services {
        Services {
            database_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            brokers: None,
            kafka_proxy_listen: None,
            toxiproxy: None,
            toxiproxy_config: ProxyConfigSource::BuiltIn,
        }
    }
}

/// The workload's shape.
#[derive(Debug, Clone)]
pub struct Workload {
    pub seed: u64,
    pub duration: Duration,
    pub readers: Duration,
    pub writers: Duration,
    pub writer_tasks: u32,
    pub products: u32,
    /// Units each product starts with.
    pub initial_stock: i64,
}

/// Requests a writer (or the reader, or the pool probe) may have in flight
/// at once: the workload is open-loop (requests arrive on a beat, as they do
/// at a service), so a slow store makes them pile up — up to this bound.
pub const MAX_IN_FLIGHT_PER_WRITER: usize = 16;

impl Workload {
    pub fn from_args(args: &WorkloadArgs, duration: Duration) -> Result<Workload> {
        let seed = args.seed.unwrap_or_else(rand::random::<u64>);
        Ok(Workload {
            // Seeds are printed and typed back in; keep them short enough to copy.
            seed: if args.seed.is_some() { seed } else { seed % 1_000_000 },
            duration,
            readers: args.readers,
            writers: args.writers,
            writer_tasks: args.writer_tasks,
            products: args.products,
            initial_stock: 1000,
        })
    }
}

/// Knobs of the system under test.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub pool_size: u32,
    pub acquire_timeout: Duration,
    /// Client-side bound on any one database statement. A statement that
    /// takes longer is abandoned and its connection closed, never reused.
    pub db_timeout: Duration,
    pub publish_timeout: Duration,
    /// Client-side bound on any one Redis command; the connection is rebuilt
    /// after a timeout (a black-holed Redis connection can be left answering
    /// earlier requests).
    pub cache_timeout: Duration,
    pub drain_timeout: Duration,
    pub cache_ttl: Option<Duration>,
    pub relays: u32,
    pub outbox_cdc_mode: OutboxCdcMode,
    /// How often the relay polls when no notification wakes it.
    pub relay_poll: Duration,
}

impl Tuning {
    pub fn from_args(args: &TuningArgs) -> Result<Tuning> {
        if args.publish_timeout < Duration::from_millis(100) {
            return Err(Error::Config(
                "--publish-timeout must be at least 100ms (librdkafka needs time to send)".into(),
            ));
        }
        Ok(Tuning {
            pool_size: args.pool_size,
            acquire_timeout: args.acquire_timeout,
            db_timeout: Duration::from_secs(5),
            publish_timeout: args.publish_timeout,
            cache_timeout: Duration::from_millis(500),
            drain_timeout: args.drain_timeout,
            cache_ttl: args.cache_ttl,
            relays: args.relays,
            outbox_cdc_mode: args.outbox_cdc_mode,
            relay_poll: Duration::from_millis(500),
        })
    }
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            pool_size: 5,
            acquire_timeout: Duration::from_secs(1),
            db_timeout: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(2),
            cache_timeout: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(30),
            cache_ttl: None,
            relays: 1,
            outbox_cdc_mode: OutboxCdcMode::Message,
            relay_poll: Duration::from_millis(500),
        }
    }
}
