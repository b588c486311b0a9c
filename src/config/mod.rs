//! The resolved configuration: what a run will do, validated, with every
//! default applied and the scenario loaded.
//!
//! [`crate::cli`] holds the flags as typed; this module turns them into
//! values the runner can use without re-checking anything. Everything that
//! can be checked without starting a run is checked here, before anything
//! starts: every range ([`limits`]), every URL's syntax, the input files,
//! the output paths ([`Outputs`]), and the size of the run.
//!
//! - [`limits`]: the range of every duration and count, and why;
//! - [`reproduce`]: the `reproduce:` line, a command that runs the same
//!   run again, and the warnings for flags a strategy does not use.

pub use crate::cli::limits;
pub mod reproduce;

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{OutputArgs, ServiceArgs, TuningArgs, WorkloadArgs};
use crate::error::{Error, Result};
use crate::files::OutputFile;
use crate::names::OutboxCdcMode;
use crate::proxy::ProxyConfig;
use crate::redact::redact_url;

/// Where the services are. Its `Debug` hides passwords.
#[derive(Clone)]
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

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &redact_url(&self.redis_url))
            .field("brokers", &self.brokers)
            .field("kafka_proxy_listen", &self.kafka_proxy_listen)
            .field("toxiproxy", &self.toxiproxy.as_deref().map(redact_url))
            .field("toxiproxy_config", &self.toxiproxy_config)
            .finish()
    }
}

/// Where the list of proxies comes from.
#[derive(Debug, Clone)]
pub enum ProxyConfigSource {
    /// The toxiproxy.json compiled into the binary.
    BuiltIn,
    /// A file (`--toxiproxy-config`), read and parsed when the flags were
    /// resolved.
    File { path: PathBuf, proxies: Vec<ProxyConfig> },
}

impl ProxyConfigSource {
    /// The proxies it declares; every one of [`crate::links::ALL`] is there
    /// (checked when it was read).
    pub fn proxies(&self) -> Vec<ProxyConfig> {
        match self {
            ProxyConfigSource::BuiltIn => serde_json::from_str(BUILTIN_TOXIPROXY_JSON)
                .expect("the built-in toxiproxy.json is valid (a unit test parses it)"),
            ProxyConfigSource::File { proxies, .. } => proxies.clone(),
        }
    }
}

/// The toxiproxy.json at the repository's top level, compiled in so that
/// `dualwrite` works from any directory. compose.yaml loads the same file.
pub const BUILTIN_TOXIPROXY_JSON: &str = include_str!("../../toxiproxy.json");

impl Services {
    /// The service flags, checked for everything that can be checked
    /// without reaching a service: each URL's syntax, each broker's
    /// `host:port`, the proxy list's file. Reaching them is
    /// [`crate::infra::Infra::start`]'s job.
    pub fn from_args(args: &ServiceArgs) -> Result<Services> {
        // Parsed here to refuse a bad URL before anything starts; parsed
        // again where it is used.
        crate::db::parse_url(&args.database_url)?;
        crate::cache::parse_url(&args.redis_url)?;
        let brokers = args.brokers.clone().filter(|b| !b.trim().is_empty());
        if let Some(brokers) = &brokers {
            broker_addresses(brokers)?;
        }
        let toxiproxy = args.toxiproxy.clone().filter(|t| !t.trim().is_empty());
        if let Some(url) = &toxiproxy {
            check_proxy_url(url)?;
        }
        let toxiproxy_config = match &args.toxiproxy_config {
            Some(path) => ProxyConfigSource::File { path: path.clone(), proxies: read_proxy_config(path)? },
            None => ProxyConfigSource::BuiltIn,
        };
        Ok(Services {
            database_url: args.database_url.clone(),
            redis_url: args.redis_url.clone(),
            brokers,
            kafka_proxy_listen: args.kafka_proxy_listen,
            toxiproxy,
            toxiproxy_config,
        })
    }

    /// The local defaults (what `make setup` provides), for tests.
    pub fn local() -> Services {
        Services {
            database_url: crate::cli::DEFAULT_DATABASE_URL.into(),
            redis_url: crate::cli::DEFAULT_REDIS_URL.into(),
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
    /// The workload flags, resolved; refuses a run too large to hold (see
    /// [`limits::MAX_PLANNED_ORDERS`]). The ranges of the single flags were
    /// checked when they were parsed.
    pub fn from_args(args: &WorkloadArgs, duration: Duration) -> Result<Workload> {
        let seed = args.seed.unwrap_or_else(rand::random::<u64>);
        let workload = Workload {
            // Seeds are printed and typed back in; keep them short enough to copy.
            seed: if args.seed.is_some() { seed } else { seed % 1_000_000 },
            duration,
            readers: args.readers,
            writers: args.writers,
            writer_tasks: args.writer_tasks,
            products: args.products,
            initial_stock: 1000,
        };
        workload.check_size()?;
        Ok(workload)
    }

    /// Orders the writers will place per second: each of `writer_tasks`
    /// places one every `writers`. What the embedded broker's capacity
    /// depends on, with [`Workload::planned_orders`].
    pub fn orders_per_second(&self) -> f64 {
        f64::from(self.writer_tasks) / self.writers.as_secs_f64()
    }

    /// Orders the writers will place in the main phase: one per interval per
    /// writer task, at most.
    pub fn planned_orders(&self) -> u64 {
        let per_writer = self.duration.as_nanos().div_ceil(self.writers.as_nanos().max(1));
        u64::try_from(per_writer).unwrap_or(u64::MAX).saturating_mul(u64::from(self.writer_tasks))
    }

    /// Reads the reader will take in the main phase.
    pub fn planned_reads(&self) -> u64 {
        u64::try_from(self.duration.as_nanos().div_ceil(self.readers.as_nanos().max(1))).unwrap_or(u64::MAX)
    }

    /// A run is held in memory (its history) and reconciled order by order:
    /// one that plans more than the limits is refused before it starts.
    fn check_size(&self) -> Result<()> {
        let orders = self.planned_orders();
        if orders > limits::MAX_PLANNED_ORDERS {
            return Err(Error::Config(format!(
                "--writer-tasks {} every --writers {} for --duration {} plans {orders} orders, more than a run \
                 holds ({}); place orders less often, with fewer tasks, or for a shorter run",
                self.writer_tasks,
                limits::show(self.writers),
                limits::show(self.duration),
                limits::MAX_PLANNED_ORDERS
            )));
        }
        let reads = self.planned_reads();
        if reads > limits::MAX_PLANNED_READS {
            return Err(Error::Config(format!(
                "--readers {} for --duration {} plans {reads} reads, more than a run holds ({}); read less \
                 often or for a shorter run",
                limits::show(self.readers),
                limits::show(self.duration),
                limits::MAX_PLANNED_READS
            )));
        }
        Ok(())
    }
}

/// The output files, checked before the run so that a mistyped path cannot
/// lose its results (see [`crate::files`]).
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub json: Option<OutputFile>,
    pub history: Option<OutputFile>,
    /// The picture of the run (`--html`).
    pub html: Option<OutputFile>,
    /// `--width`: the columns to lay the text report out for.
    pub width: Option<u16>,
    pub keep: bool,
}

impl Outputs {
    pub fn from_args(args: &OutputArgs) -> Result<Outputs> {
        let check = |flag: &str, path: &Option<PathBuf>| -> Result<Option<OutputFile>> {
            path.as_ref()
                .map(|p| {
                    OutputFile::check(p).map_err(|e| Error::input(format!("cannot write {flag} {}", p.display()), e))
                })
                .transpose()
        };
        let json = check("--json", &args.json)?;
        let history = check("--history", &args.history)?;
        let html = check("--html", &args.html)?;
        let named = [("--json", &json), ("--history", &history), ("--html", &html)];
        for (i, (first, a)) in named.iter().enumerate() {
            for (second, b) in &named[i + 1..] {
                if let (Some(a), Some(b)) = (a, b) {
                    if a.same_file(b) {
                        return Err(Error::Config(format!(
                            "{first} and {second} both name {}; one would overwrite the other: give each its own file",
                            a.path().display()
                        )));
                    }
                }
            }
        }
        Ok(Outputs { json, history, html, width: args.width, keep: args.keep })
    }
}

/// Each `host:port` of a `--brokers` list. A name is resolved later, with a
/// bound (see `infra`).
pub fn broker_addresses(brokers: &str) -> Result<Vec<(String, u16)>> {
    let fix = "write host:port, e.g. --brokers 127.0.0.1:9092 (several: a,b)";
    brokers
        .split(',')
        .map(str::trim)
        .map(|broker| {
            let refuse = |why: &str| Error::Config(format!("--brokers {brokers:?}: {broker:?} {why}; {fix}"));
            let (host, port) = broker.rsplit_once(':').ok_or_else(|| refuse("has no port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(refuse("has no host"));
            }
            if host.contains(['/', '@', ' ']) {
                return Err(refuse("is not a host:port (a Kafka bootstrap address has no scheme or path)"));
            }
            let port: u16 = port.parse().map_err(|_| refuse("has no valid port (1-65535)"))?;
            if port == 0 {
                return Err(refuse("has port 0"));
            }
            Ok((host.to_owned(), port))
        })
        .collect()
}

/// A Toxiproxy API URL must be http(s) with a host.
fn check_proxy_url(url: &str) -> Result<()> {
    let fix = "expected e.g. --toxiproxy http://127.0.0.1:8474, or omit it for the built-in proxy";
    let shown = redact_url(url);
    let parsed =
        url::Url::parse(url).map_err(|e| Error::input(format!("--toxiproxy {shown:?} is not a URL ({fix})"), e))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("--toxiproxy {shown:?} is not an http:// URL with a host; {fix}")));
    }
    Ok(())
}

/// Reads a `--toxiproxy-config` file: Toxiproxy's `-config` format, at most
/// 1 MiB, declaring every link dualwrite needs.
fn read_proxy_config(path: &std::path::Path) -> Result<Vec<ProxyConfig>> {
    let shown = path.display();
    let text = crate::files::read_input(path)
        .map_err(|e| Error::input(format!("cannot read --toxiproxy-config {shown}"), e))?;
    let proxies: Vec<ProxyConfig> = serde_json::from_str(&text).map_err(|e| {
        Error::input(
            format!(
                "--toxiproxy-config {shown} is not a Toxiproxy config (a JSON array of {{name, listen, upstream}})"
            ),
            e,
        )
    })?;
    check_links(&proxies, &format!("--toxiproxy-config {shown}"))?;
    Ok(proxies)
}

/// Every link dualwrite needs is declared.
pub fn check_links(proxies: &[ProxyConfig], source: &str) -> Result<()> {
    for name in crate::links::ALL {
        if !proxies.iter().any(|c| c.name == name) {
            return Err(Error::Config(format!(
                "{source} declares no proxy named {name:?}; dualwrite needs {}",
                crate::links::ALL.join(", ")
            )));
        }
    }
    Ok(())
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
    /// The app's pool, as `--pool-size` and `--acquire-timeout` ask.
    pub fn pool(&self) -> crate::db::PoolSize {
        crate::db::PoolSize { connections: self.pool_size, acquire_timeout: self.acquire_timeout }
    }

    /// The tuning flags (their ranges were checked when they were parsed).
    pub fn from_args(args: &TuningArgs) -> Result<Tuning> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_toxiproxy_json_declares_every_link() {
        check_links(&ProxyConfigSource::BuiltIn.proxies(), "the built-in toxiproxy.json").unwrap();
    }

    #[test]
    fn broker_lists_are_host_and_port() {
        assert_eq!(broker_addresses("127.0.0.1:9092").unwrap(), vec![("127.0.0.1".to_owned(), 9092)]);
        assert_eq!(broker_addresses("a:1, [::1]:2").unwrap(), vec![("a".to_owned(), 1), ("::1".to_owned(), 2)]);
        for bad in ["banana", ":9092", "host:", "host:0", "host:99999", "kafka://h:9092", "h:9092,"] {
            let e = broker_addresses(bad).unwrap_err().to_string();
            assert!(e.contains("--brokers") && e.contains("host:port"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_run_too_large_to_hold_is_refused() {
        let args = |writers: u64, tasks: u32| WorkloadArgs {
            readers: Duration::from_millis(100),
            writers: Duration::from_millis(writers),
            writer_tasks: tasks,
            products: 6,
            seed: Some(1),
        };
        let w = Workload::from_args(&args(1000, 4), Duration::from_secs(20)).unwrap();
        assert_eq!((w.planned_orders(), w.planned_reads()), (80, 200));
        assert_eq!(w.orders_per_second(), 4.0);
        let e = Workload::from_args(&args(1, 256), Duration::from_secs(3600)).unwrap_err().to_string();
        assert!(e.contains("plans 921600000 orders"), "{e}");
    }
}
