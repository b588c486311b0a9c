//! Scenarios: fault windows as files.
//!
//! A scenario is a TOML file (see `scenarios/*.toml` for the built-in ones):
//! a description, the verdict each strategy is expected to reach, fixed fault
//! windows, seeded random windows, crashes, and workload knobs. This module
//! loads and validates one ([`Scenario::load`]), expands it for a seed and a
//! run duration into the [`Schedule`] the runner executes
//! ([`Scenario::schedule`]), and prints both for the `dualwrite scenarios`
//! commands and the reports.
//!
//! - `file.rs`: reading a file — TOML syntax, the model, the checks — with
//!   every error naming a line;
//! - `model.rs`: the TOML model serde reads;
//! - `check/`: the checks that turn the model into a `Spec` (`fault.rs`:
//!   a window's link and toxic);
//! - `spec.rs`: the validated scenario (`Spec`), times still as written;
//! - `expand.rs`: percentages resolved, random windows placed, from the seed;
//! - `schedule.rs`: the expanded schedule the runner reads.
//!
//! A scenario file is read only if it is a regular file of at most 1 MiB
//! ([`crate::files::read_input`]), and every step after reading is linear
//! in its size or bounded by the caps on entries, so no file can make
//! dualwrite hang.
//!
//! The built-in scenarios are the files in `scenarios/`, compiled into the
//! binary so that `dualwrite` works from any directory; `dualwrite scenarios
//! show NAME` prints one so it can be copied and edited.

mod check;
mod expand;
mod file;
mod lines;
mod model;
pub mod schedule;
mod spec;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use expand::FAULT_STREAM;
use schedule::{Fault, Schedule};

use crate::names::{Expectation, Strategy};

/// Why a scenario could not be loaded or expanded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(
        "no scenario named \"{name}\" (built in: {}); pass a path to a .toml file to use your own",
        known.join(", ")
    )]
    NotFound { name: String, known: Vec<&'static str> },

    #[error("cannot read scenario file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: crate::files::FileError,
    },

    /// The file is not TOML. The toml crate's error is not kept as a source:
    /// all it holds is this message and the position, and its `Display`
    /// repeats them as a multi-line snippet that would break the one-line
    /// `file:line: message` form editors and workshop slides rely on.
    #[error("{file}:{line}: {message}")]
    Syntax { file: String, line: usize, message: String },

    /// The file is TOML but not a valid scenario, or (from
    /// [`Scenario::schedule`]) cannot be expanded for the given duration.
    #[error("{file}:{line}: {message}")]
    Invalid { file: String, line: usize, message: String },
}

/// The built-in scenarios: name and file text. `calm` first, the rest
/// alphabetical. A test checks this list against the `scenarios/` directory.
const BUILTINS: [(&str, &str); 14] = [
    ("calm", include_str!("../../scenarios/calm.toml")),
    ("cache-race", include_str!("../../scenarios/cache-race.toml")),
    ("connector-crash", include_str!("../../scenarios/connector-crash.toml")),
    ("coordinator-crash", include_str!("../../scenarios/coordinator-crash.toml")),
    ("flaky-network", include_str!("../../scenarios/flaky-network.toml")),
    ("kafka-latency", include_str!("../../scenarios/kafka-latency.toml")),
    ("kafka-outage", include_str!("../../scenarios/kafka-outage.toml")),
    ("kafka-resets", include_str!("../../scenarios/kafka-resets.toml")),
    ("postgres-resets", include_str!("../../scenarios/postgres-resets.toml")),
    ("redis-timeouts", include_str!("../../scenarios/redis-timeouts.toml")),
    ("relay-crash", include_str!("../../scenarios/relay-crash.toml")),
    ("slow-kafka", include_str!("../../scenarios/slow-kafka.toml")),
    ("writer-crash", include_str!("../../scenarios/writer-crash.toml")),
    ("wrong-key", include_str!("../../scenarios/wrong-key.toml")),
];

/// A validated scenario, ready to expand for any seed and duration.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The built-in name, or the file's stem (`my-faults` for `./my-faults.toml`).
    pub name: String,
    /// The whole description; its first line is the summary.
    pub description: String,
    /// `"built-in"`, or the path the file was loaded from.
    pub source: String,
    /// How messages name the file: `scenarios/calm.toml` for a built-in.
    label: String,
    /// The file's text, as written.
    text: String,
    spec: spec::Spec,
}

impl Scenario {
    /// The built-in scenario names, `calm` first.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|(name, _)| *name).collect()
    }

    /// A built-in scenario by name.
    pub fn builtin(name: &str) -> Option<Scenario> {
        let (name, text) = BUILTINS.iter().find(|(n, _)| *n == name)?;
        let label = format!("scenarios/{name}.toml");
        // The built-ins are validated by a test, so this cannot fail in a
        // released binary.
        let mut scenario = Scenario::parse(&label, text).expect("built-in scenarios are valid (tested)");
        scenario.source = "built-in".to_owned();
        Some(scenario)
    }

    /// A built-in name, or a path to a scenario file (anything with a `/` or
    /// ending in `.toml`).
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            return Scenario::load_file(Path::new(name_or_path));
        }
        Scenario::builtin(name_or_path)
            .ok_or_else(|| ScenarioError::NotFound { name: name_or_path.to_owned(), known: Scenario::builtin_names() })
    }

    /// A scenario file: a regular file of at most 1 MiB
    /// ([`crate::files::read_input`]), parsed and validated.
    pub fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = crate::files::read_input(path)
            .map_err(|source| ScenarioError::Read { path: path.to_path_buf(), source })?;
        Scenario::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates a scenario file's text; `file_label` names it in
    /// messages (and gives the scenario its name).
    pub fn parse(file_label: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let spec = file::read(file_label, text)?;
        let name = Path::new(file_label)
            .file_stem()
            .map_or_else(|| file_label.to_owned(), |s| s.to_string_lossy().into_owned());
        Ok(Scenario {
            name,
            description: spec.description.clone(),
            source: file_label.to_owned(),
            label: file_label.to_owned(),
            text: text.to_owned(),
            spec,
        })
    }

    /// The description's first line.
    pub fn summary(&self) -> &str {
        self.description.lines().next().unwrap_or("").trim()
    }

    /// The file's text, as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The verdict the scenario expects of `strategy`; `Any` when it does
    /// not say.
    pub fn expected(&self, strategy: Strategy) -> Expectation {
        self.spec.expect.get(&strategy).copied().unwrap_or(Expectation::Any)
    }

    /// Every strategy's expected verdict, in `compare` order.
    pub fn expectations(&self) -> BTreeMap<Strategy, Expectation> {
        Strategy::ALL.into_iter().map(|s| (s, self.expected(s))).collect()
    }

    /// The concrete schedule for one run: a pure function of the scenario,
    /// `seed` and `duration` (see `expand.rs` for the rules).
    pub fn schedule(&self, seed: u64, duration: Duration) -> Result<Schedule, ScenarioError> {
        expand::expand(&self.spec, &self.label, seed, duration)
    }

    /// The run duration the scenario was tuned for (its `duration` key).
    pub fn default_duration(&self) -> Option<Duration> {
        self.spec.duration
    }
}

/// `dualwrite scenarios`: each built-in's name and summary, aligned.
pub fn write_list(out: &mut impl Write) -> io::Result<()> {
    let scenarios: Vec<Scenario> = Scenario::builtin_names().into_iter().filter_map(Scenario::builtin).collect();
    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &scenarios {
        writeln!(out, "{:width$}  {}", s.name, s.summary())?;
    }
    Ok(())
}

/// `dualwrite scenarios show NAME`: the file's text, so it can be copied to a
/// file and edited, followed by the expected verdicts. Everything added is a
/// TOML comment, so the whole output is still a valid scenario file.
pub fn write_show(scenario: &Scenario, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "# scenario \"{}\" ({})", scenario.name, scenario.source)?;
    out.write_all(scenario.text.as_bytes())?;
    if !scenario.text.ends_with('\n') {
        writeln!(out)?;
    }
    writeln!(out)?;
    writeln!(out, "# expected verdicts (a strategy the file does not name: any):")?;
    for (strategy, expectation) in scenario.expectations() {
        writeln!(out, "#   {:<14} {}", strategy.name(), expectation)?;
    }
    if let Some(d) = scenario.default_duration() {
        writeln!(out, "# tuned for runs of {}", humantime::format_duration(d))?;
    }
    Ok(())
}

/// A schedule in the form every report prints, one fault per line in time
/// order, times in seconds to the millisecond (exactly what the runner
/// executes):
///
/// ```text
///   2.000–  5.000 s  kafka           reset_peer upstream timeout=0
///   7.500 s          relay           crash, restarts 1.000 s later
/// ```
///
/// Toxic attributes are written as `toxiproxy-cli toxic add -a` takes them.
pub fn write_schedule(schedule: &Schedule, out: &mut impl Write) -> io::Result<()> {
    if schedule.windows.is_empty() && schedule.crashes.is_empty() && schedule.knobs == Default::default() {
        return writeln!(out, "  no faults");
    }
    // Windows and crashes interleaved by start time; a stable sort keeps
    // each list's own order for equal times.
    let mut lines: Vec<(Duration, String)> = Vec::new();
    for w in &schedule.windows {
        let what = match &w.fault {
            Fault::Down => "down (proxy disabled)".to_owned(),
            Fault::Toxic { toxic } => {
                let mut what = format!("{} {}", toxic.kind.type_name(), toxic.stream);
                for (name, value) in toxic_attributes(&toxic.kind) {
                    what.push_str(&format!(" {name}={value}"));
                }
                what
            }
        };
        let when = format!("{:7.3}–{:7.3} s", w.from.as_secs_f64(), w.until.as_secs_f64());
        lines.push((w.from, format!("  {when}  {:<14}  {what}", w.link)));
    }
    for c in &schedule.crashes {
        let when = format!("{:7.3} s", c.at.as_secs_f64());
        let what = format!("crash, restarts {:.3} s later", c.restart_after.as_secs_f64());
        lines.push((c.at, format!("  {when:<17}  {:<14}  {what}", c.component.as_str())));
    }
    lines.sort_by_key(|(at, _)| *at);
    for (_, line) in lines {
        writeln!(out, "{line}")?;
    }
    if let Some((low, high)) = schedule.knobs.cache_fill_delay {
        writeln!(out, "  cache fill delay {}–{} ms (cache-aside readers)", low.as_millis(), high.as_millis())?;
    }
    if schedule.knobs.event_key != crate::event::EventKey::default() {
        writeln!(out, "  events keyed by {}, not by product: the wrong key", schedule.knobs.event_key.as_str())?;
    }
    Ok(())
}

/// A toxic's attributes in Toxiproxy's names, in declaration order.
fn toxic_attributes(kind: &crate::proxy::toxic::ToxicKind) -> Vec<(&'static str, serde_json::Value)> {
    let json = serde_json::to_value(kind).unwrap_or_default();
    spec::attributes_of(kind.type_name())
        .unwrap_or(&[])
        .iter()
        .map(|(name, _)| (*name, json["attributes"][*name].clone()))
        .collect()
}

#[cfg(test)]
mod tests;
