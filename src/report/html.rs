//! The picture of a run (`--html FILE`, or `dualwrite report --from
//! r.json --html r.html`): one self-contained HTML file — inline CSS and
//! SVG, no script, nothing fetched — that opens by double-click.
//!
//! Per strategy, on one time axis shared by every strategy of a compare:
//! the fault windows per link and the crashes; every order as a mark placed
//! at the moment it began and at the height of its write latency (Jepsen's
//! latency plot), coloured by its fate; and per product the database's
//! version as a line, with what the downstream consumer (and the cache)
//! believed over it, the gaps shaded, so drift is seen opening and
//! closing. The stories sit beside the marks they explain, numbered alike.
//!
//! The picture is drawn from the report's JSON ([`Picture`] reads it), so a
//! picture written during a run and one rendered later from `--json` are
//! the same, and the JSON is proven to carry everything the picture shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::timeline::{Fate, OrderMark, Point, ProductTimeline, Timeline};
use super::Report;
use crate::scenario::schedule::{Fault, Schedule};

/// The part of the report's JSON the picture reads. Unknown fields are
/// ignored, so newer reports stay readable.
#[derive(Debug, Clone, Deserialize)]
pub struct Picture {
    pub seed: u64,
    pub scenario: String,
    pub duration_ms: u64,
    pub schedule: Schedule,
    pub runs: Vec<RunPicture>,
}

/// One strategy's part of the picture.
#[derive(Debug, Clone, Deserialize)]
pub struct RunPicture {
    pub strategy: String,
    pub verdict: String,
    pub expected: String,
    pub as_expected: bool,
    #[serde(default)]
    pub reasons: Vec<String>,
    pub orders: OrdersPicture,
    pub anomalies: BTreeMap<String, Option<u64>>,
    #[serde(default)]
    pub unknown: BTreeMap<String, UnknownPicture>,
    pub latency_ms: LatencyPicture,
    /// Absent from reports written before it was counted.
    #[serde(default)]
    pub redeliveries: Option<crate::reconcile::Redeliveries>,
    #[serde(default)]
    pub faults: Vec<AppliedPicture>,
    #[serde(default)]
    pub stories: Vec<StoryPicture>,
    /// Absent from reports written before the timeline existed.
    pub timeline: Option<Timeline>,
}

/// A figure the run could not count (`?`): why, and how many were seen.
#[derive(Debug, Clone, Deserialize)]
pub struct UnknownPicture {
    pub reason: String,
    #[serde(default)]
    pub at_least: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct OrdersPicture {
    pub attempted: u64,
    pub committed: u64,
    pub acknowledged: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct LatencyPicture {
    pub write_p50: Option<f64>,
    pub write_p99: Option<f64>,
    pub event_lag_p50: Option<f64>,
    pub event_lag_p99: Option<f64>,
}

/// A fault as the executor applied it.
#[derive(Debug, Clone, Deserialize)]
pub struct AppliedPicture {
    pub window: usize,
    pub at: u64,
    pub action: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoryPicture {
    pub anomaly: String,
    #[serde(default)]
    pub order_id: Option<uuid::Uuid>,
    pub product_id: i32,
    pub text: String,
}

/// Why a picture cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("the file is not a dualwrite report (written with --json)")]
    NotAReport(#[source] serde_json::Error),
    #[error("run {0} has no timeline: the report was written by an older dualwrite; run it again with --json")]
    NoTimeline(String),
}

impl Picture {
    /// The picture of a report, read through its JSON.
    pub fn of(report: &Report) -> Result<Picture, PictureError> {
        let json = serde_json::to_value(report).map_err(PictureError::NotAReport)?;
        Picture::from_json(json)
    }

    /// The picture of a report's JSON.
    pub fn from_json(json: serde_json::Value) -> Result<Picture, PictureError> {
        let picture: Picture = serde_json::from_value(json).map_err(PictureError::NotAReport)?;
        if let Some(run) = picture.runs.iter().find(|r| r.timeline.is_none()) {
            return Err(PictureError::NoTimeline(run.strategy.clone()));
        }
        Ok(picture)
    }
}

/// A fate's colour (Okabe and Ito's palette, readable with the common
/// colour blindnesses).
pub fn colour(fate: Fate) -> &'static str {
    match fate {
        Fate::Delivered => "#009e73",
        Fate::Committed => "#56b4e9",
        Fate::RolledBack => "#a0a0a0",
        Fate::Lost => "#d55e00",
        Fate::Ghost => "#cc79a7",
        Fate::Duplicate => "#e69f00",
        Fate::Recovered => "#0072b2",
        Fate::FalseFailure => "#f0e442",
        Fate::Unknown => "#000000",
    }
}

/// Whether a fate is an anomaly (drawn larger, so that it stands out).
fn anomalous(fate: Fate) -> bool {
    !matches!(fate, Fate::Delivered | Fate::Committed | Fate::RolledBack)
}

/// A fault's colour, by its kind.
fn fault_colour(label: &str) -> &'static str {
    match label {
        "down" => "#7f1d1d",
        "reset_peer" => "#dc2626",
        "timeout" => "#7c3aed",
        "latency" => "#d97706",
        "bandwidth" | "slicer" | "limit_data" | "slow_close" => "#0891b2",
        _ => "#6b7280",
    }
}

/// `8cdf89dd`: enough of an order id to find it.
fn short(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

/// Text made safe for HTML and SVG.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An id fragment from a strategy name.
fn slug(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

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
struct Scale {
    end: f64,
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
fn time_end(picture: &Picture) -> u64 {
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

/// Renders the whole picture as one HTML document.
pub fn render(picture: &Picture) -> String {
    let end = time_end(picture);
    let scale = Scale { end: end as f64 };
    let command = if picture.runs.len() > 1 { "compare" } else { "run" };
    let mut html = String::new();
    let title = format!("dualwrite {command} · scenario {} · seed {}", picture.scenario, picture.seed);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = writeln!(html, "<header>\n<h1>{}</h1>", esc(&title));
    let _ = writeln!(
        html,
        "<p class=\"sub\">{} · every mark is one order, placed when it began and as high as it took; the \
         lines below are each product's version in the database and in the downstream consumer's view</p>\n\
         </header>",
        match picture.runs.len() {
            1 => format!("{:.1} s", picture.duration_ms as f64 / 1000.0),
            n => format!("{n} strategies · {:.1} s each", picture.duration_ms as f64 / 1000.0),
        }
    );
    summary(picture, &mut html);
    effectively_once(picture, &mut html);
    legend(picture, &mut html);
    for run in &picture.runs {
        run_section(picture, run, scale, &mut html);
    }
    let _ = writeln!(
        html,
        "<footer>Drawn by dualwrite from the run's report. Times are on the run's clock, from the start of the \
         main phase; after the dashed line the faults are healed and the relay, connector and consumer catch \
         up.</footer>\n</body>\n</html>"
    );
    html
}

/// The table at the top: every strategy's verdict and counts.
fn summary(picture: &Picture, html: &mut String) {
    const KEYS: [(&str, &str); 9] = [
        ("lost", "lost"),
        ("ghost", "ghost"),
        ("duplicate", "dup"),
        ("reordered", "reord"),
        ("recovered", "recov"),
        ("false_failure", "false fail"),
        ("stale_cache", "stale cache"),
        ("projection_drift", "drift"),
        ("backlog", "backlog"),
    ];
    html.push_str(
        "<table class=\"summary\">\n<thead><tr><th>strategy</th><th>verdict</th><th>orders<br>att/com/ack</th>",
    );
    for (_, header) in KEYS {
        let _ = write!(html, "<th>{header}</th>");
    }
    html.push_str("<th>write ms<br>p50 / p99</th><th>lag ms<br>p50 / p99</th></tr></thead>\n<tbody>\n");
    for run in &picture.runs {
        let mark = if run.as_expected { "✓" } else { "✗" };
        let _ = write!(
            html,
            "<tr><td><a href=\"#run-{}\">{}</a></td><td class=\"verdict {}\">{} {mark} <small>(expected {})</small></td>\
             <td>{}/{}/{}</td>",
            slug(&run.strategy),
            esc(&run.strategy),
            if run.as_expected { "ok" } else { "bad" },
            esc(&run.verdict),
            esc(&run.expected),
            run.orders.attempted,
            run.orders.committed,
            run.orders.acknowledged
        );
        for (key, _) in KEYS {
            let cell = if run.unknown.contains_key(key) {
                "?".to_string()
            } else {
                match run.anomalies.get(key).copied().flatten() {
                    Some(0) => "0".to_string(),
                    Some(n) => format!("<b>{n}</b>"),
                    None => "–".to_string(),
                }
            };
            let _ = write!(html, "<td>{cell}</td>");
        }
        let l = run.latency_ms;
        let publishes = run.timeline.as_ref().is_some_and(|t| t.publishes);
        let lag = if publishes {
            format!("{} / {}", super::ms(l.event_lag_p50), super::ms(l.event_lag_p99))
        } else {
            "–".to_string()
        };
        let _ = writeln!(html, "<td>{} / {}</td><td>{lag}</td></tr>", super::ms(l.write_p50), super::ms(l.write_p99));
    }
    html.push_str("</tbody>\n</table>\n");
}

/// Under the table: for each strategy whose topic carries duplicates, what
/// the idempotent consumer discarded and what a non-idempotent one would
/// have shipped.
fn effectively_once(picture: &Picture, html: &mut String) {
    for run in &picture.runs {
        if let Some(r) = run.redeliveries.filter(|r| r.duplicates > 0) {
            let _ = writeln!(
                html,
                "<p class=\"sub redeliveries\"><b>{}</b>: {}</p>",
                esc(&run.strategy),
                esc(&r.describe())
            );
        }
    }
}

/// What the colours and lines mean: only the fates that occur.
fn legend(picture: &Picture, html: &mut String) {
    let present: std::collections::BTreeSet<Fate> =
        picture.runs.iter().filter_map(|r| r.timeline.as_ref()).flat_map(|t| t.orders.iter().map(|o| o.fate)).collect();
    html.push_str("<div class=\"legend\">");
    for fate in Fate::ALL.into_iter().filter(|f| present.contains(f)) {
        let _ = write!(
            html,
            "<span><svg width=\"12\" height=\"12\"><circle cx=\"6\" cy=\"6\" r=\"5\" fill=\"{}\" stroke=\"#333\" \
             stroke-width=\"0.6\"/></svg> {}</span>",
            colour(fate),
            esc(fate.describe())
        );
    }
    // The kinds of fault the schedule has, in their lane colours.
    let mut kinds: Vec<&'static str> = picture.schedule.windows.iter().map(|w| w.fault.label()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        let _ = write!(
            html,
            "<span><svg width=\"18\" height=\"10\"><rect width=\"18\" height=\"10\" fill=\"{}\"/></svg> {kind}</span>",
            fault_colour(kind)
        );
    }
    html.push_str(
        "<span><svg width=\"22\" height=\"10\"><line x1=\"0\" y1=\"5\" x2=\"22\" y2=\"5\" class=\"db\"/></svg> \
         database version</span><span><svg width=\"22\" height=\"10\"><line x1=\"0\" y1=\"5\" x2=\"22\" y2=\"5\" \
         class=\"consumer\"/></svg> what the consumer believed</span><span><svg width=\"12\" height=\"12\"><rect \
         x=\"1\" y=\"1\" width=\"10\" height=\"10\" class=\"drift\"/></svg> they disagree</span><span><svg \
         width=\"12\" height=\"12\"><circle cx=\"6\" cy=\"6\" r=\"3\" class=\"cache\"/></svg> served from the \
         cache (<span class=\"stale-word\">red: stale</span>)</span>",
    );
    html.push_str("</div>\n");
}

/// A story's number, and where its badge goes.
struct Badge {
    number: usize,
    order: Option<uuid::Uuid>,
    product: i32,
}

fn run_section(picture: &Picture, run: &RunPicture, scale: Scale, html: &mut String) {
    let timeline = run.timeline.as_ref().expect("checked by Picture::from_json");
    let id = slug(&run.strategy);
    let mark = if run.as_expected { "✓" } else { "✗" };
    let _ = writeln!(
        html,
        "<section class=\"run\" id=\"run-{id}\">\n<h2>{} <span class=\"verdict {}\">{} {mark}</span> \
         <small>scenario {} expects {}</small></h2>",
        esc(&run.strategy),
        if run.as_expected { "ok" } else { "bad" },
        esc(&run.verdict),
        esc(&picture.scenario),
        esc(&run.expected)
    );
    for reason in &run.reasons {
        let _ = writeln!(html, "<p class=\"reason\">{}</p>", esc(reason));
    }
    for (key, figure) in &run.unknown {
        let _ = writeln!(html, "<p class=\"reason\">{} not known: {}</p>", esc(key), esc(&figure.reason));
    }
    let badges: Vec<Badge> = run
        .stories
        .iter()
        .enumerate()
        .map(|(i, s)| Badge { number: i + 1, order: s.order_id, product: s.product_id })
        .collect();
    html.push_str("<div class=\"panel\">\n");
    svg(picture, run, timeline, scale, &badges, &id, html);
    html.push_str("<aside class=\"stories\">\n");
    if run.stories.is_empty() {
        html.push_str("<p class=\"none\">No anomaly to tell.</p>\n");
    } else {
        html.push_str("<h3>What happened</h3>\n<ol>\n");
        for (story, badge) in run.stories.iter().zip(&badges) {
            let target = match story.order_id {
                Some(order) => format!("mark-{id}-{}", order.simple()),
                None => format!("product-{id}-{}", story.product_id),
            };
            let _ = writeln!(
                html,
                "<li id=\"story-{id}-{n}\"><a class=\"num\" href=\"#{target}\">{n}</a> <b>{}</b> {}</li>",
                esc(&story.anomaly.replace('_', " ")),
                esc(&story.text),
                n = badge.number
            );
        }
        html.push_str("</ol>\n");
    }
    html.push_str("</aside>\n</div>\n</section>\n");
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

fn svg(
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
            let _ = writeln!(
                html,
                "<g class=\"crash {what}\"><line x1=\"{x:.1}\" y1=\"{crashes_top:.1}\" x2=\"{x:.1}\" \
                 y2=\"{:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\">{} {} {what}</text><title>the {} {what} at {}</title></g>",
                height - 18.0,
                x + 2.0,
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

const STYLE: &str = r#"
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--ink);
       margin: 0 auto; padding: 18px 24px 40px; max-width: 1500px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 0 0 4px; }
h2 small, .sub, footer, .reason { color: var(--muted); font-weight: normal; }
h3 { font-size: 14px; margin: 0 0 6px; }
.sub { margin: 0 0 12px; }
table.summary { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
table.summary th, table.summary td { padding: 3px 9px; border-bottom: 1px solid var(--line); text-align: right; }
table.summary th { font-weight: 600; font-size: 12px; color: var(--muted); vertical-align: bottom; }
table.summary td:first-child, table.summary th:first-child, table.summary td.verdict { text-align: left; }
.verdict.ok { color: #047857; } .verdict.bad { color: #b91c1c; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 4px 0 14px; font-size: 12px; color: var(--muted); }
.legend svg { vertical-align: -1px; }
.stale-word { color: #dc2626; }
section.run { border-top: 1px solid var(--line); padding: 12px 0 6px; }
.reason { margin: 0 0 4px; }
.panel { display: grid; grid-template-columns: minmax(0, 3fr) minmax(220px, 1fr); gap: 14px; align-items: start; }
svg.timeline { width: 100%; height: auto; display: block; }
svg text { font-family: inherit; }
.tick { font-size: 10px; fill: var(--muted); text-anchor: middle; }
.tick-y { font-size: 9px; fill: var(--muted); text-anchor: end; }
.lane-label { font-size: 11px; fill: var(--ink); }
.axis-note { font-size: 9px; fill: var(--muted); }
.grid { stroke: #f0f0f0; stroke-width: 1; }
.lane { fill: #fafafa; stroke: var(--line); stroke-width: 0.5; }
.after { fill: #f3f4f6; opacity: 0.6; }
.main-end { stroke: #9ca3af; stroke-dasharray: 4 3; }
.fault rect { opacity: 0.85; }
.fault-label { font-size: 9.5px; fill: #fff; pointer-events: none; }
.crash line { stroke: #111827; stroke-width: 1.2; stroke-dasharray: 2 2; }
.crash.restarted line { stroke: #6b7280; }
.crash text { font-size: 10px; fill: #111827; }
.mark { stroke: #1f2937; stroke-width: 0.5; }
.mark.unanswered { stroke-width: 1.5; }
.mark:target { stroke: #000; stroke-width: 3; }
path.db, line.db { fill: none; stroke: #111827; stroke-width: 1.6; }
path.consumer, line.consumer { fill: none; stroke: #2563eb; stroke-width: 1.4; stroke-dasharray: 5 2; }
rect.drift { fill: #fecaca; opacity: 0.75; }
circle.cache { fill: #f59e0b; stroke: #92400e; stroke-width: 0.4; }
circle.cache.stale { fill: #dc2626; stroke: #7f1d1d; }
rect.fill { fill: none; stroke: #92400e; stroke-width: 0.8; }
.product:target .lane { stroke: #000; stroke-width: 2; }
.badge circle { fill: #fff; stroke: #111827; stroke-width: 1.2; }
.badge line { stroke: #111827; stroke-width: 0.8; }
.badge text { font-size: 9.5px; font-weight: 700; text-anchor: middle; fill: #111827; }
.stories { font-size: 13px; }
.stories ol { list-style: none; padding: 0; margin: 0; }
.stories li { margin: 0 0 10px; }
.stories li:target { background: #fef9c3; }
.stories .num { display: inline-block; min-width: 18px; height: 18px; border: 1.2px solid #111827; border-radius: 9px;
                text-align: center; font-size: 11px; font-weight: 700; line-height: 16px; color: #111827;
                text-decoration: none; }
.none { color: var(--muted); }
footer { margin-top: 18px; font-size: 12px; }
@media (max-width: 900px) { .panel { grid-template-columns: 1fr; } }
"#;

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

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
