//! The command line, as typed: clap's raw flags.
//!
//! Raw flags live here; [`crate::config`] turns them into the resolved
//! configuration the runner uses (validated, defaults applied, scenario
//! loaded). Nothing below the CLI reads the environment: every flag that names
//! a service has its `env = ...` fallback declared here.
//!
//! The flags themselves are in `args.rs`, their ranges in `limits.rs`, and
//! what was given (for the `reproduce:` line) in `given.rs`; this file is the
//! top of the command line and how its mistakes are told.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::names::Strategy;

mod args;
mod given;
pub mod limits;

pub use args::*;
pub use given::{Given, GivenFlag};

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
        #[arg(long, allow_hyphen_values = true, value_parser = args::parse_seed)]
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
