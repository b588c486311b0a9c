//! A scenario file, validated: the types the checks produce and the
//! expander reads. Points in time stay as written ("20%", "5s") until a
//! run's duration resolves them (see `expand.rs`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::schedule::{Component, Fault, WorkloadKnobs};
use crate::names::{Expectation, Strategy};

/// The attributes of each toxic type, in Toxiproxy's names and units, in the
/// order [`crate::proxy::toxic::ToxicKind`] declares them. A test checks this table against
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
    pub fn compare(&self, other: &Point) -> Option<Ordering> {
        match (self.at, other.at) {
            (At::Percent(a), At::Percent(b)) => a.partial_cmp(&b),
            (At::After(a), At::After(b)) => Some(a.cmp(&b)),
            _ => None,
        }
    }

    /// `self + length` when both use the same unit.
    pub fn plus(&self, length: &Point) -> Option<At> {
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
    pub offset: usize,
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

/// The latest point in time a scenario may name. No run is longer than an
/// hour (`--duration`'s range); a day leaves room, and keeps every sum of
/// two points (a crash's time plus its restart) far from overflowing.
pub(super) const MAX_POINT: Duration = Duration::from_secs(24 * 3600);

/// Parses `"20%"` or `"5s"`; the error says what is wrong with the text.
pub(super) fn parse_point(text: &str) -> Result<Point, String> {
    let trimmed = text.trim();
    let at = if let Some(number) = trimmed.strip_suffix('%') {
        match number.trim().parse::<f64>() {
            Ok(p) if p.is_finite() && (0.0..=100.0).contains(&p) => At::Percent(p),
            Ok(_) => return Err(format!("\"{text}\" is not between 0% and 100%")),
            Err(_) => return Err(format!("\"{text}\" is not a percentage like \"20%\"")),
        }
    } else {
        match humantime::parse_duration(trimmed) {
            Ok(d) if d > MAX_POINT => {
                return Err(format!("\"{text}\" is later than any run reaches (a run lasts at most 1h)"))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::toxic::ToxicKind;

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
}
