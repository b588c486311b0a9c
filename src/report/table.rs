//! The report as text: a header that says how to reproduce the run, the
//! fault schedule, one table row per strategy, and the stories.

use std::io::{self, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::{ms, Report, RunReport};

/// The table's columns: (header, anomaly key or other field).
const ANOMALY_COLUMNS: [(&str, &str); 9] = [
    ("lost", "lost"),
    ("ghost", "ghost"),
    ("dup", "duplicate"),
    ("reord", "reordered"),
    ("recov", "recovered"),
    ("false\nfail", "false_failure"),
    ("stale\ncache", "stale_cache"),
    ("drift", "projection_drift"),
    ("back-\nlog", "backlog"),
];

/// Renders the table. `width`: the terminal's width to fit, or `None` for
/// the table's natural width (files, pipes, golden tests).
pub fn table(report: &Report, width: Option<u16>) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    match width {
        Some(w) => {
            table.set_content_arrangement(ContentArrangement::Dynamic).set_width(w);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    let mut header = vec!["strategy", "orders\natt/com/ack"];
    header.extend(ANOMALY_COLUMNS.iter().map(|(h, _)| *h));
    header.extend(["write ms\np50/p99", "lag ms\np50/p99", "pool\ntimeouts", "verdict\n(expected)"]);
    table.set_header(header);
    for run in &report.runs {
        table.add_row(row(run));
    }
    for column in 1..table.column_count() - 1 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn row(run: &RunReport) -> Vec<Cell> {
    let o = run.orders;
    let mut cells =
        vec![Cell::new(&run.strategy), Cell::new(format!("{}/{}/{}", o.attempted, o.committed, o.acknowledged))];
    for (_, key) in ANOMALY_COLUMNS {
        // "?": not known, the evidence is incomplete (the verdict lines say why).
        let text = match run.anomalies.get(key).copied().flatten() {
            Some(n) => n.to_string(),
            None if run.unknown.contains_key(key) => "?".to_string(),
            None => "–".to_string(),
        };
        cells.push(Cell::new(text));
    }
    let l = run.latency_ms;
    cells.push(Cell::new(format!("{}/{}", ms(l.write_p50), ms(l.write_p99))));
    // A strategy that publishes nothing has no event lag.
    let lag = if run.anomalies.get("lost").copied().flatten().is_none() && !run.unknown.contains_key("lost") {
        "–".to_string()
    } else {
        format!("{}/{}", ms(l.event_lag_p50), ms(l.event_lag_p99))
    };
    cells.push(Cell::new(lag));
    cells.push(Cell::new(run.pool.acquire_timeouts.to_string()));
    let mark = if run.as_expected { "✓" } else { "✗" };
    cells.push(Cell::new(format!("{} {mark}\n({})", run.verdict.as_str(), run.expected.as_str())));
    cells
}

/// What readers and the pool probe suffered while the run was under way
/// (the table shows the end state; this is what users of the service saw).
fn during_the_run(run: &RunReport) -> Vec<String> {
    let mut lines: Vec<String> = run.outages.iter().map(|o| format!("{}: {}", run.strategy, o.describe())).collect();
    if let Some(cache) = &run.cache {
        if cache.stale_reads > 0 {
            let age = cache.worst_ms.map(|ms| format!(", {:.1} s out of date", ms as f64 / 1000.0)).unwrap_or_default();
            lines.push(format!(
                "{}: {} of {} reads served from the cache were stale (worst: {} versions behind{age})",
                run.strategy, cache.stale_reads, cache.hits, cache.worst_versions
            ));
        } else {
            lines.push(format!("{}: none of {} reads served from the cache was stale", run.strategy, cache.hits));
        }
    }
    if run.pool.acquire_timeouts > 0 {
        lines.push(format!(
            "{}: {} of {} unrelated lookups got no pooled connection in time (p99 {} ms)",
            run.strategy,
            run.pool.acquire_timeouts,
            run.pool.probes,
            ms(run.pool.unrelated_p99_ms)
        ));
    }
    lines
}

/// The whole report as text: header, schedule, table, stories, notes.
pub fn write_text(report: &Report, command: &str, width: Option<u16>, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "dualwrite {command} · scenario {} · seed {} · {:.1} s{}",
        report.scenario,
        report.seed,
        report.duration_ms as f64 / 1000.0,
        if report.runs.len() > 1 { " per strategy" } else { "" }
    )?;
    writeln!(out, "reproduce: {}", report.reproduce)?;
    writeln!(out)?;
    writeln!(out, "fault schedule (the same for every strategy):")?;
    crate::scenario::write_schedule(&report.schedule, out)?;
    writeln!(out)?;
    writeln!(out, "{}", table(report, width))?;

    let during: Vec<String> = report.runs.iter().flat_map(during_the_run).collect();
    if !during.is_empty() {
        writeln!(out)?;
        writeln!(out, "during the run:")?;
        for line in during {
            writeln!(out, "  {line}")?;
        }
    }

    let stories: Vec<_> = report.runs.iter().flat_map(|r| r.stories.iter().map(move |s| (r, s))).collect();
    if !stories.is_empty() {
        writeln!(out)?;
        writeln!(out, "what happened (one example per anomaly):")?;
        for (run, story) in stories {
            writeln!(out, "  {} · {}: {}", run.strategy, story.anomaly, story.text)?;
        }
    }
    let notes: Vec<_> = report.runs.iter().flat_map(|r| r.reasons.iter().map(move |reason| (r, reason))).collect();
    if !notes.is_empty() {
        writeln!(out)?;
        writeln!(out, "verdicts:")?;
        for (run, reason) in notes {
            writeln!(out, "  {}: {reason}", run.strategy)?;
        }
    }
    let unexpected: Vec<_> = report.runs.iter().filter(|r| !r.as_expected).collect();
    writeln!(out)?;
    if unexpected.is_empty() {
        writeln!(out, "every verdict is what scenario {} expects.", report.scenario)?;
    } else {
        for run in unexpected {
            writeln!(
                out,
                "{}: {} but scenario {} expects {}.",
                run.strategy,
                run.verdict.as_str(),
                report.scenario,
                run.expected.as_str()
            )?;
        }
    }
    if report.runs.iter().any(|r| r.location.kept) {
        writeln!(out)?;
        writeln!(out, "kept for inspection (`dualwrite doctor --drop-stale` removes them):")?;
        for run in report.runs.iter().filter(|r| r.location.kept) {
            writeln!(
                out,
                "  {}: database {} · schema {} · topic {} · redis {}*",
                run.strategy, run.location.database, run.location.schema, run.location.topic, run.location.redis_prefix
            )?;
        }
    }
    Ok(())
}
