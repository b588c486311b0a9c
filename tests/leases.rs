//! Leases: `doctor --drop-stale` never touches a live run, and removes what
//! a killed one left.
//!
//! On stores of the test's own (a throwaway PostgreSQL and Redis), so that
//! the doctor meets no other test's data: two runs are killed with SIGKILL
//! (nothing of dualwrite can run then), two more are started, and
//! `doctor --drop-stale` runs beside them. The killed runs' leftovers are
//! named — by `doctor`, and by the next run's start-up — and removed; the
//! live runs finish as they would have, and clean up after themselves.

mod common;

use std::time::Duration;

use common::process::{dualwrite, Dualwrite};
use common::throwaway::{ThrowawayPostgres, ThrowawayRedis};

#[test]
fn doctor_beside_live_runs_removes_only_what_killed_runs_left() {
    let postgres = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let (db, cache) = (postgres.url(), redis.url());
    let stores = ["--database-url", db.as_str(), "--redis-url", cache.as_str()];
    let run = |strategy: &str, duration: &str| {
        let mut args = vec!["run", strategy, "--duration", duration, "--seed", "2"];
        args.extend_from_slice(&stores);
        Dualwrite::start(&args)
    };

    // ── two runs killed mid-run: a CDC run (database, slot) and a
    //    cache-aside run (schema, cache keys) ──────────────────────────────
    let killed_cdc = run("cdc", "30s");
    let killed_cache = run("cache-aside", "30s");
    let (cdc_ns, cache_ns) = (killed_cdc.namespace(), killed_cache.namespace());
    killed_cdc.wait_for("cdc: main", Duration::from_secs(30));
    killed_cache.wait_for("cache-aside: main", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    killed_cdc.signal("KILL");
    killed_cache.signal("KILL");
    assert_eq!(killed_cdc.wait(Duration::from_secs(10)).code, None, "killed by a signal");
    assert_eq!(killed_cache.wait(Duration::from_secs(10)).code, None, "killed by a signal");
    let left = postgres.dualwrite_objects();
    assert!(left.contains(&format!("database {cdc_ns}")), "{left:?}");
    assert!(left.contains(&format!("slot {cdc_ns}")), "{left:?}");
    assert!(left.contains(&format!("schema {cache_ns}")), "{left:?}");
    let keys = redis.dualwrite_keys();
    assert!(keys.iter().any(|k| k.starts_with(&format!("{cache_ns}:"))), "the killed run had cached: {keys:?}");

    // ── doctor names them, and the one command that removes them ──────────
    let doctor = dualwrite(&["doctor", "--database-url", &db, "--redis-url", &cache], Duration::from_secs(10));
    let text = &doctor.stdout;
    assert!(text.contains(&format!("{cdc_ns} (database, replication slot (inactive")), "{text}");
    assert!(text.contains(&format!("{cache_ns} (schema, ")) && text.contains("cache key"), "{text}");
    assert!(text.contains("`dualwrite doctor --drop-stale` removes them"), "{text}");
    assert!(!text.contains("leftover cache keys    none"), "the killed run's keys are reported: {text}");

    // ── two live runs, and the next run's start-up names the leftovers ───
    let live_cdc = run("cdc", "8s");
    let live_cache = run("cache-aside", "8s");
    let (live_cdc_ns, live_cache_ns) = (live_cdc.namespace(), live_cache.namespace());
    live_cdc.wait_for("cdc: main", Duration::from_secs(30));
    live_cache.wait_for("cache-aside: main", Duration::from_secs(30));
    for started in [&live_cdc, &live_cache] {
        // The note is wrapped for the terminal: compare its words.
        let stderr = started.stderr().split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(stderr.contains("2 earlier runs stopped before cleaning up"), "{stderr}");
        assert!(stderr.contains(&cdc_ns) && stderr.contains(&cache_ns), "{stderr}");
        assert!(stderr.contains("`dualwrite doctor --drop-stale` removes them"), "{stderr}");
    }
    std::thread::sleep(Duration::from_millis(1000));

    // ── doctor --drop-stale beside them ───────────────────────────────────
    let doctor =
        dualwrite(&["doctor", "--drop-stale", "--database-url", &db, "--redis-url", &cache], Duration::from_secs(20));
    let text = &doctor.stdout;
    let removed = text.lines().find(|l| l.contains("leftovers")).expect("a leftovers line");
    assert!(removed.contains("removed "), "{text}");
    assert!(removed.contains(&format!("{cdc_ns} (replication slot, database)")), "{text}");
    assert!(removed.contains(&format!("{cache_ns} (schema, ")), "{text}");
    assert!(!removed.contains(&live_cdc_ns) && !removed.contains(&live_cache_ns), "{text}");
    assert!(text.contains("live runs") && text.contains(&live_cdc_ns) && text.contains(&live_cache_ns), "{text}");
    let left = postgres.dualwrite_objects();
    assert!(!left.iter().any(|o| o.contains(&cdc_ns) || o.contains(&cache_ns)), "{left:?}");
    assert!(
        left.contains(&format!("database {live_cdc_ns}")) && left.contains(&format!("slot {live_cdc_ns}")),
        "{left:?}"
    );
    assert!(left.contains(&format!("schema {live_cache_ns}")), "{left:?}");
    assert!(!redis.dualwrite_keys().iter().any(|k| k.starts_with(&format!("{cache_ns}:"))));

    // ── the live runs finish as they would have ───────────────────────────
    for (finished, ns) in [
        (live_cdc.wait(Duration::from_secs(60)), live_cdc_ns),
        (live_cache.wait(Duration::from_secs(60)), live_cache_ns),
    ] {
        // A live run's verdict is its strategy's, untouched by the doctor. The
        // one exception calm allows is cache-aside's own race (a reader's fill
        // landing after the writer's delete), which a busy machine can show
        // without any fault; removing keys cannot make a cached value stale.
        let races = finished.code == Some(1)
            && ns.starts_with("dw_cache_aside_")
            && finished.stdout.contains("the stores disagree:")
            && finished.stdout.lines().filter(|l| l.contains("the stores disagree:")).all(|l| {
                l.split("disagree:").nth(1).unwrap_or("").split(',').all(|a| a.trim().ends_with("stale_cache"))
            });
        assert!(
            finished.code == Some(0) && finished.stdout.contains("consistent ✓") || races,
            "{ns}:\n{}\n{}",
            finished.stdout,
            finished.stderr
        );
        assert!(!postgres.dualwrite_objects().iter().any(|o| o.contains(&ns)), "{ns} cleaned up after itself");
    }
    assert_eq!(postgres.dualwrite_objects(), Vec::<String>::new());
    assert_eq!(redis.dualwrite_keys(), Vec::<String>::new());
}
