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
//!
//! `picture.rs` is that view of the JSON; `svg.rs` draws one run's time
//! axis, lanes, marks and product lines; this file lays out the page around
//! them (the summary table, the legend, each run's section and its stories).

use std::fmt::Write as _;

use super::timeline::Fate;

mod picture;
mod svg;

pub use picture::*;
use svg::{svg, time_end, Scale};

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
    out_of_order(picture, &mut html);
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

/// Under the table: for each strategy whose consumer received versions out
/// of order, what a consumer applying them in arrival order would hold.
fn out_of_order(picture: &Picture, html: &mut String) {
    for run in &picture.runs {
        if let Some(a) = run.arrival_order.as_ref().filter(|a| a.arrived_late > 0) {
            let _ = writeln!(
                html,
                "<p class=\"sub arrival-order\"><b>{}</b>: {}</p>",
                esc(&run.strategy),
                esc(&a.describe())
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
    if let Some(skipped) = run.orders.describe_skipped() {
        let _ = writeln!(html, "<p class=\"reason\">{}</p>", esc(&skipped));
    }
    for (key, figure) in &run.unknown {
        let _ = writeln!(html, "<p class=\"reason\">{} not known: {}</p>", esc(key), esc(&figure.reason));
    }
    if let Some(d) = &run.in_doubt {
        let p99 = d.lock_wait_p99_ms.map(|ms| format!(" (lock wait p99 {ms} ms)")).unwrap_or_default();
        let story = d.story.as_deref().map(|s| format!(" — {s}")).unwrap_or_default();
        let _ = writeln!(
            html,
            "<p class=\"reason\">{} orders in doubt; {} orders waited on a row lock{}{}</p>",
            d.resolved,
            d.blocked,
            esc(&p99),
            esc(&story)
        );
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

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
