//! The live view on stderr while a run is under way, when stderr is a
//! terminal: the phase and the time, running counts of orders and of
//! outcomes, the faults active now and when they end, and one line per
//! product with what the database holds, what the cache served and what the
//! downstream consumer believes — marked where they disagree, and for how
//! long. The seed demos' "db: 977 vs queue: 981", for every product at once.
//!
//! ```text
//! naive [1/6] · main · 6.9 of 20.0 s ━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━━━━
//! orders 27 · committed 26 · told unknown 1 · told fail 5 · not yet delivered 3
//! faults now: kafka reset_peer until 12.0 s
//!   product  database  consumer
//!   1        985 v5    991 v2    ≠ 3 versions behind for 2.3 s
//! ```
//!
//! [`render`] is a pure function of a [`LiveState`] (golden tests in
//! `tests/live.rs`); [`Progress`] builds the state from the history a few
//! new events at a time ([`LiveTracker`]) and draws it with indicatif,
//! which redraws it in place and hides it when stderr is not a terminal —
//! then nothing is computed at all. Log lines go through [`LogWriter`],
//! which draws them above the view instead of through it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::consumer::Downstream;
use crate::history::{Event, History, Leg, Millis, OrderId, Outcome, StockAfter};
use crate::layout::{self, Align};
use crate::names::Strategy;
use crate::scenario::schedule::{Component, Crash, Window};

/// Products shown one per line; the others are summed up in one line.
pub const MAX_PRODUCT_LINES: usize = 10;

/// What the live view needs to know about a run, given when its main phase
/// starts: only leaf facts, so that the runner drives the view and not the
/// other way round.
#[derive(Debug, Clone)]
pub struct RunView {
    pub strategy: Strategy,
    pub duration: Duration,
    pub products: u32,
    pub windows: Vec<Window>,
    pub crashes: Vec<Crash>,
}

/// Running counts, kept as events arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Orders the writers began.
    pub orders: u64,
    /// Orders whose database leg was told ok.
    pub committed: u64,
    /// Legs told fail.
    pub failed: u64,
    /// Legs told unknown.
    pub unknown: u64,
    /// Beats on which a writer placed no order (its orders in flight were
    /// at their limit, or it woke too late).
    pub skipped: u64,
}

/// A fault in force now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveFault {
    /// `kafka reset_peer`, `relay crashed`.
    pub what: String,
    /// When it ends, on the run's clock.
    pub until: Millis,
}

/// One product's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductLine {
    pub product_id: i32,
    /// When it was last read; `None`: not read yet.
    pub read_at: Option<Millis>,
    /// The database, read directly; `None`: that read failed.
    pub database: Option<StockAfter>,
    /// What the strategy's read path served (cache-aside: the cache on a
    /// hit), and whether it came from the cache.
    pub cache: Option<StockAfter>,
    pub from_cache: bool,
    /// The downstream consumer's view; `None`: no event yet.
    pub consumer: Option<StockAfter>,
    /// Since when a cache hit has been older than the database (the first
    /// stale read of the current streak).
    pub cache_stale_since: Option<Millis>,
    /// Since when the consumer's version has differed from the database's.
    pub consumer_differs_since: Option<Millis>,
}

/// Everything the live view shows at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveState {
    pub strategy: String,
    /// `(index, total)` while comparing.
    pub position: Option<(usize, usize)>,
    pub phase: String,
    pub elapsed: Millis,
    pub duration: Millis,
    /// Whether the main phase has begun (before it, only the first line).
    pub started: bool,
    pub caches: bool,
    pub publishes: bool,
    pub counts: Counts,
    /// Orders told committed whose event the consumer has not received;
    /// `None` where nothing is published.
    pub undelivered: Option<u64>,
    pub faults: Vec<ActiveFault>,
    pub products: Vec<ProductLine>,
    /// Products beyond [`MAX_PRODUCT_LINES`], and how many of them
    /// disagree now.
    pub more_products: usize,
    pub more_disagreeing: usize,
}

/// `985 v5`, `–` for nothing yet, `?` for a failed read.
fn value(v: Option<StockAfter>, missing: &str) -> String {
    v.map(|v| format!("{} v{}", v.quantity, v.version)).unwrap_or_else(|| missing.to_string())
}

fn secs(ms: Millis) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The live view as lines of at most `width` columns. Pure.
pub fn render(state: &LiveState, width: usize) -> String {
    let width = width.max(layout::MIN_WIDTH);
    let mut lines = Vec::new();

    // The first line: who, which phase, how far, and a bar in the rest.
    let position =
        state.position.filter(|(_, n)| *n > 1).map(|(i, n)| format!(" [{}/{}]", i + 1, n)).unwrap_or_default();
    let mut head = format!("{}{position} · {}", state.strategy, state.phase);
    if state.started {
        head.push_str(&format!(
            " · {:.1} of {:.1} s",
            state.elapsed.min(state.duration) as f64 / 1000.0,
            state.duration as f64 / 1000.0
        ));
    }
    let room = width.saturating_sub(layout::width(&head) + 1);
    if room >= 10 {
        let share = if state.duration == 0 { 1.0 } else { (state.elapsed as f64 / state.duration as f64).min(1.0) };
        let done = (share * room as f64).floor() as usize;
        let bar = if done >= room {
            "━".repeat(room)
        } else {
            format!("{}╸{}", "━".repeat(done), "─".repeat(room - done - 1))
        };
        head = format!("{head} {bar}");
    }
    lines.push(head);
    if !state.started {
        return lines.join("\n");
    }

    let c = state.counts;
    // "told": what the writers were told about their legs (a topic leg
    // counts as much as a database leg).
    let mut counts = format!(
        "orders {} · committed {} · told unknown {} · told fail {}",
        c.orders, c.committed, c.unknown, c.failed
    );
    if let Some(n) = state.undelivered {
        counts.push_str(&format!(" · not yet delivered {n}"));
    }
    if c.skipped > 0 {
        counts.push_str(&format!(" · beats with no order {}", c.skipped));
    }
    lines.extend(layout::wrap(&counts, width, "", "  "));

    let faults = if state.faults.is_empty() {
        "none".to_string()
    } else {
        state.faults.iter().map(|f| format!("{} until {}", f.what, secs(f.until))).collect::<Vec<_>>().join(" · ")
    };
    lines.extend(layout::wrap(&faults, width, "faults now: ", "  "));

    // One line per product, in columns.
    let mut rows: Vec<Vec<String>> = vec![Vec::new()];
    rows[0].push("product".into());
    rows[0].push("database".into());
    if state.caches {
        rows[0].push("cache".into());
    }
    if state.publishes {
        rows[0].push("consumer".into());
    }
    for p in &state.products {
        let mut row = vec![p.product_id.to_string()];
        if p.read_at.is_none() {
            rows.push(row);
            continue;
        }
        row.push(value(p.database, "?"));
        if state.caches {
            // A miss served the database's value: the cache had nothing.
            row.push(if p.from_cache { value(p.cache, "?") } else { "(miss)".into() });
        }
        if state.publishes {
            row.push(value(p.consumer, "–"));
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| layout::width(c)).max().unwrap_or(0))
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::from("  ");
        for (i, cell) in row.iter().enumerate() {
            let align = if i == 0 { Align::Left } else { Align::Right };
            line.push_str(&layout::pad(cell, widths[i], align));
            line.push_str("  ");
        }
        if n > 0 {
            let p = &state.products[n - 1];
            if p.read_at.is_none() {
                line.push_str("not read yet");
            }
            line.push_str(&marker(p, state.elapsed));
        }
        let line = line.trim_end().to_string();
        // A marker that does not fit is shortened, never wrapped.
        lines.push(fit(&line, width));
    }
    if state.more_products > 0 {
        let text =
            format!("+ {} more products, {} of them disagreeing now", state.more_products, state.more_disagreeing);
        lines.extend(layout::wrap(&text, width, "  ", "    "));
    }
    lines.join("\n")
}

/// `≠ cache 2 versions behind for 1.3 s`: where a product's stores disagree.
fn marker(p: &ProductLine, now: Millis) -> String {
    let mut parts = Vec::new();
    if let (Some(since), Some(served), Some(db)) = (p.cache_stale_since, p.cache, p.database) {
        parts.push(format!(
            "≠ cache {} behind for {}",
            versions(db.version - served.version),
            secs(now.saturating_sub(since))
        ));
    }
    if let (Some(since), Some(db)) = (p.consumer_differs_since, p.database) {
        let seen = p.consumer.map_or(0, |c| c.version);
        let gap = db.version - seen;
        let how = if gap > 0 { format!("{} behind", versions(gap)) } else { format!("{} ahead", versions(-gap)) };
        parts.push(format!("≠ consumer {how} for {}", secs(now.saturating_sub(since))));
    }
    parts.join(" ")
}

fn versions(n: i64) -> String {
    if n == 1 {
        "1 version".into()
    } else {
        format!("{n} versions")
    }
}

/// Cuts a line to `width` columns, ending in `…` when cut.
fn fit(line: &str, width: usize) -> String {
    if layout::width(line) <= width {
        return line.to_string();
    }
    let mut out = String::new();
    for c in line.chars() {
        let mut buf = [0u8; 4];
        if layout::width(&out) + layout::width(c.encode_utf8(&mut buf)) + 1 > width {
            break;
        }
        out.push(c);
    }
    format!("{}…", out.trim_end())
}

/// Folds the history's events, as they arrive, into what the live view
/// shows. Each event is looked at once; nothing rescans the history.
#[derive(Debug, Default)]
pub struct LiveTracker {
    counts: Counts,
    /// Per product, its line so far.
    products: BTreeMap<i32, ProductLine>,
    /// Orders told committed whose delivery has not been seen yet.
    pending: HashSet<OrderId>,
    /// How many events have been folded in.
    seen: usize,
}

impl LiveTracker {
    /// Folds in new events.
    pub fn absorb(&mut self, events: &[Event]) {
        self.seen += events.len();
        for event in events {
            match event {
                Event::Begin { .. } => self.counts.orders += 1,
                Event::Complete { order_id, leg, told, .. } => match (leg, told.outcome) {
                    (Leg::Db, Outcome::Ok) => {
                        self.counts.committed += 1;
                        self.pending.insert(*order_id);
                    }
                    (_, Outcome::Fail) => self.counts.failed += 1,
                    (_, Outcome::Unknown) => self.counts.unknown += 1,
                    _ => {}
                },
                Event::Read(r) => {
                    let line = self.products.entry(r.product_id).or_insert_with(|| ProductLine {
                        product_id: r.product_id,
                        read_at: None,
                        database: None,
                        cache: None,
                        from_cache: false,
                        consumer: None,
                        cache_stale_since: None,
                        consumer_differs_since: None,
                    });
                    line.read_at = Some(r.at);
                    line.database = r.truth;
                    line.cache = r.served;
                    line.from_cache = r.from_cache;
                    line.consumer = r.projection;
                    // A streak of disagreement starts at its first sample and
                    // ends at the first sample that agrees.
                    let stale =
                        r.from_cache && matches!((r.served, r.truth), (Some(s), Some(t)) if s.version < t.version);
                    line.cache_stale_since = if stale { line.cache_stale_since.or(Some(r.at)) } else { None };
                    // Before its first event the consumer holds version 0.
                    let differs = r.truth.is_some_and(|t| t.version != r.projection.map_or(0, |p| p.version));
                    line.consumer_differs_since =
                        if differs { line.consumer_differs_since.or(Some(r.at)) } else { None };
                }
                _ => {}
            }
        }
    }

    /// How many events have been folded in: where to read from next.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Drops the orders the consumer has received from the pending set.
    pub fn check_deliveries(&mut self, downstream: &Downstream) {
        downstream.retain_undelivered(&mut self.pending);
    }

    /// The state to draw at `elapsed` ms of `view`'s run.
    pub fn state(&self, view: &RunView, phase: &str, elapsed: Millis, position: Option<(usize, usize)>) -> LiveState {
        let at = Duration::from_millis(elapsed);
        let mut faults: Vec<ActiveFault> = view
            .windows
            .iter()
            .filter(|w| w.contains(at))
            .map(|w| ActiveFault {
                what: format!("{} {}", w.link, w.fault.label()),
                until: w.until.as_millis() as Millis,
            })
            .collect();
        // A crashed component is a fault too, until it restarts — for the
        // strategies that have it.
        for c in &view.crashes {
            let applies = match c.component {
                Component::Writer => true,
                Component::Relay => view.strategy == Strategy::Outbox,
                Component::Connector => {
                    matches!(view.strategy, Strategy::Cdc | Strategy::OutboxCdc | Strategy::CacheCdc)
                }
                Component::Consumer => view.strategy.publishes(),
            };
            if applies && c.at <= at && at < c.at + c.restart_after {
                faults.push(ActiveFault {
                    what: format!("{} crashed", c.component.as_str()),
                    until: (c.at + c.restart_after).as_millis() as Millis,
                });
            }
        }
        let all: Vec<ProductLine> = (1..=view.products as i32)
            .map(|id| {
                self.products.get(&id).cloned().unwrap_or(ProductLine {
                    product_id: id,
                    read_at: None,
                    database: None,
                    cache: None,
                    from_cache: false,
                    consumer: None,
                    cache_stale_since: None,
                    consumer_differs_since: None,
                })
            })
            .collect();
        let more: Vec<&ProductLine> = all.iter().skip(MAX_PRODUCT_LINES).collect();
        LiveState {
            strategy: view.strategy.name().to_string(),
            position,
            phase: phase.to_string(),
            elapsed,
            duration: view.duration.as_millis() as Millis,
            started: true,
            caches: view.strategy.caches(),
            publishes: view.strategy.publishes(),
            counts: self.counts,
            undelivered: view.strategy.publishes().then_some(self.pending.len() as u64),
            faults,
            more_products: more.len(),
            more_disagreeing: more
                .iter()
                .filter(|p| p.cache_stale_since.is_some() || p.consumer_differs_since.is_some())
                .count(),
            products: all.into_iter().take(MAX_PRODUCT_LINES).collect(),
        }
    }
}

/// The display the log writer draws above, while one is shown.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// What the display knows of the current run.
#[derive(Debug, Default)]
struct Inner {
    position: Option<(usize, usize)>,
    strategy: Option<Strategy>,
    phase: String,
    view: Option<RunView>,
    tracker: LiveTracker,
    /// The run's clock at the last main-phase tick.
    elapsed: Millis,
}

/// The live view for one invocation (one run, or a whole compare).
pub struct Progress {
    bar: ProgressBar,
    inner: Mutex<Inner>,
}

impl Progress {
    /// A display on stderr, hidden when stderr is not a terminal.
    pub fn stderr() -> Progress {
        let progress = Progress::with_target(ProgressDrawTarget::stderr());
        if !progress.bar.is_hidden() {
            *ACTIVE.lock().expect("progress mutex poisoned") = Some(progress.bar.clone());
        }
        progress
    }

    /// A display that draws nothing (tests, libraries).
    pub fn hidden() -> Progress {
        Progress::with_target(ProgressDrawTarget::hidden())
    }

    fn with_target(target: ProgressDrawTarget) -> Progress {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
        Progress { bar, inner: Mutex::new(Inner::default()) }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("progress mutex poisoned")
    }

    /// Sets the `[i/n]` shown after the strategy while comparing.
    pub fn set_position(&self, index: usize, total: usize) {
        self.inner().position = Some((index, total));
    }

    /// A new phase began.
    pub fn phase(&self, strategy: Strategy, phase: &str) {
        tracing::info!("{strategy}: {phase}");
        let mut inner = self.inner();
        if phase == "prepare" {
            inner.view = None;
            inner.tracker = LiveTracker::default();
            inner.elapsed = 0;
        }
        inner.strategy = Some(strategy);
        inner.phase = phase.to_string();
        self.draw(&inner);
    }

    /// The main phase of `view`'s run begins.
    pub fn start_main(&self, view: RunView) {
        let mut inner = self.inner();
        inner.phase = "main".into();
        inner.strategy = Some(view.strategy);
        inner.view = Some(view);
        inner.tracker = LiveTracker::default();
        self.draw(&inner);
    }

    /// The main phase's periodic update: reads the events appended since
    /// the last one, and which orders the consumer has received since.
    pub fn main(&self, history: &History, downstream: Option<&Downstream>) {
        if self.bar.is_hidden() {
            return;
        }
        let mut inner = self.inner();
        let (events, _) = history.events_since(inner.tracker.seen());
        inner.tracker.absorb(&events);
        inner.tracker.counts.skipped = history.skipped().total();
        if let Some(d) = downstream {
            inner.tracker.check_deliveries(d);
        }
        inner.elapsed = history.clock().now();
        self.draw(&inner);
    }

    fn draw(&self, inner: &Inner) {
        if self.bar.is_hidden() {
            return;
        }
        let width = console::Term::stderr().size_checked().map_or(80, |(_, w)| w as usize);
        let state = match (&inner.view, inner.strategy) {
            (Some(view), _) => inner.tracker.state(view, &inner.phase, inner.elapsed, inner.position),
            (None, Some(strategy)) => LiveState {
                strategy: strategy.name().to_string(),
                position: inner.position,
                phase: inner.phase.clone(),
                elapsed: 0,
                duration: 0,
                started: false,
                caches: false,
                publishes: false,
                counts: Counts::default(),
                undelivered: None,
                faults: Vec::new(),
                products: Vec::new(),
                more_products: 0,
                more_disagreeing: 0,
            },
            (None, None) => return,
        };
        // One column spare: a line exactly as wide as the terminal makes
        // some terminals wrap before the next redraw.
        self.bar.set_message(render(&state, width.saturating_sub(1)));
    }

    /// The run of `strategy` is over.
    pub fn done(&self, strategy: Strategy) {
        tracing::info!("{strategy}: done");
    }

    /// Removes the display (before the report is printed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        let mut active = ACTIVE.lock().expect("progress mutex poisoned");
        if active.as_ref().is_some_and(|b| b.is_finished()) {
            *active = None;
        }
    }
}

/// A `tracing` writer for stderr that draws each log line above the live
/// view (hiding it, writing, drawing it again) rather than through it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().expect("progress mutex poisoned").clone();
        match active {
            Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stderr().write_all(buf))?,
            _ => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Order, ReadSample, Told};
    use uuid::Uuid;

    fn read(at: Millis, product_id: i32, truth: i64, projection: Option<i64>) -> Event {
        let v = |version: i64| StockAfter { quantity: 1000 - version, version };
        Event::Read(ReadSample {
            at,
            product_id,
            served: Some(v(truth)),
            from_cache: false,
            filled_cache: false,
            truth: Some(v(truth)),
            projection: projection.map(v),
            read_ms: None,
        })
    }

    #[test]
    fn the_tracker_counts_and_times_a_disagreement() {
        let id = Uuid::from_u128(1);
        let mut t = LiveTracker::default();
        t.absorb(&[
            Event::Begin { at: 0, order: Order { order_id: id, product_id: 1, delta: -1, writer: 0, seq: 0 } },
            Event::Complete { at: 5, order_id: id, leg: Leg::Db, told: Told::ok() },
            Event::Complete { at: 9, order_id: id, leg: Leg::Topic, told: Told::unknown("timed out") },
            read(100, 1, 1, None),
        ]);
        t.absorb(&[read(300, 1, 1, None)]);
        assert_eq!(t.counts, Counts { orders: 1, committed: 1, failed: 0, unknown: 1, skipped: 0 });
        assert_eq!(t.seen(), 5);
        assert_eq!(t.pending.len(), 1);
        let line = &t.products[&1];
        assert_eq!(line.consumer_differs_since, Some(100), "the streak starts at its first sample");
        t.absorb(&[read(400, 1, 1, Some(1))]);
        assert_eq!(t.products[&1].consumer_differs_since, None, "agreement ends it");
    }

    #[test]
    fn a_product_nothing_happened_to_agrees_with_a_consumer_that_saw_nothing() {
        let mut t = LiveTracker::default();
        t.absorb(&[read(100, 2, 0, None)]);
        assert_eq!(t.products[&2].consumer_differs_since, None);
    }

    #[test]
    fn long_lines_are_cut_with_an_ellipsis() {
        assert_eq!(fit("abcdefghij", 6), "abcde…");
        assert_eq!(fit("abc", 6), "abc");
    }
}
