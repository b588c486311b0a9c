//! The flags of each subcommand, as clap parses them, with the services'
//! defaults (those `make setup` and compose.yaml start).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::limits;
use super::Given;
use crate::names::{OutboxCdcMode, Strategy};

/// `dualwrite run <strategy>`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The strategy to run.
    #[arg(value_enum)]
    pub strategy: Strategy,

    #[command(flatten)]
    pub workload: WorkloadArgs,

    /// Scenario: a built-in name (see `dualwrite scenarios`) or a .toml path.
    #[arg(long, default_value = "calm")]
    pub scenario: String,

    /// How long writers and faults run (the main phase). Range: 1s to 1h
    /// (the history is held in memory).
    #[arg(long, allow_hyphen_values = true, value_parser = limits::DURATION, default_value = "20s")]
    pub duration: Duration,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub services: ServiceArgs,

    #[command(flatten)]
    pub tuning: TuningArgs,

    /// The flags as given, for the `reproduce:` line and the unused-flag
    /// warnings (filled in by [`super::parse`]).
    #[arg(skip)]
    pub given: Given,
}

/// `dualwrite compare`
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Strategies to compare, comma-separated. Default: all of them.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub strategies: Vec<Strategy>,

    #[command(flatten)]
    pub workload: WorkloadArgs,

    /// Scenario: a built-in name or a .toml path.
    #[arg(long, default_value = "flaky-network")]
    pub scenario: String,

    /// Main-phase duration of each strategy's run. Range: 1s to 1h.
    #[arg(long, allow_hyphen_values = true, value_parser = limits::DURATION, default_value = "8s")]
    pub duration: Duration,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub services: ServiceArgs,

    #[command(flatten)]
    pub tuning: TuningArgs,

    /// The flags as given (filled in by [`super::parse`]).
    #[arg(skip)]
    pub given: Given,
}

/// The workload: who writes, who reads, how often, from which seed.
#[derive(Debug, Args, Clone)]
pub struct WorkloadArgs {
    /// Interval between reads (each read samples the strategy's read path,
    /// the database and the downstream consumer's view at one instant).
    /// Range: 1ms to 1m.
    #[arg(long, allow_hyphen_values = true, value_parser = limits::READERS, default_value = "100ms")]
    pub readers: Duration,

    /// Interval between orders, per writer task. Orders are placed on this
    /// beat whether or not the previous one has finished (like requests
    /// arriving at a service), up to 16 in flight per task; the beats that
    /// pass while a task waits for room place none, and the report counts
    /// them. Range: 1ms to 1m; a run plans at most 1,000,000 orders.
    #[arg(long, allow_hyphen_values = true, value_parser = limits::WRITERS, default_value = "1s")]
    pub writers: Duration,

    /// Number of concurrent writer tasks. Range: 1 to 256.
    #[arg(long, default_value = "4", allow_hyphen_values = true, value_parser = limits::WRITER_TASKS)]
    pub writer_tasks: u32,

    /// Number of products in stock (each starts at 1000 units). Range: 1 to
    /// 10000.
    #[arg(long, default_value = "6", allow_hyphen_values = true, value_parser = limits::PRODUCTS)]
    pub products: u32,

    /// Seed for everything random: orders and fault timing, a whole number
    /// from 0 to 18446744073709551615. Random if absent; always printed, so
    /// a run can be reproduced.
    #[arg(long, allow_hyphen_values = true, value_parser = parse_seed)]
    pub seed: Option<u64>,
}

/// Where results go.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Also write the report as JSON to this file (schema in the README).
    /// Checked before the run: its folder must exist, and it must not be a
    /// directory or a symbolic link. Written whole or not at all (a
    /// temporary file in the same folder, then renamed).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write the history — every order's legs as invoked and as told,
    /// every read, every crash — as JSON lines to this file, each line
    /// naming its strategy (with compare, every strategy's). Checked and
    /// written like --json, and never the same file.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Also draw the run as a picture: one self-contained HTML file (it
    /// needs no network; open it by double-click). Per strategy, on one time
    /// axis: the fault windows, every order coloured by its fate, and each
    /// product's version in the database against what the consumer and the
    /// cache believed.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Lay the text report out for this many columns (40 to 1000).
    /// Default: the terminal's width, or 80 when stdout is not a terminal.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(40..=1000))]
    pub width: Option<u16>,

    /// Leave the run's schema, topic, cache keys and replication slot in place
    /// for inspection with psql, a Kafka console consumer and redis-cli.
    #[arg(long)]
    pub keep: bool,
}

/// `dualwrite report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A report written by `run` or `compare` with --json.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,

    /// Where to write the picture (one self-contained HTML file).
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
}

/// The services. Defaults match compose.yaml and `make setup`.
#[derive(Debug, Args, Clone)]
pub struct ServiceArgs {
    /// PostgreSQL (≥ 15, wal_level=logical). dualwrite reaches it through the
    /// fault proxy; this is the direct address the proxy forwards to. A
    /// password in it is shown as *** everywhere dualwrite prints the URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Redis, the cache (checked before a cache-aside run).
    #[arg(long, env = "REDIS_URL", hide_env_values = true, default_value = DEFAULT_REDIS_URL)]
    pub redis_url: String,

    /// Kafka bootstrap address (host:port). Absent: an embedded broker
    /// (librdkafka's mock cluster) in-process, or, with --toxiproxy, the
    /// broker behind that proxy's `kafka` link. The broker must advertise the
    /// proxy's `kafka` listen address, or Kafka faults only hit the bootstrap
    /// connection (see README, "Kafka and the proxy"). Checked before the
    /// run: each host:port must answer within a few seconds.
    #[arg(long, env = "KAFKA_BROKERS", value_name = "HOST:PORT")]
    pub brokers: Option<String>,

    /// With --brokers and the built-in proxy: where the proxy's `kafka` link
    /// listens. Your broker must advertise this address. Default: the port
    /// toxiproxy.json gives the link (127.0.0.1:29092).
    #[arg(long, env = "KAFKA_PROXY_LISTEN", value_name = "ADDR")]
    pub kafka_proxy_listen: Option<std::net::SocketAddr>,

    /// Toxiproxy API URL (a real Toxiproxy or `dualwrite toxiproxy`). Absent:
    /// a built-in one is started in-process.
    #[arg(long, env = "TOXIPROXY_URL", hide_env_values = true, value_name = "URL")]
    pub toxiproxy: Option<String>,

    /// The proxies to create, in Toxiproxy's -config format (at most 1 MiB).
    /// Default: the toxiproxy.json built into dualwrite (the same file
    /// compose.yaml loads).
    #[arg(long, env = "TOXIPROXY_CONFIG", value_name = "FILE")]
    pub toxiproxy_config: Option<PathBuf>,
}

/// Knobs of the system under test. The defaults are what the built-in
/// scenarios were tuned for.
#[derive(Debug, Args, Clone)]
pub struct TuningArgs {
    /// Connections in the app's Postgres pool (shared by writers, readers and
    /// the unrelated pool probe). Range: 1 to 100.
    #[arg(long, default_value = "5", allow_hyphen_values = true, value_parser = limits::POOL_SIZE)]
    pub pool_size: u32,

    /// How long a query waits for a pooled connection before giving up.
    /// Range: 10ms to 1m.
    #[arg(long, allow_hyphen_values = true, value_parser = limits::ACQUIRE_TIMEOUT, default_value = "1s")]
    pub acquire_timeout: Duration,

    /// Kafka producer delivery timeout (librdkafka's message.timeout.ms): a
    /// publish not acknowledged within it ends Fail or Unknown. librdkafka's
    /// own default is 5 minutes; 2 s lets a short run show what an outage
    /// longer than the timeout does. The built-in scenarios assume 2 s.
    /// Range: 100ms to 5m. Not used by cache-aside, which publishes nothing.
    #[arg(long, allow_hyphen_values = true, value_parser = limits::PUBLISH_TIMEOUT, default_value = "2s")]
    pub publish_timeout: Duration,

    /// How long the drain phase waits for relays, connectors and the
    /// downstream consumer to catch up after faults are healed. Range: 1s to
    /// 10m.
    #[arg(long, allow_hyphen_values = true, value_parser = limits::DRAIN_TIMEOUT, default_value = "30s")]
    pub drain_timeout: Duration,

    /// cache-aside only: expire cached entries after this long. Off by
    /// default so that staleness is not hidden. Range: 1ms to 24h.
    #[arg(long, allow_hyphen_values = true, value_parser = limits::CACHE_TTL)]
    pub cache_ttl: Option<Duration>,

    /// outbox only: number of relay tasks claiming rows concurrently. Range:
    /// 1 to 16.
    #[arg(long, default_value = "1", allow_hyphen_values = true, value_parser = limits::RELAYS)]
    pub relays: u32,

    /// outbox-cdc only: capture `pg_logical_emit_message` (no table) or
    /// outbox table rows from the WAL.
    #[arg(long, value_enum, default_value = "message")]
    pub outbox_cdc_mode: OutboxCdcMode,
}

/// `--database-url`'s default: the PostgreSQL `make setup` and compose.yaml start.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `--redis-url`'s default.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `dualwrite doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub services: ServiceArgs,

    /// Remove what runs that are over left behind — interrupted, killed, or
    /// kept with --keep — and say exactly what was removed. Never touches a
    /// run still in progress (each holds a lease on its namespace).
    #[arg(long)]
    pub drop_stale: bool,
}

/// `dualwrite toxiproxy`
#[derive(Debug, Args)]
pub struct ToxiproxyArgs {
    /// Address for the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8474")]
    pub listen: std::net::SocketAddr,

    /// Proxies to create at start, in Toxiproxy's -config format (at most
    /// 1 MiB). A listen address of 0.0.0.0:PORT (as toxiproxy.json has, for
    /// the compose container) is bound on 127.0.0.1:PORT unless --listen-any
    /// is given.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Listen on every interface where an address says 0.0.0.0 or [::]
    /// (the API's and the proxies'). Anyone on the network can then reach
    /// the proxied databases and reconfigure the proxy; a warning names
    /// every listener that is not on loopback.
    #[arg(long)]
    pub listen_any: bool,

    /// Seed for the toxics' random draws (latency jitter, slicer sizes,
    /// toxicity): the same seed and the same connections give the same
    /// draws. Default: a random seed, printed at start.
    #[arg(long, env = "DUALWRITE_PROXY_SEED")]
    pub seed: Option<u64>,
}

/// `--seed`: a whole number that fits 64 bits.
pub(super) fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("{text:?} is not a seed: use a whole number from 0 to {}", u64::MAX))
}
