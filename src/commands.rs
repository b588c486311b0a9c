//! The subcommands: turn flags into configuration, run, print, and decide
//! the exit code. Results go to `out` (stdout); diagnostics and progress go
//! to stderr.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use crate::cli::{Command, CompareArgs, ReportArgs, RunArgs, ScenariosCommand};
use crate::config::{Outputs, Services, Tuning, Workload};
use crate::error::{Error, Result, EXIT_OK, EXIT_UNEXPECTED, EXIT_UNKNOWN};
use crate::files::OutputFile;
use crate::infra::Infra;
use crate::names::Strategy;
use crate::progress::Progress;
use crate::reconcile::Verdict;
use crate::report::{Location, Report, RunReport};
use crate::runner::{self, Plan};
use crate::scenario::schedule::Schedule;
use crate::scenario::Scenario;
use crate::signals::Interrupt;

/// Runs a subcommand; returns the process exit code.
pub async fn dispatch(command: Command, out: &mut impl Write) -> Result<i32> {
    match command {
        Command::Run(args) => run(args, out).await,
        Command::Compare(args) => compare(args, out).await,
        Command::Scenarios { command } => scenarios(command, out),
        Command::Report(args) => report(args),
        Command::Doctor(args) => crate::doctor::doctor(&args, out).await,
        Command::Toxiproxy(args) => {
            // The file is checked here as any input is (a regular file of at
            // most 1 MiB) before the proxy reads it.
            if let Some(path) = &args.config {
                crate::files::read_input(path)
                    .map_err(|e| Error::input(format!("cannot read --config {}", path.display()), e))?;
            }
            let seed = args.seed.unwrap_or_else(|| rand::random::<u64>() % 1_000_000);
            let bind =
                if args.listen_any { crate::proxy::BindPolicy::Any } else { crate::proxy::BindPolicy::LoopbackOnly };
            eprintln!(
                "dualwrite toxiproxy · API on {} · seed {seed} (--seed {seed} repeats its draws)",
                bind.apply_addr(args.listen)
            );
            let server = crate::proxy::ServerOptions { api_listen: args.listen, bind, seed };
            crate::proxy::serve(crate::proxy::ServeOptions { server, config: args.config }).await?;
            Ok(EXIT_OK)
        }
    }
}

/// `dualwrite run <strategy>`
async fn run(args: RunArgs, out: &mut impl Write) -> Result<i32> {
    let strategies = [args.strategy];
    let inputs = Inputs::resolve("run", &args.scenario, args.duration, &args.workload, &args.tuning)?;
    let services = Services::from_args(&args.services)?;
    let outputs = Outputs::from_args(&args.output)?;
    let reproduce = inputs.reproduce(&args.given);
    warn_unused(&args.given, &strategies);
    execute(&strategies, &services, inputs, &outputs, reproduce, out).await
}

/// `dualwrite compare`
async fn compare(args: CompareArgs, out: &mut impl Write) -> Result<i32> {
    let mut strategies = if args.strategies.is_empty() { Strategy::ALL.to_vec() } else { args.strategies.clone() };
    // Each strategy once, in the order given (`naive,outbox,naive` runs two).
    let mut seen = std::collections::HashSet::new();
    strategies.retain(|s| seen.insert(*s));
    let inputs = Inputs::resolve("compare", &args.scenario, args.duration, &args.workload, &args.tuning)?;
    let services = Services::from_args(&args.services)?;
    let outputs = Outputs::from_args(&args.output)?;
    let reproduce = inputs.reproduce(&args.given);
    warn_unused(&args.given, &strategies);
    execute(&strategies, &services, inputs, &outputs, reproduce, out).await
}

/// One line on stderr for each flag the chosen strategies do not use.
fn warn_unused(given: &crate::cli::Given, strategies: &[Strategy]) {
    for warning in crate::config::reproduce::unused_flags(given, strategies) {
        eprintln!("warning: {warning}");
    }
}

/// The resolved inputs shared by `run` and `compare`, all checked before
/// any service is reached.
struct Inputs {
    command: &'static str,
    scenario: Arc<Scenario>,
    /// The scenario expanded for the seed and duration: the same for every
    /// strategy.
    schedule: Schedule,
    workload: Workload,
    tuning: Tuning,
}

impl Inputs {
    fn resolve(
        command: &'static str,
        scenario: &str,
        duration: std::time::Duration,
        workload: &crate::cli::WorkloadArgs,
        tuning: &crate::cli::TuningArgs,
    ) -> Result<Inputs> {
        let scenario = Arc::new(Scenario::load(scenario)?);
        let workload = Workload::from_args(workload, duration)?;
        // The embedded broker's capacity is checked in `execute`, which
        // knows whether that broker is the one in use.
        let schedule = scenario.schedule(workload.seed, workload.duration)?;
        Ok(Inputs { command, scenario, schedule, workload, tuning: Tuning::from_args(tuning)? })
    }

    /// The command that runs this run again (see `config::reproduce`).
    fn reproduce(&self, given: &crate::cli::Given) -> String {
        crate::config::reproduce::reproduce_line(
            self.command,
            given,
            &self.scenario,
            self.workload.seed,
            self.workload.duration,
        )
    }
}

/// Runs `strategies` one after another on the same services, each in its own
/// namespace, under the same seed and fault schedule; prints the report.
async fn execute(
    strategies: &[Strategy],
    services: &Services,
    inputs: Inputs,
    outputs: &Outputs,
    reproduce: String,
    out: &mut impl Write,
) -> Result<i32> {
    let Inputs { command, scenario, schedule, workload, tuning } = inputs;
    // Before anything starts: a load the embedded broker would outgrow.
    if services.brokers.is_none() && services.toxiproxy.is_none() {
        embedded_capacity(&workload, schedule.knobs.event_key)?;
    }
    // Redis is reached before anything is started, when a strategy needs it.
    if strategies.iter().any(|s| s.caches()) {
        crate::infra::check_redis(&services.redis_url).await?;
    }
    // From here on SIGINT, SIGTERM and SIGHUP stop the run cleanly.
    let interrupt = Interrupt::listen();
    let infra = Infra::start(services).await?;
    // Every service answered: the run begins. The seed first, so that even
    // a run that fails from here on can be reproduced: on a terminal above
    // the live view; otherwise stderr stays quiet unless something fails,
    // and then it is printed with the error.
    let who = match strategies {
        [one] if command == "run" => format!("run {one}"),
        _ => command.to_string(),
    };
    let heading = format!(
        "dualwrite {who} · scenario {} · seed {} · {:.1} s · {} fault windows, {} crashes",
        scenario.name,
        workload.seed,
        workload.duration.as_secs_f64(),
        schedule.windows.len(),
        schedule.crashes.len()
    );
    let terminal = std::io::stderr().is_terminal();
    let columns = console::Term::stderr().size_checked().map_or(80, |(_, w)| usize::from(w));
    let heading = crate::layout::wrap(&heading, columns.saturating_sub(1), "", "  ").join("\n");
    if terminal {
        eprintln!("{heading}");
    }
    // What runs killed earlier left behind (nothing can run at SIGKILL):
    // named now, with the command that removes it.
    let stores = crate::leftovers::Stores {
        db: &infra.db,
        redis_url: Some(&services.redis_url),
        // Listing a real broker's topics takes a metadata round trip; doctor does it.
        brokers: None,
    };
    if let Some(notice) = crate::leftovers::survey(stores).await.notice() {
        crate::signals::say(&crate::layout::wrap(&notice, columns.saturating_sub(1), "", "  ").join("\n"));
    }
    let progress = Progress::stderr();
    let mut runs = Vec::new();
    let mut histories: Vec<(Strategy, crate::history::Events)> = Vec::new();
    let mut failure = None;
    for (i, strategy) in strategies.iter().enumerate() {
        progress.set_position(i, strategies.len());
        // Each strategy's connections meet the same proxy draws (jitter,
        // slicer cuts) for the same seed, whichever ran before it.
        infra.seed_proxy(workload.seed).await;
        let plan = Plan {
            strategy: *strategy,
            scenario: scenario.clone(),
            schedule: schedule.clone(),
            workload: workload.clone(),
            tuning: tuning.clone(),
            keep: outputs.keep,
        };
        match runner::run(&infra, &plan, &progress, &interrupt).await {
            Ok(result) => {
                // Written after every strategy, so that a later failure
                // keeps the histories of the runs before it.
                if let Some(file) = &outputs.history {
                    histories.push((*strategy, result.history.clone()));
                    if let Err(e) = write_history(&histories, file) {
                        failure = Some(e);
                        break;
                    }
                }
                let location = Location {
                    database_url: &services.database_url,
                    database: infra.db.get_database().unwrap_or("postgres"),
                    brokers: &infra.kafka,
                    kept: outputs.keep,
                };
                runs.push(RunReport::new(&result, &schedule, location));
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    progress.finish();
    let description = infra.description.clone();
    infra.shutdown().await;
    if let Some(e) = failure {
        if !terminal {
            crate::signals::say(&heading);
        }
        return Err(e);
    }

    let report = Report {
        seed: workload.seed,
        scenario: scenario.name.clone(),
        duration_ms: workload.duration.as_millis() as u64,
        scenario_source: scenario.source.clone(),
        reproduce,
        schedule,
        services: description,
        runs,
    };
    if let Some(file) = &outputs.json {
        file.write(|mut out| report.write_json(&mut out))
            .map_err(|e| Error::input(format!("cannot write --json {}", file.path().display()), e))?;
    }
    crate::report::text::write_text(&report, command, text_width(outputs.width), out)
        .map_err(|e| Error::Write { path: "standard output".into(), source: e })?;
    if let Some(file) = &outputs.html {
        let picture = crate::report::html::Picture::of(&report)
            .map_err(|e| Error::Picture { what: "this run".into(), source: e.into() })?;
        write_html(&picture, file)?;
        writeln!(out, "\npicture: {}", file.path().display())
            .map_err(|e| Error::Write { path: "standard output".into(), source: e })?;
    }
    Ok(exit_code(report.runs.iter().map(|r| (r.verdict, r.as_expected))))
}

/// The width to lay the text report out for: `--width`, else the
/// terminal's, else 80 (a file, a pipe, a CI log).
fn text_width(flag: Option<u16>) -> usize {
    if let Some(width) = flag {
        return usize::from(width);
    }
    if std::io::stdout().is_terminal() {
        if let Some((_, columns)) = console::Term::stdout().size_checked() {
            return usize::from(columns);
        }
    }
    80
}

/// `dualwrite report --from r.json --html r.html`: the picture of a saved report.
fn report(args: ReportArgs) -> Result<i32> {
    let path = args.from.display().to_string();
    let failed = |source: crate::error::BoxError| Error::Picture { what: path.clone(), source };
    let html = OutputFile::check(&args.html)
        .map_err(|e| Error::input(format!("cannot write --html {}", args.html.display()), e))?;
    // A report of a long run at full rate is tens of megabytes; more than
    // this is not one dualwrite wrote.
    const LIMIT: u64 = 1 << 30;
    let file = std::fs::File::open(&args.from).map_err(|e| failed(e.into()))?;
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, LIMIT + 1), &mut text).map_err(|e| failed(e.into()))?;
    if text.len() as u64 > LIMIT {
        return Err(failed(format!("the file is larger than {} MiB", LIMIT >> 20).into()));
    }
    let json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| failed(e.into()))?;
    let picture = crate::report::html::Picture::from_json(json).map_err(|e| failed(e.into()))?;
    write_html(&picture, &html)?;
    Ok(EXIT_OK)
}

/// Writes the picture atomically (see [`OutputFile::write`]).
fn write_html(picture: &crate::report::html::Picture, file: &OutputFile) -> Result<()> {
    file.write(|out| out.write_all(crate::report::html::render(picture).as_bytes()))
        .map_err(|e| Error::input(format!("cannot write --html {}", file.path().display()), e))
}

/// The exit code of a finished `run` or `compare`, from each run's verdict
/// and whether it is what the scenario expects (the table in `error.rs`):
/// 1 if any definite verdict differs from its expectation; otherwise 3 if
/// any verdict is unknown; otherwise 0.
pub fn exit_code(runs: impl IntoIterator<Item = (Verdict, bool)>) -> i32 {
    let (mut differs, mut unknown) = (false, false);
    for (verdict, as_expected) in runs {
        match verdict {
            Verdict::Unknown => unknown = true,
            Verdict::Consistent | Verdict::Inconsistent => differs |= !as_expected,
        }
    }
    if differs {
        EXIT_UNEXPECTED
    } else if unknown {
        EXIT_UNKNOWN
    } else {
        EXIT_OK
    }
}

/// Refuses a workload the embedded broker could not hold whole: it deletes a
/// partition's oldest records beyond its capacity, and the run would report
/// them as missing evidence instead of a verdict.
fn embedded_capacity(workload: &Workload, key: crate::event::EventKey) -> Result<()> {
    use crate::kafka::embedded::{capacity_check, longest_duration, Load};
    use crate::kafka::topic::PARTITIONS;
    let of = |duration| {
        Load::of_beats(workload.writer_tasks, workload.writers, duration, workload.products, workload.initial_stock)
            .keyed_by(key)
    };
    capacity_check(&of(workload.duration), PARTITIONS).map_err(|mut e| {
        e.longest = longest_duration(PARTITIONS, of);
        Error::from(e)
    })
}

/// One line of `--history`: an event of the history, and whose it is.
#[derive(serde::Serialize)]
struct HistoryLine<'a> {
    strategy: Strategy,
    #[serde(flatten)]
    event: &'a crate::history::Event,
}

/// Writes the histories as JSON lines, one event per line, each naming its
/// strategy, atomically.
fn write_history(histories: &[(Strategy, crate::history::Events)], file: &OutputFile) -> Result<()> {
    file.write(|out| {
        for (strategy, events) in histories {
            for event in events.iter() {
                serde_json::to_writer(&mut *out, &HistoryLine { strategy: *strategy, event: &event })?;
                writeln!(out)?;
            }
        }
        Ok(())
    })
    .map_err(|e| Error::input(format!("cannot write --history {}", file.path().display()), e))
}

/// `dualwrite scenarios [list | show NAME | check FILE]`
fn scenarios(command: Option<ScenariosCommand>, out: &mut impl Write) -> Result<i32> {
    let io = |e| Error::Write { path: "standard output".into(), source: e };
    match command.unwrap_or(ScenariosCommand::List) {
        ScenariosCommand::List => crate::scenario::write_list(out).map_err(io)?,
        ScenariosCommand::Show { name, seed, duration } => {
            let scenario = Scenario::load(&name)?;
            crate::scenario::write_show(&scenario, out).map_err(io)?;
            if let Some(seed) = seed {
                let schedule = scenario.schedule(seed, duration)?;
                writeln!(out, "\nschedule for seed {seed}, {:.1} s:", duration.as_secs_f64()).map_err(io)?;
                crate::scenario::write_schedule(&schedule, out).map_err(io)?;
            }
        }
        ScenariosCommand::Check { file } => {
            let scenario = Scenario::load_file(&file)?;
            // Expanding catches what only shows once percentages resolve.
            for seconds in [1, 10, 60] {
                scenario.schedule(1, std::time::Duration::from_secs(seconds))?;
            }
            writeln!(out, "{}: ok ({})", file.display(), scenario.description.lines().next().unwrap_or(""))
                .map_err(io)?;
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_combine_definite_findings_before_missing_evidence() {
        use Verdict::*;
        assert_eq!(exit_code([(Consistent, true), (Inconsistent, true)]), EXIT_OK);
        assert_eq!(exit_code([(Consistent, false)]), EXIT_UNEXPECTED);
        // Unknown is never "a verdict differs", even where one was expected…
        assert_eq!(exit_code([(Unknown, false)]), EXIT_UNKNOWN);
        // …nor "as expected" where the scenario accepts any verdict.
        assert_eq!(exit_code([(Consistent, true), (Unknown, true)]), EXIT_UNKNOWN);
        // A verdict that differs outranks missing evidence beside it.
        assert_eq!(exit_code([(Unknown, false), (Inconsistent, false)]), EXIT_UNEXPECTED);
        assert_eq!(exit_code([]), EXIT_OK);
    }
}
