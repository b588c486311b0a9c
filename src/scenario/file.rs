//! The scenario file: its TOML model, and the validation that turns it into a
//! [`Spec`] the expander can trust.
//!
//! Two layers, so that every error can name a line. serde reads the file into
//! loosely typed [`Spanned`] fields (strings and raw TOML values, with their
//! byte offsets), refusing unknown keys; then [`Checker`] validates them one
//! by one and notes each problem with its offset. The problem that comes
//! first in the file is the one reported, so fixing a file top to bottom
//! works.
//!
//! Points in time (`from`, `until`, `at`, ...) stay unresolved here: "20%"
//! only means something once the run's duration is known (see `expand.rs`).
//! What can be checked without it is checked here: ranges that are reversed,
//! and overlaps between windows whose times use the same unit.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::schedule::{Component, Fault, WorkloadKnobs};
use super::ScenarioError;
use crate::links;
use crate::proxy::toxic::{Stream, Toxic, ToxicKind};
use crate::strategy::{Expectation, Strategy};

type Str = Spanned<String>;
type Val = Spanned<toml::Value>;
type Attributes = Spanned<BTreeMap<Str, Val>>;

/// The attributes of each toxic type, in Toxiproxy's names and units, in the
/// order [`ToxicKind`] declares them. A test checks this table against
/// `ToxicKind`'s serde shape, so the two cannot drift apart.
pub(super) const ATTRIBUTES: [(&str, &[(&str, &str)]); 7] = [
    ("latency", &[("latency", "ms"), ("jitter", "ms")]),
    ("timeout", &[("timeout", "ms")]),
    ("reset_peer", &[("timeout", "ms")]),
    ("bandwidth", &[("rate", "KB/s")]),
    ("slow_close", &[("delay", "ms")]),
    // Toxiproxy's slicer delay really is in microseconds.
    ("slicer", &[("average_size", "bytes"), ("size_variation", "bytes"), ("delay", "µs")]),
    ("limit_data", &[("bytes", "bytes")]),
];

/// The attributes (name, unit) of a toxic type; `None` for an unknown type.
pub(super) fn attributes_of(type_name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    ATTRIBUTES.iter().find(|(t, _)| *t == type_name).map(|(_, a)| *a)
}

// ---------------------------------------------------------------------------
// The TOML model: what serde reads. Everything a user can get wrong is an
// `Option` or a raw value, so that the checker, not serde, words the error.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    description: Option<Str>,
    duration: Option<Val>,
    expect: Option<BTreeMap<Str, Str>>,
    #[serde(default)]
    window: Vec<Spanned<WindowModel>>,
    #[serde(default)]
    random: Vec<Spanned<RandomModel>>,
    #[serde(default)]
    crash: Vec<Spanned<CrashModel>>,
    workload: Option<WorkloadModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowModel {
    link: Option<Str>,
    from: Option<Val>,
    until: Option<Val>,
    #[serde(rename = "type")]
    kind: Option<Str>,
    stream: Option<Str>,
    attributes: Option<Attributes>,
    /// Read only to refuse it with a reason (see [`Checker::fault`]).
    toxicity: Option<Val>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomModel {
    link: Option<Str>,
    #[serde(rename = "type")]
    kind: Option<Str>,
    stream: Option<Str>,
    attributes: Option<Attributes>,
    toxicity: Option<Val>,
    count: Option<Spanned<i64>>,
    length: Option<Val>,
    within: Option<Val>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrashModel {
    component: Option<Str>,
    at: Option<Val>,
    restart_after: Option<Val>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadModel {
    cache_fill_delay: Option<Val>,
}

// ---------------------------------------------------------------------------
// The validated scenario.

/// A point in the run, as written: a share of the run's duration or a time
/// from its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum At {
    Percent(f64),
    After(Duration),
}

/// A point in the run, and the text it was written as (for messages).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Point {
    pub at: At,
    pub text: String,
}

impl Point {
    /// Milliseconds from the start of a run lasting `run`. Percentages round
    /// to the nearest millisecond: the schedule has millisecond resolution.
    pub fn resolve(&self, run: Duration) -> u64 {
        match self.at {
            At::Percent(p) => (run.as_millis() as f64 * p / 100.0).round() as u64,
            At::After(d) => d.as_millis() as u64,
        }
    }

    /// Orders two points when they use the same unit; `None` when one is a
    /// percentage and the other a duration (only a run's length can say).
    fn compare(&self, other: &Point) -> Option<Ordering> {
        match (self.at, other.at) {
            (At::Percent(a), At::Percent(b)) => a.partial_cmp(&b),
            (At::After(a), At::After(b)) => Some(a.cmp(&b)),
            _ => None,
        }
    }

    /// `self + length` when both use the same unit.
    fn plus(&self, length: &Point) -> Option<At> {
        match (self.at, length.at) {
            (At::Percent(a), At::Percent(b)) => Some(At::Percent(a + b)),
            (At::After(a), At::After(b)) => Some(At::After(a + b)),
            _ => None,
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which `[[...]]` entry something came from, for messages: `window 2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Entry {
    pub kind: &'static str,
    /// 1-based, in file order.
    pub index: usize,
    /// The 1-based line the entry starts on.
    pub line: usize,
    /// Its byte offset, to order problems.
    offset: usize,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.index)
    }
}

/// A `[[window]]`: one fault at fixed times.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WindowSpec {
    pub entry: Entry,
    pub link: &'static str,
    pub from: Point,
    pub until: Point,
    pub fault: Fault,
}

/// A `[[random]]`: `count` windows of one fault, placed from the seed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RandomSpec {
    pub entry: Entry,
    pub link: &'static str,
    pub fault: Fault,
    pub count: u32,
    pub length: (Point, Point),
    pub within: (Point, Point),
}

/// A `[[crash]]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CrashSpec {
    pub entry: Entry,
    pub component: Component,
    pub at: Point,
    pub restart_after: Point,
}

/// A scenario file, validated.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spec {
    pub description: String,
    pub duration: Option<Duration>,
    pub expect: BTreeMap<Strategy, Expectation>,
    pub windows: Vec<WindowSpec>,
    pub randoms: Vec<RandomSpec>,
    pub crashes: Vec<CrashSpec>,
    pub knobs: WorkloadKnobs,
}

/// Reads and validates a scenario file. `file` names it in messages.
pub(super) fn read(file: &str, text: &str) -> Result<Spec, ScenarioError> {
    // Parsing and deserialising are two steps so that a file that is not
    // TOML at all (Syntax) is told apart from TOML of the wrong shape.
    let document = toml::de::Deserializer::parse(text).map_err(|e| ScenarioError::Syntax {
        file: file.to_owned(),
        line: line_of(text, e.span().map_or(0, |s| s.start)),
        message: one_line(e.message()),
    })?;
    let model = FileModel::deserialize(document).map_err(|e| ScenarioError::Invalid {
        file: file.to_owned(),
        line: line_of(text, e.span().map_or(0, |s| s.start)),
        // serde says "field"; the TOML spec and our users say "key". Its
        // list of keys includes `toxicity`, which a window only reads in
        // order to refuse it, so it is not offered.
        message: one_line(&e.message().replacen("unknown field", "unknown key", 1).replace(", `toxicity`", "")),
    })?;

    let mut checker = Checker { text, problems: Vec::new() };
    let spec = checker.file(model);
    match checker.problems.into_iter().min_by_key(|(offset, _)| *offset) {
        Some((offset, message)) => {
            Err(ScenarioError::Invalid { file: file.to_owned(), line: line_of(text, offset), message })
        }
        None => Ok(spec),
    }
}

/// The 1-based line of a byte offset.
///
/// The toml crate attaches a span to every error it finds in a document; an
/// error without one (not seen in practice) is reported on line 1.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// toml's messages sometimes span lines; ours are one line each.
fn one_line(message: &str) -> String {
    message.trim().lines().map(str::trim).collect::<Vec<_>>().join("; ")
}

fn comma_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// Parses `"20%"` or `"5s"`; the error says what is wrong with the text.
fn parse_point(text: &str) -> Result<Point, String> {
    let trimmed = text.trim();
    let at = if let Some(number) = trimmed.strip_suffix('%') {
        match number.trim().parse::<f64>() {
            Ok(p) if p.is_finite() && (0.0..=100.0).contains(&p) => At::Percent(p),
            Ok(_) => return Err(format!("\"{text}\" is not between 0% and 100%")),
            Err(_) => return Err(format!("\"{text}\" is not a percentage like \"20%\"")),
        }
    } else {
        match humantime::parse_duration(trimmed) {
            Ok(d) => At::After(d),
            Err(_) => {
                return Err(format!(
                    "\"{text}\" is neither a percentage of the run (\"20%\") nor a duration (\"5s\", \"1500ms\")"
                ))
            }
        }
    };
    Ok(Point { at, text: text.to_owned() })
}

/// Collects problems, each with the byte offset it was found at.
struct Checker<'t> {
    text: &'t str,
    problems: Vec<(usize, String)>,
}

impl Checker<'_> {
    fn problem(&mut self, offset: usize, message: String) {
        self.problems.push((offset, message));
    }

    fn entry(&self, kind: &'static str, index: usize, offset: usize) -> Entry {
        Entry { kind, index: index + 1, line: line_of(self.text, offset), offset }
    }

    fn file(&mut self, model: FileModel) -> Spec {
        let description = match &model.description {
            Some(d) if !d.get_ref().trim().is_empty() => d.get_ref().trim().to_owned(),
            Some(d) => {
                self.problem(
                    d.span().start,
                    "\"description\" is empty; its first line is the summary `dualwrite scenarios` lists".into(),
                );
                String::new()
            }
            None => {
                self.problem(
                    0,
                    "missing \"description\"; its first line is the summary `dualwrite scenarios` lists".into(),
                );
                String::new()
            }
        };
        let duration = model.duration.as_ref().and_then(|v| self.duration(v));
        let expect = self.expect(model.expect.unwrap_or_default());
        let windows: Vec<WindowSpec> = model.window.iter().enumerate().filter_map(|(i, w)| self.window(i, w)).collect();
        self.window_overlaps(&windows);
        let randoms = model.random.iter().enumerate().filter_map(|(i, r)| self.random(i, r)).collect();
        let crashes: Vec<CrashSpec> = model.crash.iter().enumerate().filter_map(|(i, c)| self.crash(i, c)).collect();
        self.crash_overlaps(&crashes);
        let knobs = model.workload.map(|w| self.workload(w)).unwrap_or_default();
        Spec { description, duration, expect, windows, randoms, crashes, knobs }
    }

    fn duration(&mut self, value: &Val) -> Option<Duration> {
        let offset = value.span().start;
        let parsed = match value.get_ref() {
            toml::Value::String(s) => humantime::parse_duration(s.trim()).ok(),
            _ => None,
        };
        match parsed {
            Some(d) if d > Duration::ZERO => Some(d),
            Some(_) => {
                self.problem(offset, "\"duration\" must be longer than zero".into());
                None
            }
            None => {
                self.problem(offset, format!("\"duration\" must be a duration like \"20s\", not {}", value.get_ref()));
                None
            }
        }
    }

    fn expect(&mut self, table: BTreeMap<Str, Str>) -> BTreeMap<Strategy, Expectation> {
        let mut expect = BTreeMap::new();
        for (name, verdict) in &table {
            let Some(strategy) = Strategy::from_name(name.get_ref()) else {
                self.problem(
                    name.span().start,
                    format!(
                        "unknown strategy \"{}\" in [expect] (known: {})",
                        name.get_ref(),
                        comma_list(Strategy::ALL.iter().map(|s| s.name()))
                    ),
                );
                continue;
            };
            let known = [Expectation::Consistent, Expectation::Inconsistent, Expectation::Any];
            match known.into_iter().find(|e| e.as_str() == verdict.get_ref()) {
                Some(e) => {
                    expect.insert(strategy, e);
                }
                None => self.problem(
                    verdict.span().start,
                    format!(
                        "unknown verdict \"{}\" for {strategy} in [expect] (known: {})",
                        verdict.get_ref(),
                        comma_list(known.iter().map(|e| e.as_str()))
                    ),
                ),
            }
        }
        expect
    }

    fn link(&mut self, entry: &Entry, link: Option<&Str>) -> Option<&'static str> {
        let Some(link) = link else {
            self.problem(entry.offset, format!("{entry}: missing \"link\" (one of: {})", comma_list(links::ALL)));
            return None;
        };
        let found = links::ALL.into_iter().find(|l| l == link.get_ref());
        if found.is_none() {
            self.problem(
                link.span().start,
                format!("{entry}: unknown link \"{}\" (known: {})", link.get_ref(), comma_list(links::ALL)),
            );
        }
        found
    }

    /// A window's fault: `type`, `stream`, `attributes` (and a refused
    /// `toxicity`), shared by `[[window]]` and `[[random]]`.
    fn fault(
        &mut self,
        entry: &Entry,
        kind: Option<&Str>,
        stream: Option<&Str>,
        attributes: Option<&Attributes>,
        toxicity: Option<&Val>,
    ) -> Option<Fault> {
        if let Some(t) = toxicity {
            // Toxiproxy draws toxicity from its own unseeded generator, so a
            // run could not be repeated. Seeded [[random]] windows give
            // randomness that a --seed reproduces.
            self.problem(
                t.span().start,
                format!(
                    "{entry}: \"toxicity\" is not supported: a toxic always applies to every connection \
                     (toxicity 1.0) because Toxiproxy's own randomness cannot be seeded; use [[random]] \
                     windows for randomness that --seed reproduces"
                ),
            );
        }
        let known_types = || comma_list(ToxicKind::TYPE_NAMES.into_iter().chain(["down"]));
        let Some(kind) = kind else {
            self.problem(entry.offset, format!("{entry}: missing \"type\" (one of: {})", known_types()));
            return None;
        };
        let type_name = kind.get_ref().as_str();
        if type_name == "down" {
            if let Some(s) = stream {
                self.problem(
                    s.span().start,
                    format!("{entry}: \"down\" disables the proxy in both directions; it takes no \"stream\""),
                );
            }
            if let Some(a) = attributes {
                self.problem(
                    a.span().start,
                    format!("{entry}: \"down\" disables the proxy; it takes no \"attributes\""),
                );
            }
            return Some(Fault::Down);
        }
        let Some(known_attributes) = attributes_of(type_name) else {
            self.problem(
                kind.span().start,
                format!("{entry}: unknown type \"{type_name}\" (known: {})", known_types()),
            );
            return None;
        };
        let stream = match stream.map(|s| (s, s.get_ref().as_str())) {
            None => Stream::Downstream,
            Some((_, "downstream")) => Stream::Downstream,
            Some((_, "upstream")) => Stream::Upstream,
            Some((s, other)) => {
                self.problem(
                    s.span().start,
                    format!("{entry}: unknown stream \"{other}\" (known: upstream, downstream)"),
                );
                return None;
            }
        };
        let mut values = serde_json::Map::new();
        let mut ok = true;
        for (name, value) in attributes.iter().flat_map(|a| a.get_ref()) {
            let Some((_, unit)) = known_attributes.iter().find(|(n, _)| n == name.get_ref()) else {
                self.problem(
                    name.span().start,
                    format!(
                        "{entry}: {type_name} has no attribute \"{}\" (it has: {})",
                        name.get_ref(),
                        comma_list(known_attributes.iter().map(|(n, _)| *n))
                    ),
                );
                ok = false;
                continue;
            };
            match value.get_ref() {
                toml::Value::Integer(n) if *n >= 0 => {
                    values.insert(name.get_ref().clone(), (*n).into());
                }
                other => {
                    self.problem(
                        value.span().start,
                        format!(
                            "{entry}: attribute \"{}\" of {type_name} must be a whole number ≥ 0 ({unit}), not {other}",
                            name.get_ref()
                        ),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        // Missing attributes default to 0, as in Toxiproxy; ToxicKind's serde
        // shape does that for us.
        let json = serde_json::json!({ "type": type_name, "attributes": values });
        let kind: ToxicKind = serde_json::from_value(json)
            .expect("names and values were checked against ATTRIBUTES, which a test matches to ToxicKind");
        Some(Fault::Toxic { toxic: Toxic::new(kind, stream) })
    }

    fn point(&mut self, entry: &Entry, key: &str, value: Option<&Val>) -> Option<Point> {
        let Some(value) = value else {
            self.problem(entry.offset, format!("{entry}: missing \"{key}\""));
            return None;
        };
        // Messages quote the line as written: `until = "120%" is not ...`.
        let result = match value.get_ref() {
            toml::Value::String(s) => parse_point(s),
            other => Err(format!(
                "{other} is not a string: write a percentage of the run (\"20%\") or a duration (\"5s\", \"1500ms\")"
            )),
        };
        result.map_err(|message| self.problem(value.span().start, format!("{entry}: {key} = {message}"))).ok()
    }

    /// A `[low, high]` pair of points; `durations_only` refuses percentages.
    fn range(&mut self, entry: &str, key: &str, value: &Val, durations_only: bool) -> Option<(Point, Point)> {
        let offset = value.span().start;
        let example = if durations_only { "[\"20ms\", \"200ms\"]" } else { "[\"5%\", \"10%\"]" };
        let pair = match value.get_ref() {
            toml::Value::Array(items) if items.len() == 2 => match (&items[0], &items[1]) {
                (toml::Value::String(a), toml::Value::String(b)) => Some((a, b)),
                _ => None,
            },
            _ => None,
        };
        let Some((a, b)) = pair else {
            self.problem(offset, format!("{entry}: {key} must be a pair like {example}, not {}", value.get_ref()));
            return None;
        };
        let (low, high) = match (parse_point(a), parse_point(b)) {
            (Ok(low), Ok(high)) => (low, high),
            (Err(message), _) | (_, Err(message)) => {
                self.problem(offset, format!("{entry}: in {key}, {message}"));
                return None;
            }
        };
        if durations_only && [&low, &high].iter().any(|p| matches!(p.at, At::Percent(_))) {
            self.problem(offset, format!("{entry}: {key} takes durations like {example}, not percentages"));
            return None;
        }
        if low.compare(&high) == Some(Ordering::Greater) {
            self.problem(
                offset,
                format!("{entry}: {key} = {} runs backwards; write the smaller one first", value.get_ref()),
            );
            return None;
        }
        Some((low, high))
    }

    fn window(&mut self, index: usize, window: &Spanned<WindowModel>) -> Option<WindowSpec> {
        let entry = self.entry("window", index, window.span().start);
        let w = window.get_ref();
        let link = self.link(&entry, w.link.as_ref());
        let fault = self.fault(&entry, w.kind.as_ref(), w.stream.as_ref(), w.attributes.as_ref(), w.toxicity.as_ref());
        let from = self.point(&entry, "from", w.from.as_ref());
        let until = self.point(&entry, "until", w.until.as_ref());
        let (link, fault, from, until) = (link?, fault?, from?, until?);
        let offset = w.until.as_ref().map_or(entry.offset, |u| u.span().start);
        match until.compare(&from) {
            Some(Ordering::Less) => {
                self.problem(offset, format!("{entry}: \"until\" ({until}) is before \"from\" ({from})"));
                return None;
            }
            Some(Ordering::Equal) => {
                self.problem(
                    offset,
                    format!("{entry}: \"until\" ({until}) is the same as \"from\"; the window would be empty"),
                );
                return None;
            }
            // Mixed units ("5s" .. "50%") are checked once the run's
            // duration is known.
            _ => {}
        }
        Some(WindowSpec { entry, link, from, until, fault })
    }

    /// Two windows of one type on one link cannot overlap: the runner adds
    /// one toxic per type and stream, and "which of two latencies applies"
    /// has no good answer. Checked here when the times are comparable.
    fn window_overlaps(&mut self, windows: &[WindowSpec]) {
        for (j, b) in windows.iter().enumerate() {
            for a in &windows[..j] {
                if a.link != b.link || a.fault.label() != b.fault.label() {
                    continue;
                }
                let overlap = a.from.compare(&b.until) == Some(Ordering::Less)
                    && b.from.compare(&a.until) == Some(Ordering::Less);
                if overlap {
                    self.problem(
                        b.entry.offset,
                        format!(
                            "{}: overlaps {} ({} {} {}–{}); two {} windows on one link must not overlap",
                            b.entry,
                            a.entry,
                            a.link,
                            a.fault.label(),
                            a.from,
                            a.until,
                            b.fault.label()
                        ),
                    );
                    break;
                }
            }
        }
    }

    fn random(&mut self, index: usize, random: &Spanned<RandomModel>) -> Option<RandomSpec> {
        let entry = self.entry("random", index, random.span().start);
        let r = random.get_ref();
        let link = self.link(&entry, r.link.as_ref());
        let fault = self.fault(&entry, r.kind.as_ref(), r.stream.as_ref(), r.attributes.as_ref(), r.toxicity.as_ref());
        let count = match &r.count {
            None => {
                self.problem(entry.offset, format!("{entry}: missing \"count\" (how many windows to place)"));
                None
            }
            Some(c) if (1..=1000).contains(c.get_ref()) => Some(*c.get_ref() as u32),
            Some(c) => {
                self.problem(
                    c.span().start,
                    format!("{entry}: \"count\" must be between 1 and 1000, not {}", c.get_ref()),
                );
                None
            }
        };
        let name = entry.to_string();
        let length = match &r.length {
            None => {
                self.problem(entry.offset, format!("{entry}: missing \"length\" (a range like [\"5%\", \"10%\"])"));
                None
            }
            Some(v) => self.range(&name, "length", v, false),
        };
        if let (Some((low, _)), Some(v)) = (&length, &r.length) {
            let zero = match low.at {
                At::Percent(p) => p == 0.0,
                At::After(d) => d.is_zero(),
            };
            if zero {
                self.problem(v.span().start, format!("{entry}: \"length\" must be longer than zero"));
                return None;
            }
        }
        // Without "within", windows may fall anywhere in the run.
        let within = match &r.within {
            None => Some((parse_point("0%").ok()?, parse_point("100%").ok()?)),
            Some(v) => {
                let within = self.range(&name, "within", v, false)?;
                if within.0.compare(&within.1) == Some(Ordering::Equal) {
                    self.problem(
                        v.span().start,
                        format!("{entry}: \"within\" is empty ({} to {})", within.0, within.1),
                    );
                    return None;
                }
                Some(within)
            }
        };
        let (link, fault, count, length, within) = (link?, fault?, count?, length?, within?);
        // The cheapest check that the windows can fit at all: `count`
        // windows of the shortest length side by side. Fixed windows in the
        // way are only known after resolution (see expand.rs).
        let needed = match length.0.at {
            At::Percent(p) => Some(At::Percent(p * f64::from(count))),
            At::After(d) => Some(At::After(d * count)),
        };
        let available = match (within.0.at, within.1.at) {
            (At::Percent(a), At::Percent(b)) => Some(At::Percent(b - a)),
            (At::After(a), At::After(b)) => Some(At::After(b - a)),
            _ => None,
        };
        let too_many = match (needed, available) {
            (Some(At::Percent(n)), Some(At::Percent(a))) => n > a,
            (Some(At::After(n)), Some(At::After(a))) => n > a,
            _ => false,
        };
        if too_many {
            let offset = r.count.as_ref().map_or(entry.offset, |c| c.span().start);
            self.problem(
                offset,
                format!(
                    "{entry}: {count} windows of at least {} cannot fit in {}–{} without overlapping",
                    length.0, within.0, within.1
                ),
            );
            return None;
        }
        Some(RandomSpec { entry, link, fault, count, length, within })
    }

    fn crash(&mut self, index: usize, crash: &Spanned<CrashModel>) -> Option<CrashSpec> {
        let entry = self.entry("crash", index, crash.span().start);
        let c = crash.get_ref();
        let known = [Component::Writer, Component::Relay, Component::Connector];
        let component = match &c.component {
            None => {
                self.problem(
                    entry.offset,
                    format!(
                        "{entry}: missing \"component\" (one of: {})",
                        comma_list(known.iter().map(|c| c.as_str()))
                    ),
                );
                None
            }
            Some(name) => {
                let found = known.into_iter().find(|k| k.as_str() == name.get_ref());
                if found.is_none() {
                    self.problem(
                        name.span().start,
                        format!(
                            "{entry}: unknown component \"{}\" (known: {})",
                            name.get_ref(),
                            comma_list(known.iter().map(|c| c.as_str()))
                        ),
                    );
                }
                found
            }
        };
        let at = self.point(&entry, "at", c.at.as_ref());
        let restart_after = self.point(&entry, "restart_after", c.restart_after.as_ref());
        Some(CrashSpec { entry, component: component?, at: at?, restart_after: restart_after? })
    }

    /// A component cannot crash again before it has restarted.
    fn crash_overlaps(&mut self, crashes: &[CrashSpec]) {
        for (j, b) in crashes.iter().enumerate() {
            for a in &crashes[..j] {
                if a.component != b.component {
                    continue;
                }
                let (first, second) = match a.at.compare(&b.at) {
                    Some(Ordering::Greater) => (b, a),
                    Some(_) => (a, b),
                    None => continue,
                };
                let Some(restart) = first.at.plus(&first.restart_after) else { continue };
                let restart = Point { at: restart, text: String::new() };
                if second.at.compare(&restart) == Some(Ordering::Less) {
                    self.problem(
                        second.entry.offset,
                        format!(
                            "{}: the {} is still down from {} (at {}, restarting after {})",
                            second.entry,
                            second.component.as_str(),
                            first.entry,
                            first.at,
                            first.restart_after
                        ),
                    );
                    break;
                }
            }
        }
    }

    fn workload(&mut self, workload: WorkloadModel) -> WorkloadKnobs {
        let cache_fill_delay = workload.cache_fill_delay.as_ref().and_then(|v| {
            let (low, high) = self.range("[workload]", "cache_fill_delay", v, true)?;
            match (low.at, high.at) {
                (At::After(low), At::After(high)) => Some((low, high)),
                _ => None,
            }
        });
        WorkloadKnobs { cache_fill_delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_table_matches_toxic_kind() {
        // Every type name has an entry, and its attribute names are exactly
        // the keys ToxicKind serialises.
        assert_eq!(ATTRIBUTES.map(|(t, _)| t), ToxicKind::TYPE_NAMES);
        for (type_name, attributes) in ATTRIBUTES {
            let json = serde_json::json!({ "type": type_name, "attributes": {} });
            let kind: ToxicKind = serde_json::from_value(json).unwrap();
            let back = serde_json::to_value(&kind).unwrap();
            let mut keys: Vec<&str> = back["attributes"].as_object().unwrap().keys().map(String::as_str).collect();
            let mut ours: Vec<&str> = attributes.iter().map(|(n, _)| *n).collect();
            keys.sort();
            ours.sort();
            assert_eq!(keys, ours, "attributes of {type_name}");
        }
    }

    #[test]
    fn points_parse_percentages_and_durations() {
        assert_eq!(parse_point("20%").unwrap().at, At::Percent(20.0));
        assert_eq!(parse_point("12.5%").unwrap().at, At::Percent(12.5));
        assert_eq!(parse_point("1500ms").unwrap().at, At::After(Duration::from_millis(1500)));
        assert_eq!(parse_point("0").unwrap().at, At::After(Duration::ZERO));
        assert_eq!(parse_point("120%").unwrap_err(), "\"120%\" is not between 0% and 100%");
        assert_eq!(parse_point("-1%").unwrap_err(), "\"-1%\" is not between 0% and 100%");
        assert!(parse_point("soon").unwrap_err().starts_with("\"soon\" is neither"));
    }

    #[test]
    fn percentages_resolve_to_the_nearest_millisecond() {
        let p = parse_point("33.3333%").unwrap();
        assert_eq!(p.resolve(Duration::from_secs(1)), 333);
        assert_eq!(parse_point("2s").unwrap().resolve(Duration::from_secs(1)), 2000);
    }

    #[test]
    fn line_of_counts_from_one() {
        let text = "a\nb\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 4), 3);
        assert_eq!(line_of(text, 99), 3);
    }
}
