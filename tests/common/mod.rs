//! What the integration tests share: running a strategy under a scenario
//! against the real services, with the embedded broker or a real one.
//!
//! Every run gets its own fault proxy, its own broker (embedded, or a tansu
//! process of its own) and its own namespace, so tests run in parallel.
//! Backends ([`Backend`]): the embedded broker and built-in proxy; tansu
//! behind the built-in proxy; tansu behind an external proxy process driven
//! over HTTP ([`ExternalProxy`]); and, with `--features testcontainers` and a
//! Docker engine, PostgreSQL, Redis, Redpanda and Toxiproxy containers
//! ([`containers`]).

#![allow(dead_code)]

#[cfg(feature = "testcontainers")]
pub mod containers;
pub mod process;
pub mod scram;
pub mod stage;
pub mod tansu;
pub mod throwaway;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dualwrite::config::{Services, Tuning, Workload};
use dualwrite::infra::Infra;
use dualwrite::progress::Progress;
use dualwrite::runner::{self, Plan, RunResult};
use dualwrite::scenario::Scenario;
use dualwrite::strategy::Strategy;
use tansu::NotStarted;
pub use tansu::Tansu;

/// Which Kafka-API broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// librdkafka's mock cluster, in-process.
    Embedded,
    /// A tansu process of the test's own, behind the built-in proxy.
    Tansu,
    /// A tansu process behind an external fault proxy: a `dualwrite
    /// toxiproxy` process of the test's own, reached over HTTP with
    /// `--toxiproxy` as a real Toxiproxy would be.
    TansuExternalProxy,
    /// PostgreSQL, Redis, Redpanda and Toxiproxy in containers
    /// (`--features testcontainers`, needs a Docker engine).
    #[cfg(feature = "testcontainers")]
    Containers,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Tansu => "tansu",
            Backend::TansuExternalProxy => "tansu+external-proxy",
            #[cfg(feature = "testcontainers")]
            Backend::Containers => "containers",
        }
    }
}

/// A port that was free a moment ago.
///
/// Chosen below Linux's ephemeral range (32768–60999), not by binding port
/// 0: a port from that range, free when chosen, can be taken by any of the
/// dozens of outgoing connections a parallel run opens before the test binds
/// it. Each test process walks its own stretch of 20000–31999, so two ports
/// handed out by one process never repeat (until 12,000 of them).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() * 97 % SPAN;
    loop {
        let port = (FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The tansu binary. The tests must run against a real broker, so a
/// missing tansu is a failure that says how to get it, not a skip.
pub fn tansu_bin() -> PathBuf {
    tansu::installed().expect("tansu (a Kafka-API broker) is not installed: run `make setup-tests`")
}

impl Tansu {
    /// Starts tansu on a free port, advertising `advertise` (the address
    /// clients must come back through: a proxy's kafka link), or itself.
    pub fn start(advertise: Option<SocketAddr>) -> Tansu {
        for _ in 0..5 {
            let port = free_port();
            let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if let Some(tansu) = Tansu::try_start_on(port, advertise.unwrap_or(listen)) {
                return tansu;
            }
        }
        panic!("tansu could not get a free port in 5 tries");
    }

    /// Starts tansu on `port`, advertising `advertised`.
    pub fn start_on(port: u16, advertised: SocketAddr) -> Tansu {
        Tansu::try_start_on(port, advertised).unwrap_or_else(|| panic!("tansu could not listen on port {port}"))
    }

    /// Starts tansu on `port`, advertising `advertised`; `None` if it
    /// exited instead (its port was taken meanwhile).
    pub fn try_start_on(port: u16, advertised: SocketAddr) -> Option<Tansu> {
        match Tansu::start_with(&tansu_bin(), port, advertised) {
            Ok(tansu) => Some(tansu),
            Err(NotStarted::Exited) => None,
            Err(NotStarted::Failed(why)) => panic!("{why}"),
        }
    }
}

/// A fault proxy in a process of its own (`dualwrite toxiproxy`), driven
/// over HTTP like a real Toxiproxy, with dualwrite's four links, and a
/// tansu broker behind its `kafka` link, advertising that link.
pub struct ExternalProxy {
    proxy: Child,
    /// The proxy's API, for `--toxiproxy`.
    pub api: String,
    pub client: dualwrite::proxy::ToxiproxyClient,
    pub kafka_link: SocketAddr,
    pub postgres_link: SocketAddr,
    pub tansu: Tansu,
}

impl ExternalProxy {
    pub async fn start() -> ExternalProxy {
        for _ in 0..5 {
            if let Some(external) = ExternalProxy::try_start().await {
                return external;
            }
        }
        panic!("no free ports for an external proxy and a broker in 5 tries");
    }

    /// One attempt; `None` if a port chosen free was taken meanwhile.
    async fn try_start() -> Option<ExternalProxy> {
        use dualwrite::proxy::{ProxyConfig, ToxiproxyClient};
        let api_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut proxy = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
            .args(["toxiproxy", "--listen", &api_addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start `dualwrite toxiproxy`");
        let api = format!("http://{api_addr}");
        let client = ToxiproxyClient::new(&api).unwrap();
        let started = Instant::now();
        while client.version().await.is_err() {
            if proxy.try_wait().unwrap().is_some() {
                return None;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = proxy.kill();
                panic!("dualwrite toxiproxy did not answer on {api} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Our process, and a fresh one: not a parallel test's proxy that
        // happens to have taken the port.
        if proxy.try_wait().unwrap().is_some() || !client.proxies().await.map(|p| p.is_empty()).unwrap_or(false) {
            let _ = proxy.kill();
            let _ = proxy.wait();
            return None;
        }
        // tansu must advertise the kafka link, so the link is made first,
        // pointing at the port tansu is about to listen on.
        let tansu_port = free_port();
        let infos = client
            .populate(&[
                ProxyConfig::new("postgres", "127.0.0.1:0", "127.0.0.1:5432"),
                ProxyConfig::new("postgres_relay", "127.0.0.1:0", "127.0.0.1:5432"),
                ProxyConfig::new("redis", "127.0.0.1:0", "127.0.0.1:6379"),
                ProxyConfig::new("kafka", "127.0.0.1:0", format!("127.0.0.1:{tansu_port}")),
            ])
            .await
            .unwrap();
        let link = |name: &str| infos.iter().find(|i| i.name == name).unwrap().listen_addr().unwrap();
        let kafka_link = link("kafka");
        let Some(tansu) = tokio::task::block_in_place(|| Tansu::try_start_on(tansu_port, kafka_link)) else {
            let _ = proxy.kill();
            let _ = proxy.wait();
            return None;
        };
        Some(ExternalProxy { proxy, api, client, kafka_link, postgres_link: link("postgres"), tansu })
    }
}

impl Drop for ExternalProxy {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

/// One run's inputs, with the defaults the built-in scenarios were tuned for.
pub struct RunSpec {
    pub strategy: Strategy,
    pub scenario: String,
    pub seed: u64,
    pub duration: Duration,
    pub backend: Backend,
    pub tuning: Tuning,
    pub keep: bool,
}

impl RunSpec {
    pub fn new(strategy: Strategy, scenario: &str, seed: u64, duration: Duration) -> RunSpec {
        RunSpec {
            strategy,
            scenario: scenario.to_string(),
            seed,
            duration,
            backend: Backend::Embedded,
            tuning: Tuning::default(),
            keep: false,
        }
    }

    pub fn on(mut self, backend: Backend) -> RunSpec {
        self.backend = backend;
        self
    }

    pub fn keep(mut self) -> RunSpec {
        self.keep = true;
        self
    }

    /// Runs it: its own proxy, broker and namespace.
    pub async fn run(self) -> RunResult {
        // dualwrite's warnings go to the test's captured output: shown only
        // when the test fails, where they say what the components went through.
        // Not its progress lines: a suite of a hundred runs would bury the
        // failure message under them (RUST_LOG brings them back).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("dualwrite=warn")),
            )
            .with_test_writer()
            .try_init();
        let mut services = Services::local();
        // Whatever the backend started; dropped (stopped) after the run.
        let mut _tansu = None;
        let mut _external = None;
        #[cfg(feature = "testcontainers")]
        let mut _containers = None;
        match self.backend {
            Backend::Embedded => {}
            Backend::Tansu => {
                // The kafka link listens where tansu says clients must come back.
                let link: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
                let tansu = Tansu::start(Some(link));
                services.brokers = Some(tansu.listen.to_string());
                services.kafka_proxy_listen = Some(link);
                _tansu = Some(tansu);
            }
            Backend::TansuExternalProxy => {
                let external = ExternalProxy::start().await;
                services.toxiproxy = Some(external.api.clone());
                _external = Some(external);
            }
            #[cfg(feature = "testcontainers")]
            Backend::Containers => {
                let stack = containers::Stack::start().await;
                services = stack.services();
                _containers = Some(stack);
            }
        }
        let scenario = Arc::new(Scenario::load(&self.scenario).expect("a built-in scenario"));
        let workload = Workload {
            seed: self.seed,
            duration: self.duration,
            readers: Duration::from_millis(100),
            writers: Duration::from_secs(1),
            writer_tasks: 4,
            products: 6,
            initial_stock: 1000,
        };
        let schedule = scenario.schedule(self.seed, self.duration).expect("the scenario expands");
        let plan = Plan {
            strategy: self.strategy,
            scenario: scenario.clone(),
            schedule,
            workload,
            tuning: self.tuning,
            keep: self.keep,
        };
        let infra = Infra::start(&services).await.expect("the services are reachable (`make setup-tests`)");
        let result = runner::run(&infra, &plan, &Progress::hidden(), &dualwrite::signals::Interrupt::new()).await;
        infra.shutdown().await;
        result.unwrap_or_else(|e| {
            panic!(
                "{} under {} on {} failed: {}",
                self.strategy,
                self.scenario,
                self.backend.name(),
                dualwrite::error::chain(&e)
            )
        })
    }
}

/// A readable one-line summary of a run, for assertion messages.
pub fn summary(result: &RunResult) -> String {
    let f = &result.findings;
    format!(
        "{} ({}) verdict={:?} orders={:?} anomalies={:?} reasons={:?} drain={:?} outages={:?}",
        result.strategy,
        result.namespace.run_id,
        f.verdict,
        f.orders,
        f.anomalies.iter().map(|(a, t)| (a.key(), t.count)).collect::<Vec<_>>(),
        f.reasons,
        result.snapshot.drain,
        result.outages.iter().map(|o| o.describe()).collect::<Vec<_>>(),
    )
}

/// `stderr` without the start-up note "note: N earlier runs stopped before
/// cleaning up …" (its first line and the indented lines that continue it).
/// On a server other runs share (the parallel suite, a workshop), that note
/// names *their* leftovers: right to print, but nothing a test of this run
/// should count.
pub fn without_leftovers_note(stderr: &str) -> String {
    let mut rest = Vec::new();
    let mut in_note = false;
    for line in stderr.lines() {
        if line.starts_with("note: ") && line.contains("earlier run") {
            in_note = true;
        } else if !(in_note && line.starts_with("  ")) {
            in_note = false;
            rest.push(line);
        }
    }
    rest.join("\n")
}
