//! `dualwrite compare`: the table's layout, pinned by a golden file, and the
//! workshop's main screen end to end — every strategy under flaky-network,
//! twice with the same seed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dualwrite::proxy::toxic::{Stream, Toxic, ToxicKind};
use dualwrite::reconcile::{CacheReads, Orders, Verdict};
use dualwrite::report::{LatencyMs, PoolReport, Report, RunReport, Story, Where};
use dualwrite::scenario::schedule::{Fault, Schedule, Window};
use dualwrite::snapshot::DrainReport;
use dualwrite::strategy::Expectation;

/// A report built by hand: every kind of cell the table has.
fn fixed_report() -> Report {
    let run = |strategy: &str, verdict, expected, anomalies: &[(&'static str, Option<u64>)]| RunReport {
        strategy: strategy.into(),
        verdict,
        expected,
        as_expected: dualwrite::report::satisfies(verdict, expected),
        reasons: Vec::new(),
        orders: Orders { attempted: 60, committed: 53, acknowledged: 39 },
        anomalies: anomalies.iter().copied().collect::<BTreeMap<_, _>>(),
        unknown: BTreeMap::new(),
        examples: BTreeMap::new(),
        latency_ms: LatencyMs {
            write_p50: Some(2.0),
            write_p99: Some(2502.4),
            event_lag_p50: Some(350.0),
            event_lag_p99: Some(12_345.0),
        },
        pool: PoolReport { acquire_timeouts: 0, unrelated_p50_ms: Some(0.5), unrelated_p99_ms: Some(1.0), probes: 150 },
        cache: None,
        backlog_detail: None,
        drain: DrainReport::complete(120),
        faults: Vec::new(),
        outages: Vec::new(),
        stories: Vec::new(),
        location: Where {
            database_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            database: "postgres".into(),
            schema: format!("dw_{}_0000", strategy.replace('-', "_")),
            brokers: "127.0.0.1:29092".into(),
            topic: format!("dw_{}_0000", strategy.replace('-', "_")),
            redis_prefix: format!("dw_{}_0000:", strategy.replace('-', "_")),
            kept: false,
        },
    };
    let all = |lost: Option<u64>, ghost: Option<u64>, stale: Option<u64>, backlog: Option<u64>| {
        vec![
            ("lost", lost),
            ("ghost", ghost),
            ("duplicate", lost.map(|_| 0)),
            ("reordered", lost.map(|_| 0)),
            ("recovered", Some(0)),
            ("false_failure", Some(0)),
            ("stale_cache", stale),
            ("projection_drift", lost.map(|_| 0)),
            ("backlog", backlog),
        ]
    };
    let mut naive = run("naive", Verdict::Inconsistent, Expectation::Inconsistent, &all(Some(14), Some(0), None, None));
    naive.reasons.push("the stores disagree: 14 lost".into());
    naive.stories.push(Story {
        anomaly: "lost",
        order_id: None,
        product_id: 1,
        text: "order 8cdf89dd (product 1, -5 units) began at 7.5 s · db: ok at 7.5 s · topic: fail at 9.8 s — Message \
               timed out (during kafka down 6.8–12.0 s) · now: committed as version 4, never on the topic → lost"
            .into(),
    });
    let mut cache =
        run("cache-aside", Verdict::Inconsistent, Expectation::Inconsistent, &all(None, None, Some(3), None));
    cache.latency_ms.event_lag_p50 = None;
    cache.latency_ms.event_lag_p99 = None;
    cache.cache = Some(CacheReads { hits: 80, stale_reads: 12, worst_versions: 2, worst_ms: Some(3100) });
    let mut outbox =
        run("outbox", Verdict::Consistent, Expectation::Inconsistent, &all(Some(0), Some(0), None, Some(0)));
    outbox.pool.acquire_timeouts = 31;
    outbox.pool.unrelated_p99_ms = Some(1003.0);
    Report {
        seed: 3,
        scenario: "flaky-network".into(),
        duration_ms: 15_000,
        scenario_source: "built-in".into(),
        reproduce: "dualwrite compare --scenario flaky-network --seed 3 --duration 15000ms".into(),
        schedule: Schedule {
            windows: vec![
                Window {
                    link: "kafka".into(),
                    from: Duration::from_millis(6750),
                    until: Duration::from_secs(12),
                    fault: Fault::Down,
                },
                Window {
                    link: "postgres".into(),
                    from: Duration::from_millis(2250),
                    until: Duration::from_secs(3),
                    fault: Fault::Toxic { toxic: Toxic::new(ToxicKind::ResetPeer { timeout: 0 }, Stream::Upstream) },
                },
            ],
            crashes: Vec::new(),
            knobs: Default::default(),
        },
        services: vec!["fault proxy: built in".into()],
        runs: vec![naive, cache, outbox],
    }
}

#[test]
fn the_table_layout_is_pinned() {
    let mut out = Vec::new();
    dualwrite::report::table::write_text(&fixed_report(), "compare", None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/compare.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).expect("tests/golden/compare.txt (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, expected, "the table changed; if on purpose, rerun with UPDATE_GOLDEN=1 and review the diff");
}

#[test]
fn the_json_keeps_its_names() {
    let json = serde_json::to_value(fixed_report()).unwrap();
    for key in ["seed", "scenario", "duration_ms", "runs"] {
        assert!(json.get(key).is_some(), "{key}");
    }
    let run = &json["runs"][0];
    for key in
        ["strategy", "verdict", "expected", "orders", "anomalies", "examples", "latency_ms", "where", "pool", "stories"]
    {
        assert!(run.get(key).is_some(), "runs[].{key}");
    }
    for key in ["attempted", "committed", "acknowledged"] {
        assert!(run["orders"].get(key).is_some(), "orders.{key}");
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
    for key in ["write_p50", "write_p99", "event_lag_p50", "event_lag_p99"] {
        assert!(run["latency_ms"].get(key).is_some(), "latency_ms.{key}");
    }
    for key in ["database_url", "schema", "brokers", "topic", "redis_prefix"] {
        assert!(run["where"].get(key).is_some(), "where.{key}");
    }
    assert!(run["pool"].get("acquire_timeouts").is_some() && run["pool"].get("unrelated_p99_ms").is_some());
    // Not applicable is null, never 0.
    assert!(run["anomalies"]["stale_cache"].is_null());
    assert_eq!(json["runs"][1]["anomalies"]["lost"], serde_json::Value::Null);
}

fn compare(json: &Path) -> (Option<i32>, serde_json::Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["compare", "--duration", "15s", "--seed", "3", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&std::fs::read(json).unwrap_or_default()).unwrap_or(serde_json::Value::Null);
    (output.status.code(), report, String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The acceptance command, twice at once: every lesson shows, the
/// fixes hold, exit 0 — and the same seed gives the same schedule and the
/// same verdicts.
#[test]
fn compare_shows_every_lesson_and_repeats_with_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let second = std::thread::spawn(move || compare(&b));
    let first = compare(&a);
    let second = second.join().unwrap();
    for (code, report, stdout) in [&first, &second] {
        assert_eq!(*code, Some(0), "{stdout}");
        let runs: BTreeMap<&str, &serde_json::Value> =
            report["runs"].as_array().unwrap().iter().map(|r| (r["strategy"].as_str().unwrap(), r)).collect();
        assert_eq!(runs.len(), 6, "all six strategies");
        let count = |s: &str, a: &str| runs[s]["anomalies"][a].as_u64();
        assert!(count("naive", "lost").unwrap() > 0, "{stdout}");
        assert!(
            count("publish-in-tx", "ghost").unwrap() > 0
                || runs["publish-in-tx"]["pool"]["acquire_timeouts"].as_u64().unwrap() > 0,
            "{stdout}"
        );
        assert!(count("cache-aside", "stale_cache").unwrap() > 0, "{stdout}");
        for fix in ["outbox", "cdc", "outbox-cdc"] {
            assert_eq!((count(fix, "lost"), count(fix, "ghost")), (Some(0), Some(0)), "{fix}: {stdout}");
        }
        // The story of each anomaly is told.
        assert!(stdout.contains("naive · lost: order "), "{stdout}");
    }
    let (one, two) = (&first.1, &second.1);
    assert_eq!(one["schedule"], two["schedule"], "same seed, same fault schedule");
    let verdicts =
        |r: &serde_json::Value| r["runs"].as_array().unwrap().iter().map(|r| r["verdict"].clone()).collect::<Vec<_>>();
    assert_eq!(verdicts(one), verdicts(two), "same seed, same verdicts");
}
