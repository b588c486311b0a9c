//! One run drawn as SVG on the time axis every run of a compare shares:
//! the fault lanes, the crashes, every order as a mark at the height of its
//! write latency, and each product's versions in the database against the
//! consumer's (and the cache's) view.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::super::timeline::{OrderMark, Point, ProductTimeline, Timeline};
use super::{anomalous, colour, esc, fault_colour, secs, short, Badge, Picture, RunPicture};
use crate::scenario::schedule::{Fault, Schedule};

/// The SVG's coordinate system: 1000 units wide, whatever the screen.
const WIDTH: f64 = 1000.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 18.0;
const LANE: f64 = 16.0;
/// Crashes get two rows: crashes above, restarts below.
const CRASH_LANE: f64 = 24.0;
/// Where lane names start.
const LABEL_X: f64 = 6.0;
const ORDERS_HEIGHT: f64 = 170.0;
const PRODUCT_HEIGHT: f64 = 44.0;
/// Products drawn per strategy; the others are named in a line.
const MAX_PRODUCTS: usize = 12;

/// The horizontal scale shared by every strategy: 0 ms to `end` ms.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scale {
    pub(super) end: f64,
}

impl Scale {
    fn x(&self, at: u64) -> f64 {
        LEFT + (at as f64 / self.end).min(1.0) * (WIDTH - LEFT - RIGHT)
    }

    /// Tick spacing in ms: at most about 12 ticks.
    fn tick(&self) -> u64 {
        [100u64, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000]
            .into_iter()
            .find(|t| self.end / (*t as f64) <= 12.0)
            .unwrap_or(1_800_000)
    }
}

/// The last instant anything happened in any run, rounded up to a second.
pub(super) fn time_end(picture: &Picture) -> u64 {
    let mut end = picture.duration_ms;
    for run in &picture.runs {
        let Some(t) = &run.timeline else { continue };
        for o in &t.orders {
            end = end.max(o.begun_at).max(o.ended_at.unwrap_or(0)).max(o.delivered_at.unwrap_or(0));
        }
        for p in &t.products {
            for point in p.database.iter().chain(&p.consumer).chain(&p.cache).chain(&p.cache_fills) {
                end = end.max(point.at);
            }
        }
        for c in &t.crashes {
            end = end.max(c.at);
        }
        for f in &run.faults {
            end = end.max(f.at);
        }
    }
    end.div_ceil(1000).max(1) * 1000
}

/// A fault window on a run's clock: when it was applied, or scheduled.
struct Span {
    link: String,
    from: u64,
    until: u64,
    label: &'static str,
    describe: String,
}

/// The windows as the run applied them (the schedule's times when the run
/// logged none — a picture of a report without fault logs).
fn spans(schedule: &Schedule, run: &RunPicture, end: u64) -> Vec<Span> {
    schedule
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let added = run.faults.iter().find(|f| f.window == i && f.action == "added").map(|f| f.at);
            let removed = run.faults.iter().find(|f| f.window == i && f.action == "removed").map(|f| f.at);
            let planned = (w.from.as_millis() as u64, w.until.as_millis() as u64);
            let (from, until) = match (added, removed) {
                (Some(a), Some(r)) => (a, r),
                // Cut short by the heal at the end of the main phase.
                (Some(a), None) => (a, planned.1.min(end)),
                _ => planned,
            };
            let what = match &w.fault {
                Fault::Down => "down (proxy disabled)".to_string(),
                Fault::Toxic { toxic } => format!("{} {}", toxic.kind.type_name(), toxic.stream),
            };
            Span {
                link: w.link.clone(),
                from,
                until,
                label: w.fault.label(),
                describe: format!("{} {what}, {}–{}", w.link, secs(from), secs(until)),
            }
        })
        .collect()
}

/// The products to draw: those that ever disagreed first, then by id, up to
/// [`MAX_PRODUCTS`].
fn chosen_products(timeline: &Timeline) -> (Vec<&ProductTimeline>, usize) {
    let mut products: Vec<&ProductTimeline> = timeline.products.iter().collect();
    if products.len() > MAX_PRODUCTS {
        products.sort_by_key(|p| (drift_spans(p).is_empty(), p.product_id));
        products.truncate(MAX_PRODUCTS);
        products.sort_by_key(|p| p.product_id);
    }
    let hidden = timeline.products.len() - products.len();
    (products, hidden)
}

/// A step function over time: at each instant, the highest version seen
/// so far. Commits acknowledged out of order (by a few milliseconds) or
/// events received out of order never make it go backwards.
struct Steps(Vec<(u64, i64)>);

impl Steps {
    fn new(points: &[Point]) -> Steps {
        let mut sorted: Vec<(u64, i64)> = points.iter().map(|p| (p.at, p.version)).collect();
        sorted.sort_unstable();
        let mut steps: Vec<(u64, i64)> = Vec::with_capacity(sorted.len());
        for (at, version) in sorted {
            let highest = steps.last().map_or(i64::MIN, |s| s.1);
            match steps.last_mut() {
                Some(last) if last.0 == at => last.1 = last.1.max(version),
                _ if version > highest => steps.push((at, version)),
                _ => {}
            }
        }
        Steps(steps)
    }

    /// The value at `at`: `None` before the first step.
    fn at(&self, at: u64) -> Option<i64> {
        let n = self.0.partition_point(|s| s.0 <= at);
        (n > 0).then(|| self.0[n - 1].1)
    }

    /// A step line, from the first step to `end` ms.
    fn path(&self, scale: Scale, end: u64, y: impl Fn(i64) -> f64) -> String {
        let mut d = String::new();
        for (i, (at, version)) in self.0.iter().enumerate() {
            let x = scale.x(*at);
            if i == 0 {
                let _ = write!(d, "M{x:.1},{:.1}", y(*version));
            } else {
                let _ = write!(d, " H{x:.1} V{:.1}", y(*version));
            }
        }
        if !self.0.is_empty() {
            let _ = write!(d, " H{:.1}", scale.x(end));
        }
        d
    }
}

/// The spans in which the consumer's version differs from the database's.
fn drift_spans(product: &ProductTimeline) -> Vec<(u64, u64)> {
    let (db, consumer) = (Steps::new(&product.database), Steps::new(&product.consumer));
    let mut times: Vec<u64> = db.0.iter().chain(&consumer.0).map(|s| s.0).collect();
    times.sort_unstable();
    times.dedup();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (i, t) in times.iter().enumerate() {
        // Before its first event the consumer knows the seeded stock, version 0.
        if db.at(*t).unwrap_or(0) != consumer.at(*t).unwrap_or(0) {
            let until = times.get(i + 1).copied().unwrap_or(u64::MAX);
            match spans.last_mut() {
                Some(last) if last.1 == *t => last.1 = until,
                _ => spans.push((*t, until)),
            }
        }
    }
    spans
}

/// The vertical position of a write latency (log scale, 1 ms to the top).
struct LatencyAxis {
    top: f64,
    height: f64,
    max_ms: f64,
}

impl LatencyAxis {
    fn y(&self, ms: f64) -> f64 {
        let span = self.max_ms.log10();
        let v = ms.max(1.0).log10().min(span) / span;
        let (high, low) = (self.top + 26.0, self.top + self.height - 10.0);
        low - v * (low - high)
    }

    /// Orders that never learned an outcome sit on a row of their own.
    fn unanswered(&self) -> f64 {
        self.top + 10.0
    }
}

fn order_title(run: &str, o: &OrderMark) -> String {
    let mut parts = vec![format!(
        "{run} · order {} · product {}, {} units · began {}",
        short(&o.order_id),
        o.product_id,
        o.delta,
        secs(o.begun_at)
    )];
    for (leg, l) in &o.legs {
        let at = l.at.map(|at| format!(" at {}", secs(at))).unwrap_or_else(|| " (never answered)".into());
        parts.push(format!("{}: {}{at}", leg.as_str(), l.outcome.as_str()));
    }
    if let Some(v) = o.version {
        parts.push(format!("committed as version {v}"));
    }
    if let Some(at) = o.delivered_at {
        parts.push(format!("delivered {}", secs(at)));
    }
    parts.push(format!("→ {}", o.fate.key().replace('_', " ")));
    parts.join(" · ")
}

pub(super) fn svg(
    picture: &Picture,
    run: &RunPicture,
    timeline: &Timeline,
    scale: Scale,
    badges: &[Badge],
    id: &str,
    html: &mut String,
) {
    let end = scale.end as u64;
    let spans = spans(&picture.schedule, run, picture.duration_ms);
    // Every link of the schedule gets a lane, in every strategy alike.
    let mut links: Vec<&str> = Vec::new();
    for w in &picture.schedule.windows {
        if !links.contains(&w.link.as_str()) {
            links.push(&w.link);
        }
    }
    let (products, hidden) = chosen_products(timeline);
    let axis_top = 18.0;
    let faults_top = axis_top + 8.0;
    let crashes_top = faults_top + links.len() as f64 * (LANE + 3.0);
    let has_crashes = !timeline.crashes.is_empty() || !picture.schedule.crashes.is_empty();
    let orders_top = crashes_top + if has_crashes { CRASH_LANE + 5.0 } else { 2.0 };
    let products_top = orders_top + ORDERS_HEIGHT + 10.0;
    let height = products_top + products.len() as f64 * (PRODUCT_HEIGHT + 8.0) + 22.0;
    let _ = writeln!(
        html,
        "<svg class=\"timeline\" data-run=\"{}\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" \
         aria-label=\"timeline of {}\">",
        esc(&run.strategy),
        esc(&run.strategy)
    );

    // The time axis, its grid, and the end of the main phase.
    let tick = scale.tick();
    let mut t = 0;
    while t <= end {
        let x = scale.x(t);
        let _ = writeln!(
            html,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{axis_top}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text class=\"tick\" \
             x=\"{x:.1}\" y=\"12\">{}</text>",
            height - 18.0,
            if tick < 1000 { format!("{:.1} s", t as f64 / 1000.0) } else { format!("{} s", t / 1000) }
        );
        t += tick;
    }
    let main_end = scale.x(picture.duration_ms);
    let _ = writeln!(
        html,
        "<rect class=\"after\" x=\"{main_end:.1}\" y=\"{axis_top}\" width=\"{:.1}\" height=\"{:.1}\"/>\
         <line class=\"main-end\" x1=\"{main_end:.1}\" y1=\"{axis_top}\" x2=\"{main_end:.1}\" y2=\"{:.1}\"/>\
         <text class=\"lane-label\" x=\"{:.1}\" y=\"{:.1}\">heal, drain</text>",
        (scale.x(end) - main_end).max(0.0),
        height - 18.0 - axis_top,
        height - 18.0,
        // Kept inside the plot when the main phase ends near its edge.
        (main_end + 3.0).min(WIDTH - 58.0),
        height - 6.0
    );

    // Fault windows, one lane per link.
    for (i, link) in links.iter().enumerate() {
        let y = faults_top + i as f64 * (LANE + 3.0);
        let _ = writeln!(
            html,
            "<text class=\"lane-label\" x=\"{LABEL_X}\" y=\"{:.1}\">{}</text><rect class=\"lane\" x=\"{LEFT}\" \
             y=\"{y:.1}\" width=\"{:.1}\" height=\"{LANE}\"/>",
            y + LANE - 4.0,
            esc(link),
            WIDTH - LEFT - RIGHT
        );
        for s in spans.iter().filter(|s| s.link == *link) {
            let (x1, x2) = (scale.x(s.from), scale.x(s.until));
            let w = (x2 - x1).max(1.5);
            let _ = write!(
                html,
                "<g class=\"fault\" data-link=\"{}\"><rect x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" \
                 height=\"{LANE}\" fill=\"{}\"><title>{}</title></rect>",
                esc(link),
                fault_colour(s.label),
                esc(&s.describe)
            );
            // The label inside, if it fits (about 5.5 units a character).
            if w > s.label.len() as f64 * 5.6 + 6.0 {
                let _ = write!(
                    html,
                    "<text class=\"fault-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    x1 + 3.0,
                    y + LANE - 4.5,
                    s.label
                );
            }
            html.push_str("</g>\n");
        }
    }

    // Crashes: a line through the orders and products, and a label — a
    // crash on the lane's first row, a restart on its second.
    if has_crashes {
        let _ = writeln!(
            html,
            "<text class=\"lane-label\" x=\"{LABEL_X}\" y=\"{:.1}\">crashes</text><rect class=\"lane\" \
             x=\"{LEFT}\" y=\"{crashes_top:.1}\" width=\"{:.1}\" height=\"{CRASH_LANE}\"/>",
            crashes_top + 13.0,
            WIDTH - LEFT - RIGHT
        );
        if timeline.crashes.is_empty() {
            let _ = writeln!(
                html,
                "<text class=\"axis-note\" x=\"{:.1}\" y=\"{:.1}\">no component of this strategy crashed</text>",
                LEFT + 4.0,
                crashes_top + 13.0
            );
        }
        for c in &timeline.crashes {
            let x = scale.x(c.at);
            let (what, row) = if c.restarted { ("restarted", 20.0) } else { ("crashed", 10.0) };
            // Near the right edge the label reads leftwards from the line,
            // so that it is not cut off.
            let (text_x, anchor) = if x > WIDTH - RIGHT - 120.0 { (x - 2.0, "end") } else { (x + 2.0, "start") };
            let _ = writeln!(
                html,
                "<g class=\"crash {what}\"><line x1=\"{x:.1}\" y1=\"{crashes_top:.1}\" x2=\"{x:.1}\" \
                 y2=\"{:.1}\"/><text x=\"{text_x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{} {} {what}</text>\
                 <title>the {} {what} at {}</title></g>",
                height - 18.0,
                crashes_top + row,
                if c.restarted { "▲" } else { "✕" },
                esc(&c.component),
                esc(&c.component),
                secs(c.at)
            );
        }
    }

    // Orders: Jepsen's latency plot, one mark per order.
    let max_ms = timeline
        .orders
        .iter()
        .filter_map(|o| o.ended_at.map(|e| e.saturating_sub(o.begun_at) as f64))
        .fold(1000.0_f64, f64::max)
        .max(10.0);
    let max_ms = 10f64.powf(max_ms.log10().ceil());
    let axis = LatencyAxis { top: orders_top, height: ORDERS_HEIGHT, max_ms };
    let _ = writeln!(
        html,
        "<rect class=\"lane\" x=\"{LEFT}\" y=\"{orders_top:.1}\" width=\"{:.1}\" height=\"{ORDERS_HEIGHT}\"/>\
         <text class=\"lane-label\" x=\"{LABEL_X}\" y=\"{:.1}\">orders</text><text class=\"axis-note\" \
         x=\"{LABEL_X}\" y=\"{:.1}\">one mark each:</text><text class=\"axis-note\" x=\"{LABEL_X}\" \
         y=\"{:.1}\">→ when it began</text><text class=\"axis-note\" x=\"{LABEL_X}\" y=\"{:.1}\">↑ how long it \
         took</text><text class=\"tick-y\" x=\"{:.1}\" y=\"{:.1}\">no answer</text>",
        WIDTH - LEFT - RIGHT,
        orders_top + ORDERS_HEIGHT / 2.0 - 14.0,
        orders_top + ORDERS_HEIGHT / 2.0,
        orders_top + ORDERS_HEIGHT / 2.0 + 11.0,
        orders_top + ORDERS_HEIGHT / 2.0 + 22.0,
        LEFT - 4.0,
        axis.unanswered() + 3.0
    );
    let mut decade = 1.0;
    while decade <= max_ms {
        let y = axis.y(decade);
        let label = if decade >= 1000.0 { format!("{} s", decade / 1000.0) } else { format!("{decade} ms") };
        let _ = writeln!(
            html,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text class=\"tick-y\" \
             x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 3.0
        );
        decade *= 10.0;
    }
    // Ordinary orders first, anomalies on top of them.
    let mut marks: Vec<&OrderMark> = timeline.orders.iter().collect();
    marks.sort_by_key(|o| anomalous(o.fate));
    let mut badge_at: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    for o in marks {
        let x = scale.x(o.begun_at);
        let y = match o.ended_at {
            Some(e) => axis.y(e.saturating_sub(o.begun_at) as f64),
            None => axis.unanswered(),
        };
        let r = if anomalous(o.fate) { 4.5 } else { 3.0 };
        let _ = writeln!(
            html,
            "<circle class=\"mark{}\" id=\"mark-{id}-{}\" data-order=\"{}\" data-fate=\"{}\" cx=\"{x:.1}\" \
             cy=\"{y:.1}\" r=\"{r}\" fill=\"{}\"><title>{}</title></circle>",
            if o.ended_at.is_none() { " unanswered" } else { "" },
            o.order_id.simple(),
            o.order_id,
            o.fate.key(),
            colour(o.fate),
            esc(&order_title(&run.strategy, o))
        );
        for b in badges.iter().filter(|b| b.order == Some(o.order_id)) {
            badge_at.insert(b.number, (x, y));
        }
    }

    // Products: the database's version, the consumer's view, the cache.
    for (i, p) in products.iter().enumerate() {
        let top = products_top + i as f64 * (PRODUCT_HEIGHT + 8.0);
        let max_version = p
            .database
            .iter()
            .chain(&p.consumer)
            .chain(&p.cache)
            .chain(&p.cache_fills)
            .map(|p| p.version)
            .max()
            .unwrap_or(0)
            .max(1);
        let y =
            |version: i64| top + PRODUCT_HEIGHT - 4.0 - (version as f64 / max_version as f64) * (PRODUCT_HEIGHT - 8.0);
        let _ = writeln!(
            html,
            "<g class=\"product\" id=\"product-{id}-{}\" data-product=\"{}\"><rect class=\"lane\" x=\"{LEFT}\" \
             y=\"{top:.1}\" width=\"{:.1}\" height=\"{PRODUCT_HEIGHT}\"/><text class=\"lane-label\" \
             x=\"{LABEL_X}\" y=\"{:.1}\">product {}</text><text class=\"axis-note\" x=\"{LABEL_X}\" \
             y=\"{:.1}\">versions 0–{max_version}</text>",
            p.product_id,
            p.product_id,
            WIDTH - LEFT - RIGHT,
            top + PRODUCT_HEIGHT / 2.0 - 2.0,
            p.product_id,
            top + PRODUCT_HEIGHT / 2.0 + 10.0
        );
        if timeline.publishes {
            for (from, until) in drift_spans(p) {
                let (x1, x2) = (scale.x(from), scale.x(until.min(end)));
                let _ = writeln!(
                    html,
                    "<rect class=\"drift\" x=\"{x1:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{PRODUCT_HEIGHT}\">\
                     <title>product {}: the consumer's view differs from the database, {}–{}</title></rect>",
                    (x2 - x1).max(0.8),
                    p.product_id,
                    secs(from),
                    if until == u64::MAX { "the end".to_string() } else { secs(until) }
                );
            }
        }
        let db = Steps::new(&p.database);
        let _ = writeln!(html, "<path class=\"db\" d=\"{}\"/>", db.path(scale, end, y));
        if timeline.publishes {
            // Before its first event the consumer holds version 0.
            let mut consumer = vec![Point { at: 0, version: 0, quantity: 0 }];
            consumer.extend(p.consumer.iter().copied());
            let _ = writeln!(html, "<path class=\"consumer\" d=\"{}\"/>", Steps::new(&consumer).path(scale, end, y));
        }
        for c in &p.cache {
            let stale = db.at(c.at).is_some_and(|db| c.version < db);
            let _ = writeln!(
                html,
                "<circle class=\"cache{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\"><title>{} served from the cache: \
                 {} (v{}){}</title></circle>",
                if stale { " stale" } else { "" },
                scale.x(c.at),
                y(c.version),
                secs(c.at),
                c.quantity,
                c.version,
                if stale { ", older than the database" } else { "" }
            );
        }
        for f in &p.cache_fills {
            let _ = writeln!(
                html,
                "<rect class=\"fill\" x=\"{:.1}\" y=\"{:.1}\" width=\"4\" height=\"4\"><title>{} a reader filled \
                 the cache with {} (v{})</title></rect>",
                scale.x(f.at) - 2.0,
                y(f.version) - 2.0,
                secs(f.at),
                f.quantity,
                f.version
            );
        }
        html.push_str("</g>\n");
        for b in badges.iter().filter(|b| b.order.is_none() && b.product == p.product_id) {
            badge_at.insert(b.number, (WIDTH - RIGHT - 8.0, top + 9.0));
        }
    }
    if hidden > 0 {
        let _ = writeln!(
            html,
            "<text class=\"axis-note\" x=\"{LEFT}\" y=\"{:.1}\">{hidden} more products not \
             drawn (none of them drifted)</text>",
            height - 4.0
        );
    }

    // The stories' numbers beside the marks they explain.
    for (number, (x, y)) in badge_at {
        let (bx, by) = ((x + 10.0).min(WIDTH - 8.0), (y - 10.0).max(8.0));
        let _ = writeln!(
            html,
            "<a href=\"#story-{id}-{number}\"><g class=\"badge\"><line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{bx:.1}\" \
             y2=\"{by:.1}\"/><circle cx=\"{bx:.1}\" cy=\"{by:.1}\" r=\"7\"/><text x=\"{bx:.1}\" y=\"{:.1}\">{number}\
             </text></g></a>",
            by + 3.5
        );
    }
    html.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(at: u64, version: i64) -> Point {
        Point { at, version, quantity: 1000 - version }
    }

    #[test]
    fn a_step_function_never_goes_back() {
        // Version 2's commit was acknowledged a moment before version 1's.
        let steps = Steps::new(&[p(0, 0), p(105, 2), p(110, 1), p(300, 3)]);
        assert_eq!(steps.0, vec![(0, 0), (105, 2), (300, 3)]);
        assert_eq!(steps.at(50), Some(0));
        assert_eq!(steps.at(200), Some(2));
        assert_eq!(Steps::new(&[p(10, 1)]).at(5), None);
    }

    #[test]
    fn drift_opens_when_the_database_moves_and_closes_when_the_consumer_follows() {
        let product = ProductTimeline {
            product_id: 1,
            database: vec![p(0, 0), p(100, 1), p(500, 2)],
            consumer: vec![p(140, 1), p(900, 2)],
            ..Default::default()
        };
        assert_eq!(drift_spans(&product), vec![(100, 140), (500, 900)]);
        // A lost event: the drift never closes.
        let lost = ProductTimeline { consumer: vec![p(140, 1)], ..product };
        assert_eq!(drift_spans(&lost), vec![(100, 140), (500, u64::MAX)]);
    }
}
