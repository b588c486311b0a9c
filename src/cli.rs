//! The command line, as typed: clap's raw flags.
//!
//! Raw flags live here; [`crate::config`] turns them into the resolved
//! configuration the runner uses (validated, defaults applied, scenario
//! loaded). Nothing below the CLI reads the environment: every flag that names
//! a service has its `env = ...` fallback declared here.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::limits;
use crate::strategy::{OutboxCdcMode, Strategy};

/// Makes the dual-write problem visible.
///
/// Runs one stock-inventory workload through a way of keeping a database, a
/// cache and a Kafka topic in step, while a fault proxy injects latency,
/// resets, outages and crashes; then diffs what the three stores hold and
/// prints what went wrong: lost events, ghost events, duplicates, stale cache
/// entries — with counts, and the story of an example.
///
/// Start with `dualwrite compare`. Exit codes: 0 every verdict as the scenario
/// expects, 1 a verdict differs, 2 dualwrite itself failed (bad input, a
/// service unreachable, a store that died mid-run), 3 the evidence is
/// incomplete (a verdict is unknown, none differs), 130/143/129 stopped by
/// SIGINT/SIGTERM/SIGHUP after healing and cleaning up (a third Ctrl-C quits
/// at once and says what it left).
///
/// Durations are written 100ms, 1s, 2m; each has a range, shown with its
/// flag, checked before anything starts. dualwrite is for runs of seconds to
/// minutes on a laptop: values beyond the ranges break a run rather than
/// enlarge it.
#[derive(Debug, Parser)]
#[command(name = "dualwrite", version, max_term_width = 100)]
pub struct Cli {
    /// Log detail on stderr. By default only dualwrite's own warnings; -v
    /// adds its phases and the libraries' warnings, -vv everything at debug
    /// level. RUST_LOG overrides.
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

    /// Draw the picture of a report saved with --json, as one HTML file.
    ///
    /// Example: dualwrite report --from report.json --html report.html
    Report(ReportArgs),

    /// Check that every service dualwrite needs is reachable and set up.
    ///
    /// Names what is missing and the command that fixes it; lists what runs
    /// that are over left behind (schemas, databases, replication slots,
    /// cache keys), per run. Runs still in progress hold a lease and are
    /// never touched.
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
        #[arg(long, allow_hyphen_values = true, value_parser = parse_seed)]
        seed: Option<u64>,
        /// Expand the schedule for this run duration. Range: 1s to 1h.
        #[arg(long, allow_hyphen_values = true, value_parser = limits::DURATION, default_value = "20s")]
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
    /// warnings (filled in by [`parse`]).
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

    /// The flags as given (filled in by [`parse`]).
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
    /// arriving at a service), up to 16 in flight per task. Range: 1ms to
    /// 1m; a run plans at most 1,000,000 orders.
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
fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("{text:?} is not a seed: use a whole number from 0 to {}", u64::MAX))
}

/// One flag as the user gave it — on the command line or through its
/// environment variable — with its values as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenFlag {
    /// The flag's name without dashes (`writer-tasks`); `None` for the
    /// positional strategy.
    pub long: Option<String>,
    /// Its values as typed; empty for a flag without a value (`--keep`).
    pub values: Vec<String>,
    /// True when it came from the environment (`DATABASE_URL`).
    pub from_env: bool,
}

/// The flags a `run` or `compare` was given, in the order `--help` lists
/// them: what the `reproduce:` line repeats, and what the warnings about
/// flags a strategy does not use look at. Flags left at their default are
/// not in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    pub flags: Vec<GivenFlag>,
}

impl Given {
    /// The flags of `command` that `matches` holds values for from the
    /// command line or the environment.
    fn from_matches(command: &clap::Command, matches: &ArgMatches) -> Given {
        let mut flags = Vec::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let source = matches.value_source(id);
            if !matches!(source, Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
                continue;
            }
            let takes_values = arg.get_action().takes_values();
            let values = if takes_values {
                matches
                    .get_raw(id)
                    .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            flags.push(GivenFlag {
                long: arg.get_long().map(str::to_owned),
                values,
                from_env: source == Some(ValueSource::EnvVariable),
            });
        }
        Given { flags }
    }

    /// Whether `--long` was given (by flag or environment).
    pub fn has(&self, long: &str) -> bool {
        self.flags.iter().any(|f| f.long.as_deref() == Some(long))
    }
}

/// Parses the process's command line; on a mistake prints one line (what is
/// wrong and how to fix it) and exits 2, on `--help` or `--version` prints
/// them and exits 0.
pub fn parse() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    match try_parse(args.clone()) {
        Ok(cli) => cli,
        // `dualwrite` alone: the overview of the commands is the answer.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            std::process::exit(crate::error::EXIT_TOOL);
        }
        Err(e) if e.use_stderr() => {
            eprintln!("{}", one_line(&e, &command_path(&args)));
            std::process::exit(crate::error::EXIT_TOOL);
        }
        // --help and --version; a closed pipe (`dualwrite --help | head`) is
        // not an error.
        Err(e) => {
            let _ = e.print();
            std::process::exit(crate::error::EXIT_OK);
        }
    }
}

/// [`parse`] without exiting: the parsed command line, with what was given
/// recorded for `run` and `compare`.
pub fn try_parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some((name, sub)) = matches.subcommand() {
        let sub_command = command.find_subcommand(name).expect("clap matched this subcommand");
        match &mut cli.command {
            Command::Run(args) => args.given = Given::from_matches(sub_command, sub),
            Command::Compare(args) => args.given = Given::from_matches(sub_command, sub),
            _ => {}
        }
    }
    Ok(cli)
}

/// `dualwrite scenarios show`: the subcommands named in `args`, for
/// "see `… --help`".
pub fn command_path(args: &[OsString]) -> String {
    let mut command = Cli::command();
    let mut path = vec!["dualwrite".to_owned()];
    for arg in args.iter().skip(1).filter_map(|a| a.to_str()) {
        let Some(sub) = command.find_subcommand(arg).cloned() else {
            if arg.starts_with('-') {
                continue;
            }
            break;
        };
        path.push(arg.to_owned());
        command = sub;
    }
    path.join(" ")
}

/// clap's message on one line: `error: …`, the possible values and clap's
/// tip joined to it, and where to read more (`command`'s `--help`). clap
/// spreads a message over several lines with a usage block; a workshop
/// participant (and a test) should find the cause and the fix in the one
/// line that starts `error:`.
pub fn one_line(error: &clap::Error, command: &str) -> String {
    let text = error.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("For more information") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("Usage: ") {
            usage = Some(rest.to_owned());
            continue;
        }
        parts.push(line.to_owned());
    }
    let mut message = parts.join(" ");
    if !message.starts_with("error:") {
        message = format!("error: {message}");
    }
    // `dualwrite compare naive outbox`: strategies are a flag there.
    if let Some(clap::error::ContextValue::String(arg)) = error.get(clap::error::ContextKind::InvalidArg) {
        if command == "dualwrite compare" && Strategy::from_name(arg).is_some() {
            message.push_str(&format!("; to compare some strategies, list them: --strategies {arg},…"));
        }
    }
    if let Some(usage) = usage {
        message.push_str(&format!(" (usage: {usage})"));
    }
    message.push_str(&format!("; see `{command} --help`"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn given_flags_are_recorded_as_typed_and_defaults_are_not() {
        let cli = try_parse(["dualwrite", "run", "outbox", "--seed", "7", "--relays", "3", "--keep"]).unwrap();
        let Command::Run(args) = cli.command else { panic!("run") };
        let given: Vec<(Option<&str>, Vec<&str>)> = args
            .given
            .flags
            .iter()
            .map(|f| (f.long.as_deref(), f.values.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            given,
            vec![
                (None, vec!["outbox"]),
                (Some("seed"), vec!["7"]),
                (Some("keep"), vec![]),
                (Some("relays"), vec!["3"])
            ]
        );
        assert!(args.given.has("relays") && !args.given.has("duration"));
    }

    fn refused(args: &[&str]) -> String {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        one_line(&try_parse(args.clone()).unwrap_err(), &command_path(&args))
    }

    #[test]
    fn clap_errors_are_one_line_with_the_fix() {
        let line = refused(&["dualwrite", "run", "nieve"]);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("error: invalid value 'nieve'"), "{line}");
        assert!(line.contains("possible values: naive, publish-in-tx"), "{line}");
        assert!(line.ends_with("see `dualwrite run --help`"), "{line}");

        let line = refused(&["dualwrite", "run", "naive", "--duration", "1ns"]);
        assert!(line.starts_with("error: --duration 1ns is out of range: use from 1s to 1h"), "{line}");

        let line = refused(&["dualwrite", "run"]);
        assert!(line.contains("<STRATEGY>") && line.contains("usage: dualwrite run"), "{line}");

        let line = refused(&["dualwrite", "-v", "scenarios", "show", "calm", "--seed", "x"]);
        assert!(line.ends_with("see `dualwrite scenarios show --help`"), "{line}");
    }

    #[test]
    fn help_shows_every_range_as_the_limits_define_it() {
        let command = Cli::command();
        let run = command.find_subcommand("run").unwrap();
        let help_of = |flag: &str| -> String {
            let arg = run.get_arguments().find(|a| a.get_long() == flag.strip_prefix("--")).unwrap();
            let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
            help.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        for (flag, range) in limits::DURATIONS {
            let text = format!("Range: {} to {}", limits::show(range.min), limits::show(range.max));
            assert!(help_of(flag).contains(&text), "{flag}: {text:?} not in {:?}", help_of(flag));
        }
        for (flag, range) in limits::COUNTS {
            let text = format!("Range: {} to {}", range.min, range.max);
            assert!(help_of(flag).contains(&text), "{flag}: {text:?} not in {:?}", help_of(flag));
        }
    }

    #[test]
    fn help_hides_the_values_of_secret_environment_variables() {
        let mut command = Cli::command();
        let run = command.find_subcommand_mut("run").unwrap();
        for arg in run.get_arguments() {
            if matches!(arg.get_id().as_str(), "database_url" | "redis_url" | "toxiproxy") {
                assert!(arg.is_hide_env_values_set(), "{}", arg.get_id());
            }
        }
    }
}
