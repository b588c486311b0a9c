//! The report as text, laid out for a width (the terminal's, or 80 columns
//! when stdout is not a terminal, or `--width`): a header that says how to
//! reproduce the run, the fault schedule, then
//!
//! - for one `run`, a compact block: the orders, the anomalies that
//!   occurred, latency, the verdict;
//! - for `compare`, two tables — what the stores hold, and latency — whose
//!   columns that are "–" or 0 for every strategy are folded into a note;
//!
//! then what readers suffered during the run, the story of one example per
//! anomaly, and the verdicts. Every line fits the width; words are never
//! broken (see [`crate::layout`]).

use std::io::{self, Write};

use super::{ms, Report, RunReport};
use crate::layout::{self, Align, Column, Table};

/// The anomaly columns of the compare table: (JSON key, header, words for
/// the notes under the table).
const ANOMALIES: [(&str, [&str; 2], &str); 9] = [
    ("lost", ["", "lost"], ""),
    ("ghost", ["", "ghost"], ""),
    ("duplicate", ["", "dup"], "dup: extra deliveries"),
    ("reordered", ["", "reord"], "reord: versions out of order on the topic"),
    ("recovered", ["", "recov"], "recov: told unknown, did happen"),
    ("false_failure", ["false", "fail"], "false fail: told fail, did happen"),
    ("stale_cache", ["stale", "cache"], ""),
    ("projection_drift", ["", "drift"], "drift: the consumer's view differs from the database"),
    ("backlog", ["", "backlog"], ""),
];

/// Words for an anomaly in running text (`false failure`).
fn words(key: &str) -> &str {
    match key {
        "false_failure" => "false failure",
        "stale_cache" => "stale cache",
        "projection_drift" => "projection drift",
        other => other,
    }
}

/// One figure as text: a count, "–" where it cannot happen, "?" where it is
/// not known (the reason is in the verdict lines).
fn figure(run: &RunReport, key: &str) -> String {
    if run.unknown.contains_key(key) {
        return "?".into();
    }
    match run.anomalies.get(key).copied().flatten() {
        Some(n) => n.to_string(),
        None => "–".into(),
    }
}

/// `✓` when the verdict is what the scenario expects, `✗` when not.
fn mark(run: &RunReport) -> &'static str {
    if run.as_expected {
        "✓"
    } else {
        "✗"
    }
}

/// Milliseconds for running text: `2.0 ms`, `2502 ms`, `12.3 s`.
fn duration(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if v.abs() >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) if v.abs() >= 10.0 => format!("{v:.0} ms"),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// The whole report as text, `width` columns wide (at least
/// [`layout::MIN_WIDTH`]). `command` is `run` or `compare`.
pub fn write_text(report: &Report, command: &str, width: usize, out: &mut impl Write) -> io::Result<()> {
    let width = width.max(layout::MIN_WIDTH);
    let mut lines = Vec::new();
    header(report, command, width, &mut lines);
    if command == "run" && report.runs.len() == 1 {
        run_block(report, &report.runs[0], width, &mut lines);
    } else {
        compare_tables(report, width, &mut lines);
    }
    during_the_run(report, width, &mut lines);
    effectively_once(report, width, &mut lines);
    out_of_order(report, width, &mut lines);
    stories(report, width, &mut lines);
    verdicts(report, width, &mut lines);
    kept(report, width, &mut lines);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn header(report: &Report, command: &str, width: usize, lines: &mut Vec<String>) {
    let who = match (command, report.runs.as_slice()) {
        ("run", [run]) => format!("run {}", run.strategy),
        _ => command.to_string(),
    };
    let title = format!(
        "dualwrite {who} · scenario {} · seed {} · {:.1} s{}",
        report.scenario,
        report.seed,
        report.duration_ms as f64 / 1000.0,
        if report.runs.len() > 1 { " per strategy" } else { "" }
    );
    lines.extend(layout::wrap(&title, width, "", "  "));
    lines.extend(command_lines("reproduce: ", &report.reproduce, width));
    lines.push(String::new());
    lines.push(
        if report.runs.len() > 1 { "fault schedule (the same for every strategy):" } else { "fault schedule:" }.into(),
    );
    let mut schedule = Vec::new();
    crate::scenario::write_schedule(&report.schedule, &mut schedule).expect("writing to a Vec cannot fail");
    for line in String::from_utf8_lossy(&schedule).lines() {
        if layout::width(line) <= width {
            lines.push(line.to_string());
            continue;
        }
        // Too wide: the fault's description wraps, its continuation lines
        // under the description (the columns before it keep their spacing).
        let hang = if width >= 60 { 39 } else { 6 };
        let split = line.char_indices().nth(hang).map_or(line.len(), |(i, _)| i);
        let (prefix, rest) = if width >= 60 { line.split_at(split) } else { ("", line) };
        lines.extend(layout::wrap(rest, width, prefix, &" ".repeat(hang)));
    }
}

/// A command line that fits: broken at spaces outside quotes, each line but
/// the last ending in ` \` so that it still pastes into a shell.
pub fn command_lines(label: &str, command: &str, width: usize) -> Vec<String> {
    let single = format!("{label}{command}");
    if layout::width(&single) <= width {
        return vec![single];
    }
    // The words of the command, keeping quoted arguments whole.
    let mut words: Vec<String> = Vec::new();
    let (mut word, mut quote) = (String::new(), None::<char>);
    for c in command.chars() {
        match (c, quote) {
            (' ', None) => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            ('\'' | '"', None) => {
                quote = Some(c);
                word.push(c);
            }
            (c, Some(q)) if c == q => {
                quote = None;
                word.push(c);
            }
            (c, _) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut lines = vec![label.trim_end().to_string()];
    let mut line = "  ".to_string();
    for w in words {
        // Room for the word and a trailing ` \`.
        if line.trim().is_empty() || layout::width(&line) + 1 + layout::width(&w) + 2 <= width {
            if !line.trim().is_empty() {
                line.push(' ');
            }
            line.push_str(&w);
        } else {
            lines.push(format!("{line} \\"));
            line = format!("    {w}");
        }
    }
    lines.push(line);
    lines
}

/// One run, as a block of labelled lines.
fn run_block(report: &Report, run: &RunReport, width: usize, lines: &mut Vec<String>) {
    lines.push(String::new());
    let headline = format!(
        "{}: {} {} (scenario {} expects {})",
        run.strategy,
        run.verdict.as_str(),
        mark(run),
        report.scenario,
        run.expected.as_str()
    );
    lines.extend(layout::wrap(&headline, width, "", "  "));
    const LABEL: usize = 13;
    let mut field = |label: &str, text: &str| {
        let first = format!("  {label:<width$}", width = LABEL - 2);
        lines.extend(layout::wrap(text, width, &first, &" ".repeat(LABEL)));
    };
    let o = run.orders;
    field(
        "orders",
        &format!(
            "{} began · {} committed · {} acknowledged (told ok on every leg)",
            o.attempted, o.committed, o.acknowledged
        ),
    );
    if let Some(skipped) = o.describe_skipped() {
        field("", &skipped);
    }
    let (mut occurred, mut none, mut never, mut unknown) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, _, _) in ANOMALIES {
        match figure(run, key).as_str() {
            "?" => unknown.push(format!("? {}", words(key))),
            "–" => never.push(words(key)),
            "0" => none.push(words(key)),
            n => occurred.push(format!("{n} {}", words(key))),
        }
    }
    occurred.extend(unknown);
    if occurred.is_empty() {
        field("anomalies", "none");
    } else {
        field("anomalies", &occurred.join(" · "));
    }
    if !none.is_empty() {
        field("", &format!("none: {}", none.join(", ")));
    }
    if !never.is_empty() {
        field("", &format!("cannot happen here: {}", never.join(", ")));
    }
    let l = run.latency_ms;
    let mut latency = format!("write p50 {}, p99 {}", duration(l.write_p50), duration(l.write_p99));
    if publishes(run) {
        latency.push_str(&format!(" · event lag p50 {}, p99 {}", duration(l.event_lag_p50), duration(l.event_lag_p99)));
    }
    field("latency", &latency);
    let p = run.pool;
    field(
        "pool",
        &format!(
            "{} of {} unrelated lookups got no connection in time (p99 {})",
            p.acquire_timeouts,
            p.probes,
            duration(p.unrelated_p99_ms)
        ),
    );
    let drain = &run.drain;
    let waited = super::seconds(drain.waited_ms);
    if drain.completed {
        field("drain", &format!("caught up after {waited}"));
    } else {
        field("drain", &format!("timed out after {waited} (see the verdict)"));
    }
}

/// Whether the strategy puts events on a topic (it then has lost events,
/// which may be zero, and an event lag).
fn publishes(run: &RunReport) -> bool {
    run.anomalies.get("lost").copied().flatten().is_some() || run.unknown.contains_key("lost")
}

/// `compare`: what the stores hold, then latency, as tables that fit.
fn compare_tables(report: &Report, width: usize, lines: &mut Vec<String>) {
    let runs = &report.runs;
    let strategy = || {
        let mut c = Column::new(&["strategy"], Align::Left);
        c.cells = runs.iter().map(|r| r.strategy.clone()).collect();
        c
    };

    // What the stores hold after the run.
    let mut verdict = Column::new(&["verdict"], Align::Left);
    verdict.cells = runs.iter().map(|r| format!("{} {}", r.verdict.as_str(), mark(r))).collect();
    let mut columns = vec![strategy(), verdict];
    let mut explained = vec!["✓ as the scenario expects, ✗ not".to_string()];
    let (mut zero, mut never) = (Vec::new(), Vec::new());
    for (key, header, explanation) in ANOMALIES {
        let cells: Vec<String> = runs.iter().map(|r| figure(r, key)).collect();
        let name = header.iter().filter(|h| !h.is_empty()).copied().collect::<Vec<_>>().join(" ");
        if cells.iter().all(|c| c == "–") {
            never.push(name);
        } else if cells.iter().all(|c| c == "–" || c == "0") {
            zero.push(name);
        } else {
            let mut column = Column::new(&header, Align::Right);
            column.cells = cells;
            columns.push(column);
            if !explanation.is_empty() {
                explained.push(explanation.to_string());
            }
        }
    }
    lines.push(String::new());
    lines.push("what the stores hold after the run:".into());
    lines.extend(Table { columns, key: 1 }.render(width, ""));
    if runs.iter().any(|r| ANOMALIES.iter().any(|(k, _, _)| figure(r, k) == "–")) {
        explained.push("–: cannot happen for that strategy".into());
    }
    if runs.iter().any(|r| !r.unknown.is_empty()) {
        explained.push("?: not known (the verdicts say why)".into());
    }
    note(&explained.join(" · "), width, lines);
    if !zero.is_empty() {
        note(&format!("not shown, 0 for every strategy: {}", zero.join(", ")), width, lines);
    }
    if !never.is_empty() {
        note(&format!("not shown, cannot happen for these strategies: {}", never.join(", ")), width, lines);
    }

    // Latency and what the rest of the service felt.
    let pair = |header: [&str; 2], value: &dyn Fn(&RunReport) -> String| {
        let mut c = Column::new(&header, Align::Right);
        c.cells = runs.iter().map(value).collect();
        c
    };
    let lag = |r: &RunReport, v: Option<f64>| if publishes(r) { ms(v) } else { "–".into() };
    let candidates = vec![
        (
            pair(["write", "p50"], &|r| ms(r.latency_ms.write_p50)),
            "write: from an order's start to its last leg's outcome",
        ),
        (pair(["write", "p99"], &|r| ms(r.latency_ms.write_p99)), ""),
        (
            pair(["lag", "p50"], &|r| lag(r, r.latency_ms.event_lag_p50)),
            "lag: from the commit to the downstream consumer's first delivery",
        ),
        (pair(["lag", "p99"], &|r| lag(r, r.latency_ms.event_lag_p99)), ""),
        (
            pair(["pool", "timeouts"], &|r| r.pool.acquire_timeouts.to_string()),
            "pool timeouts: unrelated lookups that got no pooled connection in time",
        ),
    ];
    let mut orders = Column::new(&["orders", "att/com/ack"], Align::Right);
    orders.cells = runs
        .iter()
        .map(|r| format!("{}/{}/{}", r.orders.attempted, r.orders.committed, r.orders.acknowledged))
        .collect();
    let mut columns = vec![strategy(), orders];
    let mut explained = vec![
        "att/com/ack: orders attempted, committed, acknowledged (told ok on every leg)".to_string(),
        "times in milliseconds".to_string(),
    ];
    let mut folded = Vec::new();
    for (column, explanation) in candidates {
        let name = column.header.join(" ");
        if column.cells.iter().all(|c| c == "–" || c == "0") {
            folded.push(name);
        } else {
            columns.push(column);
            if !explanation.is_empty() {
                explained.push(explanation.to_string());
            }
        }
    }
    lines.push(String::new());
    lines.push("orders, latency, and what the rest of the service felt:".into());
    lines.extend(Table { columns, key: 1 }.render(width, ""));
    note(&explained.join(" · "), width, lines);
    for run in runs {
        if let Some(skipped) = run.orders.describe_skipped() {
            note(&format!("{}: {skipped}", run.strategy), width, lines);
        }
    }
    if !folded.is_empty() {
        note(&format!("not shown, 0 or – for every strategy: {}", folded.join(", ")), width, lines);
    }
}

/// A note under a table, indented and wrapped.
fn note(text: &str, width: usize, lines: &mut Vec<String>) {
    lines.extend(layout::wrap(text, width, "  ", "  "));
}

/// Effectively-once, shown: for each strategy whose topic carries
/// duplicates, what the idempotent consumer discarded and what a consumer
/// applying every delivery would have done.
fn effectively_once(report: &Report, width: usize, lines: &mut Vec<String>) {
    let found: Vec<String> = report
        .runs
        .iter()
        .filter_map(|run| run.redeliveries.filter(|r| r.duplicates > 0).map(|r| (run, r)))
        .map(|(run, r)| format!("{}: {}", run.strategy, r.describe()))
        .collect();
    if !found.is_empty() {
        lines.push(String::new());
        lines.push("duplicates, and what they would have cost:".into());
        for line in found {
            lines.extend(layout::wrap(&line, width, "  ", "      "));
        }
    }
}

/// Reorderings, shown: for each strategy whose consumer received versions
/// out of order, what a consumer without the version check would hold.
/// Strategies that received the same deliveries in the same order (under
/// the wrong key, every strategy that publishes does) share one sentence.
fn out_of_order(report: &Report, width: usize, lines: &mut Vec<String>) {
    let mut same: Vec<(String, Vec<&str>)> = Vec::new();
    for run in &report.runs {
        let Some(a) = run.arrival_order.as_ref().filter(|a| a.arrived_late > 0) else { continue };
        let sentence = a.describe();
        match same.iter_mut().find(|(s, _)| *s == sentence) {
            Some((_, strategies)) => strategies.push(&run.strategy),
            None => same.push((sentence, vec![&run.strategy])),
        }
    }
    let found: Vec<String> =
        same.into_iter().map(|(sentence, strategies)| format!("{}: {sentence}", strategies.join(", "))).collect();
    if !found.is_empty() {
        lines.push(String::new());
        lines.push("versions out of order, and what the version check saved:".into());
        for line in found {
            lines.extend(layout::wrap(&line, width, "  ", "      "));
        }
    }
}

/// What readers and the pool probe suffered while the run was under way
/// (the tables show the end state; this is what users of the service saw).
fn during_the_run(report: &Report, width: usize, lines: &mut Vec<String>) {
    let mut found = Vec::new();
    for run in &report.runs {
        // A store that stopped answering though no fault was injected on it.
        for outage in &run.outages {
            found.push(format!("{}: {}", run.strategy, outage.describe()));
        }
        // What a read cost: the cache tier's lesson is in this figure beside
        // the staleness (db-only has no cache, so it is said on its own).
        let reads = match (run.latency_ms.read_p50, run.latency_ms.read_p99) {
            (Some(p50), Some(p99)) => format!("reads p50 {}, p99 {}; ", duration(Some(p50)), duration(Some(p99))),
            _ => String::new(),
        };
        if let Some(cache) = &run.cache {
            if cache.stale_reads > 0 {
                let age =
                    cache.worst_ms.map(|ms| format!(", {:.1} s out of date", ms as f64 / 1000.0)).unwrap_or_default();
                let window = match (cache.stale_p50_ms, cache.stale_p99_ms) {
                    (Some(p50), Some(p99)) => {
                        format!("; out of date for p50 {}, p99 {}", duration(Some(p50)), duration(Some(p99)))
                    }
                    _ => String::new(),
                };
                let behind = if cache.worst_versions == 1 {
                    "1 version".to_string()
                } else {
                    format!("{} versions", cache.worst_versions)
                };
                found.push(format!(
                    "{}: {reads}{} of {} reads served from the cache were stale (worst: {behind} \
                     behind{age}{window})",
                    run.strategy, cache.stale_reads, cache.hits
                ));
            } else {
                found.push(format!(
                    "{}: {reads}none of {} reads served from the cache was stale",
                    run.strategy, cache.hits
                ));
            }
        } else if run.strategy == crate::strategy::Strategy::DbOnly.name() && !reads.is_empty() {
            found.push(format!("{}: {reads}every read from the database, none stale (no cache)", run.strategy));
        }
        // two-phase: what was in doubt, what waited behind it.
        if let Some(in_doubt) = &run.in_doubt {
            found.push(format!("{}: {}", run.strategy, crate::reconcile::in_doubt::describe(in_doubt)));
            if let Some(story) = &in_doubt.story {
                found.push(format!("{}: {story}", run.strategy));
            }
        }
        // A single run says this in its block already.
        if run.pool.acquire_timeouts > 0 && report.runs.len() > 1 {
            found.push(format!(
                "{}: {} of {} unrelated lookups got no pooled connection in time (p99 {} ms)",
                run.strategy,
                run.pool.acquire_timeouts,
                run.pool.probes,
                ms(run.pool.unrelated_p99_ms)
            ));
        }
    }
    if !found.is_empty() {
        lines.push(String::new());
        lines.push("during the run:".into());
        for line in found {
            lines.extend(layout::wrap(&line, width, "  ", "      "));
        }
    }
}

fn stories(report: &Report, width: usize, lines: &mut Vec<String>) {
    let single = report.runs.len() == 1;
    let stories: Vec<_> = report.runs.iter().flat_map(|r| r.stories.iter().map(move |s| (r, s))).collect();
    if stories.is_empty() {
        return;
    }
    lines.push(String::new());
    lines.push("what happened (one example per anomaly):".into());
    for (run, story) in stories {
        let first = if single {
            format!("  {}: ", words(story.anomaly))
        } else {
            format!("  {} · {}: ", run.strategy, words(story.anomaly))
        };
        lines.extend(layout::wrap(&story.text, width, &first, "      "));
    }
}

fn verdicts(report: &Report, width: usize, lines: &mut Vec<String>) {
    let mut found: Vec<String> = Vec::new();
    for run in &report.runs {
        for reason in &run.reasons {
            found.push(format!("{}: {reason}", run.strategy));
        }
        for (key, figure) in &run.unknown {
            found.push(format!("{}: {} not known: {}", run.strategy, words(key), figure.reason));
        }
    }
    if !found.is_empty() {
        lines.push(String::new());
        lines.push(if report.runs.len() == 1 { "verdict:" } else { "verdicts:" }.into());
        for line in found {
            lines.extend(layout::wrap(&line, width, "  ", "      "));
        }
    }
    lines.push(String::new());
    let unexpected: Vec<_> = report.runs.iter().filter(|r| !r.as_expected).collect();
    if unexpected.is_empty() {
        lines.extend(layout::wrap(
            &format!("every verdict is what scenario {} expects.", report.scenario),
            width,
            "",
            "  ",
        ));
    }
    for run in unexpected {
        let text = format!(
            "{}: {} but scenario {} expects {}.",
            run.strategy,
            run.verdict.as_str(),
            report.scenario,
            run.expected.as_str()
        );
        lines.extend(layout::wrap(&text, width, "", "  "));
    }
}

fn kept(report: &Report, width: usize, lines: &mut Vec<String>) {
    if !report.runs.iter().any(|r| r.location.kept) {
        return;
    }
    lines.push(String::new());
    lines.extend(layout::wrap("kept for inspection (`dualwrite doctor --drop-stale` removes them):", width, "", "  "));
    for run in report.runs.iter().filter(|r| r.location.kept) {
        let text = format!(
            "{}: database {} · schema {} · topic {} · redis {}*",
            run.strategy, run.location.database, run.location.schema, run.location.topic, run.location.redis_prefix
        );
        lines.extend(layout::wrap(&text, width, "  ", "      "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_command_breaks_with_backslashes_outside_quotes() {
        let lines = command_lines(
            "reproduce: ",
            "dualwrite run naive --scenario '/tmp/my scenarios/x.toml' --seed 7 --duration 15000ms --writers 5ms",
            50,
        );
        assert!(lines.iter().all(|l| layout::width(l) <= 50), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("'/tmp/my scenarios/x.toml'")), "{lines:#?}");
        for line in &lines[1..lines.len() - 1] {
            assert!(line.ends_with(" \\"), "{line:?}");
        }
        let pasted = lines[1..].iter().map(|l| l.trim_end_matches('\\').trim()).collect::<Vec<_>>().join(" ");
        assert!(pasted.starts_with("dualwrite run naive --scenario '/tmp/my scenarios/x.toml' --seed 7"), "{pasted}");
    }

    #[test]
    fn a_short_command_stays_on_one_line() {
        assert_eq!(command_lines("reproduce: ", "dualwrite compare", 80), vec!["reproduce: dualwrite compare"]);
    }
}
