//! What the proxy costs a database: `pgbench -S` straight to PostgreSQL and
//! through the built-in proxy (no toxic), one run each, interleaved, with
//! the ratios printed.
//!
//! ```text
//! cargo bench -p faultproxy --bench throughput               # 10 s runs, 2 rounds
//! cargo bench -p faultproxy --bench throughput -- --quick    # 1 s runs (a smoke test)
//! cargo bench -p faultproxy --bench throughput -- --seconds 20 --rounds 3 --clients 1,4,8
//! cargo bench -p faultproxy --bench throughput -- --socat    # socat beside, as a reference
//! cargo bench -p faultproxy --bench throughput -- --toxiproxy http://127.0.0.1:18480   # a real one beside
//! ```
//!
//! `--socat` also runs every measurement through `socat` (a process per
//! connection copying with plain blocking system calls), which shows what
//! any user-space proxy costs on the machine at the time: on a busy machine
//! every extra hop waits for a CPU, and the ratios fall for every proxy.
//!
//! `pgbench -S` runs one `SELECT` per transaction, one round trip each, so
//! at one client `1/tps` is the round trip, and the difference between the
//! proxied and the direct one is what the proxy adds to it. The proxy's CPU
//! time per transaction comes from this process's own counters (the proxy is
//! the only thing it runs meanwhile).
//!
//! Needs `pgbench`, `psql` and a PostgreSQL that lets the user create a
//! database: `PGHOST` (default 127.0.0.1), `PGPORT` (5432), `PGUSER`
//! (postgres). The database, `faultproxy_bench_<pid>`, is created with
//! `pgbench -i` and dropped at the end. Without `pgbench` the benchmark says
//! so and exits 0 (Debian: `apt-get install postgresql-contrib`).

use std::process::{Command, ExitCode};
use std::time::Duration;

use faultproxy::{ProxyConfig, ProxyServer, ToxiproxyClient};

/// The targets of issue 13 item 4, printed beside the figures.
const TARGET_RATIO_ONE: f64 = 0.9;
const TARGET_RATIO_MANY: f64 = 0.6;
const TARGET_ADDED_US: f64 = 50.0;

struct Args {
    seconds: u32,
    rounds: u32,
    clients: Vec<u32>,
    socat: bool,
    /// Another Toxiproxy (a real one) to measure beside.
    toxiproxy: Option<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args { seconds: 10, rounds: 2, clients: vec![1, 4], socat: false, toxiproxy: None };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--quick" => (args.seconds, args.rounds) = (1, 1),
                "--socat" => args.socat = true,
                "--toxiproxy" => args.toxiproxy = Some(value("--toxiproxy")?),
                "--seconds" => args.seconds = value("--seconds")?.parse().map_err(|e| format!("--seconds: {e}"))?,
                "--rounds" => args.rounds = value("--rounds")?.parse().map_err(|e| format!("--rounds: {e}"))?,
                "--clients" => {
                    args.clients = value("--clients")?
                        .split(',')
                        .map(|c| c.trim().parse().map_err(|e| format!("--clients: {e}")))
                        .collect::<Result<_, _>>()?
                }
                // `cargo bench` passes `--bench` to every bench target.
                "--bench" => {}
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (try --quick, --seconds N, --rounds N, --clients 1,4, --socat, --toxiproxy URL)"
                    ))
                }
            }
        }
        if args.seconds == 0 || args.rounds == 0 || args.clients.is_empty() || args.clients.contains(&0) {
            return Err("--seconds, --rounds and every --clients value must be at least 1".into());
        }
        Ok(args)
    }
}

/// Where PostgreSQL is, as libpq's environment says.
struct Pg {
    host: String,
    port: u16,
    user: String,
}

impl Pg {
    fn from_env() -> Result<Pg, String> {
        let host = std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into());
        let port = match std::env::var("PGPORT") {
            Ok(p) => p.parse().map_err(|e| format!("PGPORT={p:?}: {e}"))?,
            Err(_) => 5432,
        };
        let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
        Ok(Pg { host, port, user })
    }

    fn psql(&self, database: &str, sql: &str) -> Result<(), String> {
        run(Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &self.host, "-p", &self.port.to_string()])
            .args(["-U", &self.user, "-d", database, "-c", sql]))
        .map(|_| ())
    }
}

/// Runs a command; its stdout, or an error naming it and its stderr.
fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if !output.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The benchmark's own database; dropped when this goes.
struct Database<'a> {
    pg: &'a Pg,
    name: String,
}

impl<'a> Database<'a> {
    fn create(pg: &'a Pg) -> Result<Database<'a>, String> {
        let name = format!("faultproxy_bench_{}", std::process::id());
        pg.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        let db = Database { pg, name };
        run(Command::new("pgbench")
            .args(["-i", "-q", "-s", "1", "-h", &pg.host, "-p", &pg.port.to_string(), "-U", &pg.user])
            .arg(&db.name))?;
        Ok(db)
    }
}

impl Drop for Database<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {}", self.name)) {
            eprintln!("warning: could not drop the benchmark's database {}: {e}", self.name);
        }
    }
}

/// One `pgbench -S` run: transactions per second.
fn pgbench(pg: &Pg, port: u16, database: &str, clients: u32, seconds: u32) -> Result<f64, String> {
    let out = run(Command::new("pgbench")
        .args(["-S", "-n", "-M", "simple", "-h", &pg.host, "-p", &port.to_string(), "-U", &pg.user])
        .args(["-c", &clients.to_string(), "-j", &clients.to_string(), "-T", &seconds.to_string()])
        .arg(database))?;
    // "tps = 9450.123456 (without initial connection time)"
    out.lines()
        .find_map(|line| line.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no \"tps = \" line in pgbench's output:\n{out}"))
}

/// Creates a proxy to `upstream` on the Toxiproxy at `url`; its port.
async fn proxy_port(url: &str, name: &str, upstream: &str) -> Result<u16, String> {
    let client = ToxiproxyClient::new(url).map_err(|e| e.to_string())?;
    let info =
        client.create_proxy(&ProxyConfig::new(name, "127.0.0.1:0", upstream)).await.map_err(|e| e.to_string())?;
    info.listen_addr().map(|a| a.port()).ok_or_else(|| format!("the proxy at {url} reported no address"))
}

/// This process's user + system CPU time so far.
fn cpu_time() -> Duration {
    // /proc/self/stat fields 14 and 15: utime and stime, in clock ticks
    // (USER_HZ, 100 on Linux). The name in field 2 may hold spaces, so count
    // from the closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Where a run of pgbench connects.
#[derive(Clone, Copy)]
enum Target {
    Direct,
    Proxied,
    Socat,
    Other,
}

struct Row {
    clients: u32,
    direct: Vec<f64>,
    proxied: Vec<f64>,
    socat: Vec<f64>,
    other: Vec<f64>,
    cpu_per_tx_us: f64,
}

/// `socat` forwarding a loopback port to PostgreSQL; killed when dropped.
struct Socat {
    child: std::process::Child,
    port: u16,
}

impl Socat {
    fn start(pg: &Pg) -> Result<Socat, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for socat: {e}"))?
            .port();
        let child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("TCP:{}:{},nodelay", pg.host, pg.port))
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start socat: {e}"))?;
        // Ready once it accepts.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Socat { child, port });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("socat did not start listening".into())
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("throughput: {e}");
            return ExitCode::from(2);
        }
    };
    if Command::new("pgbench").arg("--version").output().is_err() {
        println!("throughput: pgbench is not installed, so the proxy's cost was not measured (Debian: apt-get install postgresql-contrib)");
        return ExitCode::SUCCESS;
    }
    match measure(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("throughput: {e}");
            ExitCode::from(2)
        }
    }
}

fn measure(args: &Args) -> Result<(), String> {
    let pg = Pg::from_env()?;
    let db = Database::create(&pg)?;
    // The proxy runs on a runtime of its own, as it does inside a program:
    // a multi-threaded one with a worker per core.
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let upstream = format!("{}:{}", pg.host, pg.port);
    let (server, port) = runtime.block_on(async {
        let server = ProxyServer::start("127.0.0.1:0".parse().expect("an address")).await.map_err(|e| e.to_string())?;
        let port = proxy_port(&server.url(), "postgres", &upstream).await?;
        Ok::<_, String>((server, port))
    })?;
    let name = format!("faultproxy_bench_{}", std::process::id());
    let other = match &args.toxiproxy {
        Some(url) => Some(runtime.block_on(proxy_port(url, &name, &upstream))?),
        None => None,
    };

    let socat = if args.socat { Some(Socat::start(&pg)?) } else { None };
    let mut rows = Vec::new();
    for &clients in &args.clients {
        let mut row = Row {
            clients,
            direct: Vec::new(),
            proxied: Vec::new(),
            socat: Vec::new(),
            other: Vec::new(),
            cpu_per_tx_us: 0.0,
        };
        let (mut cpu, mut transactions) = (Duration::ZERO, 0.0);
        // Interleaved, and in a rotating order, so that a change in the
        // machine's load, or a run's place after another, hits each target
        // alike.
        let mut targets = vec![Target::Direct, Target::Proxied];
        if socat.is_some() {
            targets.push(Target::Socat);
        }
        if other.is_some() {
            targets.push(Target::Other);
        }
        for round in 0..args.rounds as usize {
            for i in 0..targets.len() {
                match targets[(round + i) % targets.len()] {
                    Target::Direct => row.direct.push(pgbench(&pg, pg.port, &db.name, clients, args.seconds)?),
                    Target::Proxied => {
                        let before = cpu_time();
                        let tps = pgbench(&pg, port, &db.name, clients, args.seconds)?;
                        cpu += cpu_time().saturating_sub(before);
                        transactions += tps * f64::from(args.seconds);
                        row.proxied.push(tps);
                    }
                    Target::Socat => {
                        let port = socat.as_ref().map_or(0, |s| s.port);
                        row.socat.push(pgbench(&pg, port, &db.name, clients, args.seconds)?);
                    }
                    Target::Other => {
                        let port = other.unwrap_or(0);
                        row.other.push(pgbench(&pg, port, &db.name, clients, args.seconds)?);
                    }
                }
            }
        }
        row.cpu_per_tx_us = cpu.as_secs_f64() * 1e6 / transactions.max(1.0);
        rows.push(row);
    }
    runtime.block_on(server.shutdown());
    if let Some(url) = &args.toxiproxy {
        if let Ok(client) = ToxiproxyClient::new(url) {
            let _ = runtime.block_on(client.delete_proxy(&name));
        }
    }
    drop(socat);
    drop(db);

    println!(
        "faultproxy throughput: pgbench -S -M simple, {} s per run, {} round(s), PostgreSQL at {}:{}, {} CPUs",
        args.seconds,
        args.rounds,
        pg.host,
        pg.port,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>7}  {:>10}  {:>11}  {:>14}  {:>20}  {:>16}",
        "clients", "direct tps", "proxied tps", "proxied/direct", "added per round trip", "proxy CPU per tx"
    );
    for row in &rows {
        let (direct, proxied) = (mean(&row.direct), mean(&row.proxied));
        let ratio = proxied / direct;
        let target = if row.clients == 1 { TARGET_RATIO_ONE } else { TARGET_RATIO_MANY };
        // With c clients each has one query in flight: c / tps is the round trip.
        let added_us = f64::from(row.clients) * 1e6 * (1.0 / proxied - 1.0 / direct);
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        let added = if row.clients == 1 {
            format!("{added_us:.1} µs (≤ {TARGET_ADDED_US} µs: {})", verdict(added_us <= TARGET_ADDED_US))
        } else {
            format!("{added_us:.1} µs")
        };
        println!(
            "{:>7}  {:>10.0}  {:>11.0}  {:>5.2} (≥ {target}: {})  {added:>20}  {:>13.1} µs",
            row.clients,
            direct,
            proxied,
            ratio,
            verdict(ratio >= target),
            row.cpu_per_tx_us
        );
    }
    let spread = |xs: &[f64]| {
        let (lo, hi) = xs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.0}–{hi:.0}")
    };
    for row in &rows {
        println!(
            "  {} client(s): direct runs {} tps, proxied runs {} tps",
            row.clients,
            spread(&row.direct),
            spread(&row.proxied)
        );
        if !row.other.is_empty() {
            println!(
                "  {} client(s) through {} (reference): {:.0} tps, {:.2} of direct, runs {} tps",
                row.clients,
                args.toxiproxy.as_deref().unwrap_or_default(),
                mean(&row.other),
                mean(&row.other) / mean(&row.direct),
                spread(&row.other)
            );
        }
        if !row.socat.is_empty() {
            println!(
                "  {} client(s) through socat (reference): {:.0} tps, {:.2} of direct, runs {} tps",
                row.clients,
                mean(&row.socat),
                mean(&row.socat) / mean(&row.direct),
                spread(&row.socat)
            );
        }
    }
    Ok(())
}
