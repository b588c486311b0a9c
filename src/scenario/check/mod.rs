//! The checks that turn a scenario file's TOML model into a [`Spec`] the
//! expander can trust.
//!
//! [`Checker`] validates the model's fields one by one and notes each problem
//! with its byte offset; the problem that comes first in the file is the one
//! reported, so fixing a file top to bottom works.
//!
//! What can be checked without a run's duration is checked here: values,
//! ranges that are reversed, and overlaps between windows whose times use
//! the same unit. Every check is linear in the file (or, for overlaps,
//! n log n): a file is at most 1 MiB, and holds at most a few thousand
//! entries (see [`MAX_WINDOWS`]).
//!
//! `fault.rs` holds the checks of a window's link and fault (type, stream,
//! attributes), shared by `[[window]]` and `[[random]]`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use toml::Spanned;

use super::lines::Lines;
use super::model::{CrashModel, FileModel, RandomModel, Str, Val, WindowModel, WorkloadModel};
use super::schedule::{Component, WorkloadKnobs};
use super::spec::{parse_point, At, CrashSpec, Entry, Point, RandomSpec, Spec, WindowSpec, MAX_POINT};
use crate::event::EventKey;
use crate::names::{Expectation, Strategy};

mod fault;

/// At most this many fault windows, fixed and random together: each window
/// is two calls to the proxy's API during the run, and a scenario is read by
/// people. The built-in ones have a dozen.
pub(super) const MAX_WINDOWS: usize = 2000;

/// At most this many crashes: each stops and restarts a component.
pub(super) const MAX_CRASHES: usize = 100;

/// Windows that may not overlap: one link, one fault type, one unit
/// (percentages or durations).
type OverlapKind<'w> = (&'w str, &'w str, bool);

/// A point as a key that sorts as the point does within its unit: `(true,
/// …)` for a percentage, `(false, …)` for a duration. A percentage is 0 to
/// 100 (checked when parsed), so its bits sort as its value; `-0%` is 0%.
fn sort_key(point: &Point) -> Option<(bool, u128)> {
    match point.at {
        At::Percent(p) if p.is_finite() && p >= 0.0 => Some((true, u128::from((p + 0.0).to_bits()))),
        At::Percent(_) => None,
        At::After(d) => Some((false, d.as_nanos())),
    }
}

fn comma_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// Collects problems, each with the byte offset it was found at.
pub(super) struct Checker<'t> {
    pub(super) lines: &'t Lines,
    pub(super) problems: Vec<(usize, String)>,
}

impl Checker<'_> {
    fn problem(&mut self, offset: usize, message: String) {
        self.problems.push((offset, message));
    }

    fn entry(&self, kind: &'static str, index: usize, offset: usize) -> Entry {
        Entry { kind, index: index + 1, line: self.lines.line_of(offset), offset }
    }

    pub(super) fn file(&mut self, model: FileModel) -> Spec {
        if !self.within_caps(&model) {
            // Nothing more is checked: the caps keep every check below cheap.
            return Spec {
                description: String::new(),
                duration: None,
                expect: BTreeMap::new(),
                windows: Vec::new(),
                randoms: Vec::new(),
                crashes: Vec::new(),
                knobs: WorkloadKnobs::default(),
            };
        }
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

    /// Refuses a file with more windows or crashes than a run can show
    /// ([`MAX_WINDOWS`], [`MAX_CRASHES`]), at the entry that goes over.
    fn within_caps(&mut self, model: &FileModel) -> bool {
        if let Some(extra) = model.window.get(MAX_WINDOWS) {
            self.problem(
                extra.span().start,
                format!(
                    "more than {MAX_WINDOWS} [[window]] entries; a scenario may hold at most {MAX_WINDOWS} windows"
                ),
            );
            return false;
        }
        let mut total = model.window.len() as u64;
        for random in &model.random {
            // A count out of range is refused, with its own message, later.
            let count = random.get_ref().count.as_ref().map_or(0, |c| (*c.get_ref()).clamp(0, 1000) as u64);
            total += count;
            if total > MAX_WINDOWS as u64 {
                let offset = random.get_ref().count.as_ref().map_or(random.span().start, |c| c.span().start);
                self.problem(
                    offset,
                    format!(
                        "this [[random]] brings the scenario to {total} windows; a scenario may hold at most \
                         {MAX_WINDOWS}, fixed and random together"
                    ),
                );
                return false;
            }
        }
        if let Some(extra) = model.crash.get(MAX_CRASHES) {
            self.problem(
                extra.span().start,
                format!("more than {MAX_CRASHES} [[crash]] entries; a scenario may hold at most {MAX_CRASHES}"),
            );
            return false;
        }
        true
    }

    fn duration(&mut self, value: &Val) -> Option<Duration> {
        let offset = value.span().start;
        let parsed = match value.get_ref() {
            toml::Value::String(s) => humantime::parse_duration(s.trim()).ok(),
            _ => None,
        };
        match parsed {
            Some(d) if d > MAX_POINT => {
                self.problem(offset, format!("\"duration\" = {} is longer than any run (at most 1h)", value.get_ref()));
                None
            }
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
    /// has no good answer. Checked here when the times are comparable (both
    /// windows written in one unit); mixed ones once a run's duration is
    /// known (`expand.rs`).
    ///
    /// The first window, in file order, that overlaps an earlier one is
    /// reported, naming the earliest of those. Not every pair is compared:
    /// until the first overlap, the earlier windows of a link, type and unit
    /// are disjoint, so a sorted set finds the few that can overlap the next.
    fn window_overlaps(&mut self, windows: &[WindowSpec]) {
        // Per link, type and unit: the windows so far by their start, or
        // `None` once an overlap was found (later ones come later in the file).
        let mut seen: HashMap<OverlapKind, Option<BTreeMap<u128, usize>>> = HashMap::new();
        for (j, b) in windows.iter().enumerate() {
            let (Some(from), Some(until)) = (sort_key(&b.from), sort_key(&b.until)) else { continue };
            if from.0 != until.0 {
                continue;
            }
            let Some(kind) = seen.entry((b.link, b.fault.label(), from.0)).or_insert_with(|| Some(BTreeMap::new()))
            else {
                continue;
            };
            // Earlier windows that start before b ends, latest first: they
            // overlap b while they end after b starts.
            let first = kind
                .range(..until.1)
                .rev()
                .map(|(_, &i)| i)
                .take_while(|&i| windows[i].until.compare(&b.from) == Some(Ordering::Greater))
                .min();
            let Some(i) = first else {
                kind.insert(from.1, j);
                continue;
            };
            seen.insert((b.link, b.fault.label(), from.0), None);
            let a = &windows[i];
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
        let known = [Component::Writer, Component::Relay, Component::Connector, Component::Consumer];
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
        let event_key = match &workload.event_key {
            None => EventKey::default(),
            Some(name) => match EventKey::ALL.into_iter().find(|k| k.as_str() == name.get_ref()) {
                Some(key) => key,
                None => {
                    self.problem(
                        name.span().start,
                        format!(
                            "[workload] event_key: unknown key \"{}\" (one of: {})",
                            name.get_ref(),
                            comma_list(EventKey::ALL.iter().map(|k| k.as_str()))
                        ),
                    );
                    EventKey::default()
                }
            },
        };
        WorkloadKnobs { cache_fill_delay, event_key }
    }
}
