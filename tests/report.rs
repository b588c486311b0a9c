//! The text report's layout at 80, 100 and 160 columns, pinned by golden
//! files rendered from fixed reports (`tests/fixtures`), and the JSON's
//! names. `UPDATE_GOLDEN=1 cargo test --test report` rewrites the files;
//! review the diff.

mod fixtures;

use std::path::Path;

use dualwrite::layout::width;
use dualwrite::strategy::Strategy;

fn golden(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{name} (UPDATE_GOLDEN=1 writes it)"));
    assert_eq!(text, expected, "{name} changed; if on purpose, rerun with UPDATE_GOLDEN=1 and review the diff");
}

fn text(report: &dualwrite::report::Report, command: &str, columns: usize) -> String {
    let mut out = Vec::new();
    dualwrite::report::text::write_text(report, command, columns, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for line in text.lines() {
        assert!(width(line) <= columns, "wider than {columns}: {line:?}");
    }
    text
}

/// Every strategy, with one figure not known (as a drain that timed out
/// would leave it), so that every kind of cell appears.
fn compare_report() -> dualwrite::report::Report {
    let mut report = fixtures::report(&fixtures::MODELLED);
    let cdc = report.runs.iter_mut().find(|r| r.strategy == "cdc").unwrap();
    cdc.unknown.insert(
        "lost",
        dualwrite::report::UnknownFigure {
            reason: "the drain timed out after 30000 ms: the connector had not published everything".into(),
            at_least: 0,
        },
    );
    report
}

#[test]
fn compare_at_80_100_and_160_columns() {
    let report = compare_report();
    for columns in [80, 100, 160] {
        golden(&format!("compare-{columns}.txt"), &text(&report, "compare", columns));
    }
}

#[test]
fn run_at_80_100_and_160_columns() {
    let report = fixtures::report(&[Strategy::Naive]);
    for columns in [80, 100, 160] {
        golden(&format!("run-{columns}.txt"), &text(&report, "run", columns));
    }
}

#[test]
fn a_cache_aside_run_says_what_readers_were_served() {
    let report = fixtures::report(&[Strategy::CacheAside]);
    let out = text(&report, "run", 80);
    assert!(out.contains("cache-aside: inconsistent ✓"), "{out}");
    assert!(out.contains("reads served from the cache were stale"), "{out}");
    assert!(out.contains("cannot happen here: lost"), "{out}");
}

#[test]
fn columns_that_say_nothing_are_folded_with_a_note() {
    let report = fixtures::report(&[Strategy::Outbox, Strategy::Cdc]);
    let out = text(&report, "compare", 100);
    assert!(out.contains("not shown, 0 for every strategy: lost, ghost"), "{out}");
    assert!(out.contains("not shown, cannot happen for these strategies: stale cache"), "{out}");
    let header = out.lines().find(|l| l.starts_with("strategy")).unwrap();
    assert!(!header.contains("lost") && header.contains("dup"), "{header}");
}

#[test]
fn an_unknown_figure_is_a_question_mark_with_its_reason() {
    let out = text(&compare_report(), "compare", 100);
    let row = out.lines().find(|l| l.starts_with("cdc ")).unwrap();
    assert!(row.contains(" ?"), "{row}");
    assert!(out.contains("cdc: lost not known: the drain timed out"), "{out}");
}

#[test]
fn the_json_keeps_its_names_and_carries_the_timeline() {
    let json = serde_json::to_value(fixtures::report(&[Strategy::Naive, Strategy::CacheAside])).unwrap();
    for key in ["seed", "scenario", "duration_ms", "schedule", "runs"] {
        assert!(json.get(key).is_some(), "{key}");
    }
    let run = &json["runs"][0];
    for key in [
        "strategy",
        "verdict",
        "expected",
        "as_expected",
        "reasons",
        "orders",
        "anomalies",
        "examples",
        "latency_ms",
        "pool",
        "cache",
        "backlog_detail",
        "drain",
        "faults",
        "stories",
        "timeline",
        "where",
    ] {
        assert!(run.get(key).is_some(), "runs[].{key}");
    }
    for key in [
        "lost",
        "ghost",
        "duplicate",
        "reordered",
        "recovered",
        "false_failure",
        "stale_cache",
        "projection_drift",
        "backlog",
    ] {
        assert!(run["anomalies"].get(key).is_some(), "anomalies.{key}");
    }
    // Not applicable is null, never 0.
    assert!(run["anomalies"]["stale_cache"].is_null());
    assert!(json["runs"][1]["anomalies"]["lost"].is_null());
    let timeline = &run["timeline"];
    for key in ["publishes", "caches", "orders", "products", "crashes"] {
        assert!(timeline.get(key).is_some(), "timeline.{key}");
    }
    let order = &timeline["orders"][0];
    for key in [
        "order_id",
        "product_id",
        "delta",
        "writer",
        "begun_at",
        "ended_at",
        "legs",
        "version",
        "delivered_at",
        "on_topic",
        "fate",
        "anomalies",
    ] {
        assert!(order.get(key).is_some(), "timeline.orders[].{key}");
    }
    let product = &timeline["products"][0];
    for key in ["product_id", "database", "consumer", "cache", "cache_fills"] {
        assert!(product.get(key).is_some(), "timeline.products[].{key}");
    }
    assert_eq!(product["database"][0], serde_json::json!({"at": 0, "version": 0, "quantity": 1000}));
}

/// The picture's marks add up to the reconciler's counts: an order is lost
/// in the timeline exactly when the reconciler counts it lost, and so on.
#[test]
fn the_timeline_agrees_with_the_reconciler() {
    for strategy in fixtures::MODELLED {
        let report = fixtures::report(&[strategy]);
        let run = &report.runs[0];
        let orders = &run.timeline.orders;
        assert_eq!(orders.len() as u64, run.orders.attempted, "{strategy}: one mark per order");
        let with = |key: &str| orders.iter().filter(|o| o.anomalies.iter().any(|a| a == key)).count() as u64;
        for key in ["lost", "ghost", "reordered"] {
            if let Some(n) = run.anomalies[key] {
                assert_eq!(with(key), n, "{strategy}: {key}");
            }
        }
        if let Some(n) = run.anomalies["duplicate"] {
            let extra: u64 = orders.iter().map(|o| o.on_topic.unwrap_or(0).saturating_sub(1)).sum();
            assert_eq!(extra, n, "{strategy}: duplicates are extra copies");
        }
        let committed = orders.iter().filter(|o| o.version.is_some()).count() as u64;
        assert_eq!(committed, run.orders.committed, "{strategy}: committed");
    }
}
