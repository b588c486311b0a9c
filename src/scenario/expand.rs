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

use super::schedule::{Crash, Fault, Schedule, Window};
use super::spec::{CrashSpec, Entry, Spec};
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
    let end = u64::try_from(run.as_millis()).unwrap_or(u64::MAX);
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
    if let Some((a, b)) = first_overlap(&placed) {
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

/// The first window, in file order, that overlaps an earlier one of the same
/// type on the same link, and the earliest such earlier one.
///
/// Sorted sets per link and type, not every pair: until the first overlap,
/// the windows seen so far are disjoint, so only the ones just before the
/// new window's end can overlap it.
fn first_overlap<'p, 's>(placed: &'p [Placed<'s>]) -> Option<(&'p Placed<'s>, &'p Placed<'s>)> {
    use std::collections::{BTreeMap, HashMap};
    let mut seen: HashMap<(&str, &str), BTreeMap<u64, usize>> = HashMap::new();
    for (j, b) in placed.iter().enumerate() {
        let kind = seen.entry((b.link, b.fault.label())).or_default();
        // Earlier windows starting before b ends, latest first; disjoint, so
        // they overlap b exactly while they end after b starts.
        let overlapping = kind.range(..b.until).rev().map(|(_, &i)| i).take_while(|&i| placed[i].until > b.from).min();
        if let Some(i) = overlapping {
            // In file order, so the first found is the first.
            return Some((&placed[i], b));
        }
        kind.insert(b.from, j);
    }
    None
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
    let starts: Vec<Starts> =
        gaps.iter().map(|&gap| Starts::in_gap(gap, length, shortest, total_room, after)).collect();
    let total: u64 = starts.iter().map(Starts::count).sum();
    if total == 0 {
        return None;
    }
    // The k-th start that fits, counting gap by gap in time order: the same
    // start the walk over every millisecond found, without the walk.
    let mut k = uniform(rng, 0, total - 1);
    for (&(a, _), s) in gaps.iter().zip(&starts) {
        if k < s.count() {
            return Some(a + s.nth(k));
        }
        k -= s.count();
    }
    unreachable!("k < total, the number of starts that fit")
}

/// The starts `x` (offsets into a gap) at which a window of `length` fits in
/// a gap and leaves room for the windows still to come, in closed form.
///
/// A start `x` splits the gap's free `g - length` milliseconds into `x` and
/// `g - length - x`, which hold `⌊x/s⌋ + ⌊(g - length - x)/s⌋` windows of
/// the shortest length `s`. Write `g - length = q·s + r` (`0 ≤ r < s`): that
/// sum is `q` when `x mod s ≤ r` and `q - 1` otherwise. So either every start
/// fits, or only those with `x mod s ≤ r`, or none — counted, and the k-th
/// found, in constant time. (Walking every millisecond made a run of 99999 h
/// hang.)
#[derive(Debug, Clone, Copy, PartialEq)]
enum Starts {
    /// No start fits.
    None,
    /// Every start in `0..=last`.
    All { last: u64 },
    /// The starts `i·s + j` with `i ≤ q` and `j ≤ r`.
    Aligned { s: u64, q: u64, r: u64 },
}

impl Starts {
    fn in_gap((a, b): (u64, u64), length: u64, shortest: u64, total_room: u64, after: u64) -> Starts {
        let g = b - a;
        if g < length {
            return Starts::None;
        }
        let free = g - length;
        // The other gaps keep their room.
        let rest = total_room - g / shortest;
        let (q, r) = (free / shortest, free % shortest);
        // Windows still needed from this gap's two sides.
        let need = after.saturating_sub(rest);
        if need < q {
            Starts::All { last: free }
        } else if need == q {
            Starts::Aligned { s: shortest, q, r }
        } else {
            Starts::None
        }
    }

    fn count(&self) -> u64 {
        match *self {
            Starts::None => 0,
            Starts::All { last } => last + 1,
            Starts::Aligned { q, r, .. } => (q + 1) * (r + 1),
        }
    }

    /// The k-th start in ascending order (`k < count`).
    fn nth(&self, k: u64) -> u64 {
        match *self {
            Starts::None => unreachable!("no starts"),
            Starts::All { .. } => k,
            Starts::Aligned { s, r, .. } => (k / (r + 1)) * s + k % (r + 1),
        }
    }
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

    /// The walk over every millisecond that `place` used to do: kept here to
    /// show the closed form picks exactly the same start.
    fn place_by_walking(
        rng: &mut ChaCha8Rng,
        taken: &[(u64, u64)],
        span: (u64, u64),
        length: u64,
        shortest: u64,
        after: u64,
    ) -> Option<u64> {
        let gaps = free_gaps(taken, span);
        let total_room = capacity(&gaps, shortest);
        let fits = |(a, b): (u64, u64), x: u64| {
            let rest = total_room - (b - a) / shortest;
            rest + x / shortest + (b - a - length - x) / shortest >= after
        };
        let starts: Vec<u64> = gaps
            .iter()
            .filter(|(a, b)| b - a >= length)
            .flat_map(|&(a, b)| (0..=b - a - length).filter(move |&x| fits((a, b), x)).map(move |x| a + x))
            .collect();
        if starts.is_empty() {
            return None;
        }
        Some(starts[uniform(rng, 0, starts.len() as u64 - 1) as usize])
    }

    #[test]
    fn the_closed_form_places_exactly_where_the_walk_did() {
        let mut draws = rng(11);
        for case in 0..3000u64 {
            let span = (uniform(&mut draws, 0, 50), uniform(&mut draws, 60, 400));
            let mut taken: Vec<(u64, u64)> = (0..uniform(&mut draws, 0, 4))
                .map(|_| {
                    let from = uniform(&mut draws, 0, 400);
                    (from, from + uniform(&mut draws, 1, 60))
                })
                .collect();
            taken.sort_unstable();
            let shortest = uniform(&mut draws, 1, 40);
            let length = shortest + uniform(&mut draws, 0, 30);
            let room = capacity(&free_gaps(&taken, span), shortest);
            let after = uniform(&mut draws, 0, room);
            let (mut a, mut b) = (rng(case), rng(case));
            assert_eq!(
                place(&mut a, &taken, span, length, shortest, after),
                place_by_walking(&mut b, &taken, span, length, shortest, after),
                "case {case}: taken {taken:?} span {span:?} length {length} shortest {shortest} after {after}"
            );
        }
    }

    #[test]
    fn a_very_long_run_places_its_windows_at_once() {
        let started = std::time::Instant::now();
        let hours = 99_999 * 3_600_000;
        let mut r = rng(5);
        let s = place(&mut r, &[(1000, 2000)], (0, hours), 3_600_000, 60_000, 500).unwrap();
        assert!(s + 3_600_000 <= hours);
        assert!(started.elapsed() < Duration::from_secs(1));
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
