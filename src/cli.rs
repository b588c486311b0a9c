//! The command line, as typed: clap's raw flags.
//!
//! Raw flags live here; [`crate::config`] turns them into the resolved
//! configuration the runner uses (validated, defaults applied, scenario
//! loaded). Nothing below the CLI reads the environment: every flag that names
//! a service has its `env = ...` fallback declared here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::strategy::Strategy;

/// Makes the dual-write problem visible.
///
/// Runs one stock-inventory workload through a way of keeping a database, a
/// cache and a Kafka topic in step, while a fault proxy injects latency,
/// resets, outages and crashes; then diffs what the three stores hold and
/// prints what went wrong: lost events, ghost events, duplicates, stale cache
/// entries — with counts, and the story of an example.
///
/// Start with `dualwrite compare`. Exit codes: 0 every verdict as the scenario
/// expects, 1 a verdict differs, 2 dualwrite itself failed, 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "dualwrite", version, max_term_width = 100)]
pub struct Cli {
    /// Log detail on stderr: -v info, -vv debug. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one strategy under a scenario and report what went wrong.
    ///
    /// Example: dualwrite run naive --scenario kafka-resets --seed 1
    Run(RunArgs),

    /// Run every strategy under the same seed and faults, side by side.
    ///
    /// Example: dualwrite compare --scenario flaky-network --json report.json
    Compare(CompareArgs),

    /// List the built-in scenarios, show one, or check your own file.
    Scenarios {
        #[command(subcommand)]
        command: Option<ScenariosCommand>,
    },

    /// Check that every service dualwrite needs is reachable and set up.
    ///
    /// Names what is missing and the command that fixes it; lists replication
    /// slots and schemas left behind by interrupted runs.
    Doctor(DoctorArgs),

    /// Serve a Toxiproxy-compatible fault proxy (HTTP API and proxies).
    ///
    /// The same API as Shopify's Toxiproxy, so `toxiproxy-cli` and curl work
    /// against it. `dualwrite run` starts one in-process when no --toxiproxy
    /// URL is given; run this to drive faults by hand during a workshop.
    Toxiproxy(ToxiproxyArgs),
}

#[derive(Debug, Subcommand)]
pub enum ScenariosCommand {
    /// List the built-in scenarios (the default).
    List,
    /// Print a scenario: its file, its expected verdicts and, with --seed,
    /// the fault schedule it expands to.
    Show {
        /// A built-in name or a path to a .toml file.
        name: String,
        /// Expand the schedule for this seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Expand the schedule for this run duration.
        #[arg(long, value_parser = parse_duration, default_value = "20s")]
        duration: Duration,
    },
    /// Validate a scenario file; errors name the line. Exits 2 if invalid.
    Check {
        /// Path to a .toml file.
        file: PathBuf,
    },
}

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

    /// How long writers and faults run (the main phase).
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub duration: Duration,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub services: ServiceArgs,

    #[command(flatten)]
    pub tuning: TuningArgs,
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

    /// Main-phase duration of each strategy's run.
    #[arg(long, value_parser = parse_duration, default_value = "8s")]
    pub duration: Duration,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub services: ServiceArgs,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// The workload: who writes, who reads, how often, from which seed.
#[derive(Debug, Args, Clone)]
pub struct WorkloadArgs {
    /// Interval between reads (each read samples the strategy's read path,
    /// the database and the downstream consumer's view at one instant).
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub readers: Duration,

    /// Interval between orders, per writer task. Orders are placed on this
    /// beat whether or not the previous one has finished (like requests
    /// arriving at a service), up to 16 in flight per task.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub writers: Duration,

    /// Number of concurrent writer tasks.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub writer_tasks: u32,

    /// Number of products in stock (each starts at 1000 units).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub products: u32,

    /// Seed for everything random: orders and fault timing. Random if absent;
    /// always printed, so a run can be reproduced exactly.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Where results go.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Also write the report as JSON to this file (schema in the README).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write the history — every order's legs as invoked and as told,
    /// every read, every crash — as JSON lines to this file (one run only).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Leave the run's schema, topic, cache keys and replication slot in place
    /// for inspection with psql, a Kafka console consumer and redis-cli.
    #[arg(long)]
    pub keep: bool,
}

/// The services. Defaults match compose.yaml and `make setup`.
#[derive(Debug, Args, Clone)]
pub struct ServiceArgs {
    /// PostgreSQL (≥ 15, wal_level=logical). dualwrite reaches it through the
    /// fault proxy; this is the direct address the proxy forwards to.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,

    /// Redis, the cache.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Kafka bootstrap address (host:port). Absent: an embedded broker
    /// (librdkafka's mock cluster) in-process, or, with --toxiproxy, the
    /// broker behind that proxy's `kafka` link. The broker must advertise the
    /// proxy's `kafka` listen address, or Kafka faults only hit the bootstrap
    /// connection (see README, "Kafka and the proxy").
    #[arg(long, env = "KAFKA_BROKERS")]
    pub brokers: Option<String>,

    /// With --brokers and the built-in proxy: where the proxy's `kafka` link
    /// listens. Your broker must advertise this address. Default: the port
    /// toxiproxy.json gives the link (127.0.0.1:29092).
    #[arg(long, env = "KAFKA_PROXY_LISTEN", value_name = "ADDR")]
    pub kafka_proxy_listen: Option<std::net::SocketAddr>,

    /// Toxiproxy API URL (a real Toxiproxy or `dualwrite toxiproxy`). Absent:
    /// a built-in one is started in-process.
    #[arg(long, env = "TOXIPROXY_URL")]
    pub toxiproxy: Option<String>,

    /// The proxies to create, in Toxiproxy's -config format. Default: the
    /// toxiproxy.json built into dualwrite (the same file compose.yaml loads).
    #[arg(long, env = "TOXIPROXY_CONFIG", value_name = "FILE")]
    pub toxiproxy_config: Option<PathBuf>,
}

/// Knobs of the system under test. The defaults are what the built-in
/// scenarios were tuned for.
#[derive(Debug, Args, Clone)]
pub struct TuningArgs {
    /// Connections in the app's Postgres pool (shared by writers, readers and
    /// the unrelated pool probe).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub pool_size: u32,

    /// How long a query waits for a pooled connection before giving up.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub acquire_timeout: Duration,

    /// Kafka producer delivery timeout (librdkafka's message.timeout.ms): a
    /// publish not acknowledged within it ends Fail or Unknown. librdkafka's
    /// own default is 5 minutes; 2 s lets a short run show what an outage
    /// longer than the timeout does. The built-in scenarios assume 2 s.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub publish_timeout: Duration,

    /// How long the drain phase waits for relays, connectors and the
    /// downstream consumer to catch up after faults are healed.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,

    /// cache-aside: expire cached entries after this long. Off by default so
    /// that staleness is not hidden.
    #[arg(long, value_parser = parse_duration)]
    pub cache_ttl: Option<Duration>,

    /// outbox: number of relay tasks claiming rows concurrently.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub relays: u32,

    /// outbox-cdc: capture `pg_logical_emit_message` (no table) or outbox
    /// table rows from the WAL.
    #[arg(long, value_enum, default_value = "message")]
    pub outbox_cdc_mode: OutboxCdcMode,
}

/// How outbox-cdc puts its messages in the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxCdcMode {
    /// `pg_logical_emit_message(true, ...)` in the business transaction.
    Message,
    /// A row in an outbox table, decoded from the WAL.
    Table,
}

/// `dualwrite doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub services: ServiceArgs,

    /// Drop replication slots and schemas left behind by interrupted runs
    /// (names starting with `dw_`, slots inactive).
    #[arg(long)]
    pub drop_stale: bool,
}

/// `dualwrite toxiproxy`
#[derive(Debug, Args)]
pub struct ToxiproxyArgs {
    /// Address for the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8474")]
    pub listen: std::net::SocketAddr,

    /// Proxies to create at start, in Toxiproxy's -config format. A listen
    /// address of 0.0.0.0:PORT (as toxiproxy.json has, for the compose
    /// container) is bound on 127.0.0.1:PORT unless --listen-any is given.
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

/// Parses `100ms`, `1s`, `2m` (humantime) and refuses zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("expected a duration such as 100ms, 1s or 2m ({e})"))?;
    if duration.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_humantime_form() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("banana").unwrap_err().contains("expected a duration"));
        assert!(parse_duration("0s").unwrap_err().contains("greater than zero"));
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
