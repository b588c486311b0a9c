//! The subcommands: turn flags into configuration, run, print, and decide
//! the exit code. Results go to `out` (stdout); diagnostics and progress go
//! to stderr.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cli::{Command, CompareArgs, OutputArgs, RunArgs, ScenariosCommand};
use crate::config::{Services, Tuning, Workload};
use crate::error::{Error, Result, EXIT_OK, EXIT_UNEXPECTED};
use crate::infra::Infra;
use crate::progress::Progress;
use crate::report::{Location, Report, RunReport};
use crate::runner::{self, Plan};
use crate::scenario::Scenario;
use crate::strategy::Strategy;

/// Runs a subcommand; returns the process exit code.
pub async fn dispatch(command: Command, out: &mut impl Write) -> Result<i32> {
    match command {
        Command::Run(args) => run(args, out).await,
        Command::Compare(args) => compare(args, out).await,
        Command::Scenarios { command } => scenarios(command, out),
        Command::Doctor(args) => crate::doctor::doctor(&args, out).await,
        Command::Toxiproxy(args) => {
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

/// Ctrl-C, as a token the runner watches. A second Ctrl-C exits at once.
fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: healing the fault proxy and cleaning up (Ctrl-C again to quit at once)");
            child.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("quitting without cleanup; `curl -X POST <toxiproxy>/reset` heals a real Toxiproxy");
                std::process::exit(crate::error::EXIT_INTERRUPTED);
            }
        }
    });
    token
}

/// `dualwrite run <strategy>`
async fn run(args: RunArgs, out: &mut impl Write) -> Result<i32> {
    let services = Services::from_args(&args.services)?;
    let inputs = Inputs::resolve(&args.scenario, &args.workload, args.duration, &args.tuning)?;
    execute(&[args.strategy], &services, inputs, &args.output, "run", out).await
}

/// `dualwrite compare`
async fn compare(args: CompareArgs, out: &mut impl Write) -> Result<i32> {
    let services = Services::from_args(&args.services)?;
    let inputs = Inputs::resolve(&args.scenario, &args.workload, args.duration, &args.tuning)?;
    let mut strategies = if args.strategies.is_empty() { Strategy::ALL.to_vec() } else { args.strategies.clone() };
    strategies.dedup();
    execute(&strategies, &services, inputs, &args.output, "compare", out).await
}

/// The resolved inputs shared by `run` and `compare`.
struct Inputs {
    scenario: Arc<Scenario>,
    workload: Workload,
    tuning: Tuning,
}

impl Inputs {
    fn resolve(
        scenario: &str,
        workload: &crate::cli::WorkloadArgs,
        duration: std::time::Duration,
        tuning: &crate::cli::TuningArgs,
    ) -> Result<Inputs> {
        Ok(Inputs {
            scenario: Arc::new(Scenario::load(scenario)?),
            workload: Workload::from_args(workload, duration)?,
            tuning: Tuning::from_args(tuning)?,
        })
    }
}

/// Runs `strategies` one after another on the same services, each in its own
/// namespace, under the same seed and fault schedule; prints the report.
async fn execute(
    strategies: &[Strategy],
    services: &Services,
    inputs: Inputs,
    output: &OutputArgs,
    command: &str,
    out: &mut impl Write,
) -> Result<i32> {
    let Inputs { scenario, workload, tuning } = inputs;
    let schedule = scenario.schedule(workload.seed, workload.duration)?;
    // The seed first, so that even a run that fails can be reproduced.
    eprintln!(
        "dualwrite {command} · scenario {} · seed {} · {:.1} s · {} fault windows, {} crashes",
        scenario.name,
        workload.seed,
        workload.duration.as_secs_f64(),
        schedule.windows.len(),
        schedule.crashes.len()
    );
    let interrupt = interrupt_token();
    let infra = Infra::start(services).await?;
    let progress = Progress::stderr();
    let mut runs = Vec::new();
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
            keep: output.keep,
        };
        match runner::run(&infra, &plan, &progress, &interrupt).await {
            Ok(result) => {
                if let Some(path) = &output.history {
                    write_history(&result.history, path)?;
                }
                let location = Location {
                    database_url: &services.database_url,
                    database: infra.db.get_database().unwrap_or("postgres"),
                    brokers: &infra.kafka,
                    kept: output.keep,
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
        return Err(e);
    }

    let report = Report {
        seed: workload.seed,
        scenario: scenario.name.clone(),
        duration_ms: workload.duration.as_millis() as u64,
        scenario_source: scenario.source.clone(),
        schedule,
        services: description,
        runs,
    };
    if let Some(path) = &output.json {
        write_json(&report, path)?;
    }
    let width = if std::io::stdout().is_terminal() { comfy_table::Table::new().width().or(Some(120)) } else { None };
    crate::report::table::write_text(&report, command, width, out)
        .map_err(|e| Error::Write { path: "standard output".into(), source: e })?;
    Ok(if report.all_as_expected() { EXIT_OK } else { EXIT_UNEXPECTED })
}

/// Writes the JSON report atomically (a temporary file, then a rename), so
/// a reader never sees half a report.
fn write_json(report: &Report, path: &std::path::Path) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        report.write_json(&mut file)?;
        file.flush()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| Error::Write { path: path.display().to_string(), source: e })
}

/// Writes the history as JSON lines, one event per line.
fn write_history(events: &[crate::history::Event], path: &std::path::Path) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for event in events {
            serde_json::to_writer(&mut file, event)?;
            writeln!(file)?;
        }
        file.flush()
    };
    write().map_err(|e| Error::Write { path: path.display().to_string(), source: e })
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
            let scenario = Scenario::load(&file.display().to_string())?;
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
