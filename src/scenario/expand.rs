//! Expansion: a validated scenario plus a seed and a run duration become the
//! concrete [`Schedule`] the runner executes.
//!
//! It is a pure function of (scenario, seed, duration): no clock, no global
//! generator. That is what lets two participants with the same `--seed`
//! compare their runs fault for fault.
//!
//! The rules, in the order they apply:
//!
//! 1. Every point resolves to whole milliseconds from the start of the run:
//!    a percentage against the run's duration, a duration as written.
//! 2. A fixed window whose `until` lands before its `from` (possible only
//!    when they mix units, e.g. `from = "5s"`, `until = "20%"`) is an error.
//! 3. A window that *starts* at or after the end of the run is dropped, as is
//!    one that rounding made empty; a window that reaches past the end is
//!    cut at the end. A crash at or after the end is dropped.
//! 4. Fixed windows of one type on one link that overlap are an error.
//! 5. Random windows are placed, entry by entry in file order, inside their
//!    `within` span (cut at the end of the run; an entry whose span starts
//!    after the end places nothing), never overlapping any window of the same
//!    type on the same link. An entry whose `count` windows cannot fit at
//!    their shortest `length` is an error, whatever the seed; one that can
//!    always gets all of them.
//! 6. A component cannot crash again before it has restarted.
//!
//! Windows are half-open (`from` inclusive, `until` exclusive), so one window
//! may end exactly where the next of its kind begins; the runner removes the
//! first toxic before it adds the second.

use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::file::{CrashSpec, Entry, Spec};
use super::schedule::{Crash, Fault, Schedule, Window};
use super::ScenarioError;

/// The ChaCha stream reserved for the fault schedule. The workload draws from
/// the same seed on another stream, so adding a random window to a scenario
/// never changes which products the writers pick, and vice versa.
pub const FAULT_STREAM: u64 = 1;

/// A window placed so far, with where it came from.
struct Placed<'s> {
    entry: Entry,
    link: &'static str,
    fault: &'s Fault,
    from: u64,
    until: u64,
}

pub(super) fn expand(spec: &Spec, file: &str, seed: u64, run: Duration) -> Result<Schedule, ScenarioError> {
    let end = run.as_millis() as u64;
    let invalid = |entry: &Entry, message: String| ScenarioError::Invalid {
        file: file.to_owned(),
        line: entry.line,
        message: format!("{entry}: {message} in a {} run", seconds(end)),
    };

    // Fixed windows (rules 2-4).
    let mut placed: Vec<Placed> = Vec::new();
    for w in &spec.windows {
        let (from, until) = (w.from.resolve(run), w.until.resolve(run));
        if until < from {
            return Err(invalid(
                &w.entry,
                format!(
                    "\"until\" ({}, {}) is before \"from\" ({}, {})",
                    w.until,
                    seconds(until),
                    w.from,
                    seconds(from)
                ),
            ));
        }
        if from >= end || from == until {
            continue;
        }
        placed.push(Placed { entry: w.entry, link: w.link, fault: &w.fault, from, until: until.min(end) });
    }
    for (j, b) in placed.iter().enumerate() {
        if let Some(a) = placed[..j].iter().find(|a| same_kind(a, b) && a.from < b.until && b.from < a.until) {
            return Err(invalid(
                &b.entry,
                format!(
                    "{} {} {}–{} overlaps {} ({}–{}); two {} windows on one link must not overlap",
                    b.link,
                    b.fault.label(),
                    seconds(b.from),
                    seconds(b.until),
                    a.entry,
                    seconds(a.from),
                    seconds(a.until),
                    b.fault.label()
                ),
            ));
        }
    }

    // Random windows (rule 5), all drawn from one generator in file order.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(FAULT_STREAM);
    for r in &spec.randoms {
        let (start, stop) = (r.within.0.resolve(run), r.within.1.resolve(run).min(end));
        if start >= end {
            continue;
        }
        if stop <= start {
            return Err(invalid(&r.entry, format!("\"within\" ({}–{}) is empty", seconds(start), seconds(stop))));
        }
        // At least a millisecond, or a percentage of a very short run could
        // round to an empty window.
        let (shortest, longest) = (r.length.0.resolve(run).max(1), r.length.1.resolve(run).max(1));
        if longest < shortest {
            return Err(invalid(
                &r.entry,
                format!("\"length\" runs backwards ({} > {})", seconds(shortest), seconds(longest)),
            ));
        }
        let mut taken: Vec<(u64, u64)> = placed
            .iter()
            .filter(|p| p.link == r.link && p.fault.label() == r.fault.label())
            .map(|p| (p.from, p.until))
            .collect();
        taken.sort_unstable();
        // Whether the entry fits depends only on the free room, never on
        // the seed: each window below is placed so that the ones after it
        // still fit at their shortest length.
        let room = capacity(&free_gaps(&taken, (start, stop)), shortest);
        if room < u64::from(r.count) {
            return Err(invalid(
                &r.entry,
                format!(
                    "{} windows of at least {} do not fit in {}–{} beside the other {} {} windows (room for {room})",
                    r.count,
                    seconds(shortest),
                    seconds(start),
                    seconds(stop),
                    r.link,
                    r.fault.label()
                ),
            ));
        }
        for n in 1..=u64::from(r.count) {
            let after = u64::from(r.count) - n;
            let length = uniform(&mut rng, shortest, longest);
            // If the drawn length leaves no room for the rest, the shortest
            // one always does (the room check above guarantees it).
            let (from, length) = match place(&mut rng, &taken, (start, stop), length, shortest, after) {
                Some(from) => (from, length),
                None => {
                    let from = place(&mut rng, &taken, (start, stop), shortest, shortest, after)
                        .expect("room for every window at its shortest was checked");
                    (from, shortest)
                }
            };
            taken.push((from, from + length));
            taken.sort_unstable();
            placed.push(Placed { entry: r.entry, link: r.link, fault: &r.fault, from, until: from + length });
        }
    }

    // Crashes (rules 3 and 6).
    let mut crashes: Vec<(&CrashSpec, Crash)> = spec
        .crashes
        .iter()
        .map(|c| {
            let crash = Crash {
                component: c.component,
                at: Duration::from_millis(c.at.resolve(run)),
                restart_after: Duration::from_millis(c.restart_after.resolve(run)),
            };
            (c, crash)
        })
        .filter(|(_, crash)| crash.at < run)
        .collect();
    crashes.sort_by_key(|(c, crash)| (crash.at, c.entry.index));
    for (j, (spec_b, b)) in crashes.iter().enumerate() {
        let earlier = crashes[..j].iter().rev().find(|(_, a)| a.component == b.component);
        if let Some((spec_a, a)) = earlier {
            if b.at < a.at + a.restart_after {
                return Err(invalid(
                    &spec_b.entry,
                    format!(
                        "the {} crashes at {} while still down from {} ({}, restarting {} later)",
                        b.component.as_str(),
                        seconds(b.at.as_millis() as u64),
                        spec_a.entry,
                        seconds(a.at.as_millis() as u64),
                        seconds(a.restart_after.as_millis() as u64)
                    ),
                ));
            }
        }
    }

    let mut windows: Vec<Window> = placed
        .into_iter()
        .map(|p| Window {
            link: p.link.to_owned(),
            from: Duration::from_millis(p.from),
            until: Duration::from_millis(p.until),
            fault: p.fault.clone(),
        })
        .collect();
    windows
        .sort_by(|a, b| (a.from, &a.link, a.until, a.fault.label()).cmp(&(b.from, &b.link, b.until, b.fault.label())));
    Ok(Schedule { windows, crashes: crashes.into_iter().map(|(_, c)| c).collect(), knobs: spec.knobs.clone() })
}

fn same_kind(a: &Placed, b: &Placed) -> bool {
    a.link == b.link && a.fault.label() == b.fault.label()
}

/// `12.345 s`
fn seconds(ms: u64) -> String {
    format!("{:.3} s", ms as f64 / 1000.0)
}

/// A uniform draw from `low..=high`.
///
/// Written out rather than `rng.random_range` because rand does not promise
/// that a range sample stays the same across its releases, and a seed must
/// give the same schedule after a dependency update. ChaCha's output stream
/// is fixed by its specification; rejection sampling on it is too.
fn uniform(rng: &mut ChaCha8Rng, low: u64, high: u64) -> u64 {
    let span = high - low;
    if span == u64::MAX {
        return rng.next_u64();
    }
    let span = span + 1;
    // Values above `limit` would favour the low residues: draw again.
    let limit = u64::MAX - (u64::MAX % span + 1) % span;
    loop {
        let x = rng.next_u64();
        if x <= limit {
            return low + x % span;
        }
    }
}

/// The free parts of `span` that none of `taken` (sorted) covers, in order.
fn free_gaps(taken: &[(u64, u64)], span: (u64, u64)) -> Vec<(u64, u64)> {
    let mut gaps = Vec::new();
    let mut cursor = span.0;
    for &(from, until) in taken {
        if from >= span.1 {
            break;
        }
        if from > cursor {
            gaps.push((cursor, from));
        }
        cursor = cursor.max(until);
    }
    if cursor < span.1 {
        gaps.push((cursor, span.1));
    }
    gaps
}

/// How many windows of `length` fit side by side in `gaps`.
fn capacity(gaps: &[(u64, u64)], length: u64) -> u64 {
    gaps.iter().map(|(a, b)| (b - a) / length).sum()
}

/// A start for a window of `length` inside `span`, overlapping none of
/// `taken` (sorted) and leaving room for `after` more windows of `shortest`;
/// uniform over every start that does. `None` if none does.
fn place(
    rng: &mut ChaCha8Rng,
    taken: &[(u64, u64)],
    span: (u64, u64),
    length: u64,
    shortest: u64,
    after: u64,
) -> Option<u64> {
    let gaps = free_gaps(taken, span);
    let total_room = capacity(&gaps, shortest);
    // A start `x` into gap [a, b) splits it into x and (b - a - length - x);
    // the rest of the gaps keep their room.
    let fits = |(a, b): (u64, u64), x: u64| {
        let rest = total_room - (b - a) / shortest;
        rest + x / shortest + (b - a - length - x) / shortest >= after
    };
    let starts = |(a, b): (u64, u64)| -> u64 {
        if b - a < length {
            return 0;
        }
        (0..=b - a - length).filter(|&x| fits((a, b), x)).count() as u64
    };
    let total: u64 = gaps.iter().map(|&g| starts(g)).sum();
    if total == 0 {
        return None;
    }
    let mut k = uniform(rng, 0, total - 1);
    for (a, b) in gaps {
        if b - a < length {
            continue;
        }
        for x in (0..=b - a - length).filter(|&x| fits((a, b), x)) {
            if k == 0 {
                return Some(a + x);
            }
            k -= 1;
        }
    }
    unreachable!("k < total, the number of starts that fit")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(FAULT_STREAM);
        rng
    }

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        let mut r = rng(1);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let x = uniform(&mut r, 10, 14);
            assert!((10..=14).contains(&x));
            seen[(x - 10) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(uniform(&mut r, 7, 7), 7);
    }

    #[test]
    fn place_avoids_taken_spans() {
        let mut r = rng(2);
        let taken = [(100, 200), (300, 400)];
        for _ in 0..500 {
            let s = place(&mut r, &taken, (0, 500), 100, 100, 0).unwrap();
            // Fits in [0,100), [200,300) or [400,500) exactly.
            assert!([0, 200, 400].contains(&s), "{s}");
        }
        assert_eq!(place(&mut r, &taken, (0, 500), 101, 101, 0), None);
        assert_eq!(place(&mut r, &[], (50, 60), 10, 10, 0), Some(50));
    }

    #[test]
    fn place_leaves_room_for_the_windows_still_to_come() {
        // 300 ms of room, three windows of 100 ms to place: the first must
        // start on a multiple of 100 ms, or the other two no longer fit.
        let mut r = rng(3);
        for _ in 0..100 {
            let s = place(&mut r, &[], (0, 300), 100, 100, 2).unwrap();
            assert!([0, 100, 200].contains(&s), "{s}");
        }
        // In 250 ms with one to come, the first must leave 100 ms on one
        // side: start at 0..=50 or at 100..=150, never at 51..=99.
        let mut seen = (false, false);
        for _ in 0..300 {
            let s = place(&mut r, &[], (0, 250), 100, 100, 1).unwrap();
            assert!(s <= 50 || (100..=150).contains(&s), "{s}");
            seen = (seen.0 || s <= 50, seen.1 || s >= 100);
        }
        assert_eq!(seen, (true, true));
        assert_eq!(free_gaps(&[(0, 10), (5, 20), (30, 40)], (0, 50)), vec![(20, 30), (40, 50)]);
        assert_eq!(capacity(&[(20, 30), (40, 55)], 5), 5);
    }

    /// ChaCha8 with this seed and stream is a fixed sequence: if this test
    /// fails, every published schedule just changed.
    #[test]
    fn the_fault_stream_is_stable() {
        let mut r = rng(7);
        let draws: Vec<u64> = (0..3).map(|_| uniform(&mut r, 0, 999)).collect();
        let mut again = rng(7);
        let redraw: Vec<u64> = (0..3).map(|_| uniform(&mut again, 0, 999)).collect();
        assert_eq!(draws, redraw);
    }
}
