//! Signals, on the real binary: SIGINT, SIGTERM and SIGHUP at several points
//! of a run (prepare, main, drain) stop it with the documented exit code
//! (130, 143, 129) and leave nothing behind — checked with psql and
//! redis-cli, not with dualwrite's own code. A second Ctrl-C says it is
//! still cleaning up; a third quits at once, names what it left and the one
//! command that removes it, and that command does.
//!
//! The runs use the shared PostgreSQL and Redis, each in its own namespace
//! (read from the run's `-v` log); the third-Ctrl-C test, which leaves data
//! behind on purpose and then runs `doctor --drop-stale`, uses stores of its
//! own so that the doctor can never meet another test's data.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::{dualwrite, Dualwrite, Finished};
use common::throwaway::{ThrowawayPostgres, ThrowawayRedis};

/// Long enough that no run ends before the test signals it.
const LONG: &str = "30s";
/// How long a stopped run may take to heal, stop and clean up.
const CLEANUP_LIMIT: Duration = Duration::from_secs(40);

fn psql(sql: &str) -> String {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAqX", "-c", sql])
        .output()
        .expect("psql (postgresql-client) is installed");
    assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// What the shared stores still hold of namespace `ns`: its schema, its
/// database, its replication slot, its publication, its Redis keys.
fn remains_of(ns: &str) -> Vec<String> {
    let sql = format!(
        "SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = '{ns}' \
         UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datname = '{ns}' \
         UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name = '{ns}' \
         UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname = '{ns}'"
    );
    let mut left: Vec<String> = psql(&sql).lines().map(str::to_string).collect();
    let keys = Command::new("redis-cli").args(["--scan", "--pattern", &format!("{ns}:*")]).output().unwrap();
    left.extend(String::from_utf8_lossy(&keys.stdout).lines().map(|k| format!("key {k}")));
    left
}

/// Starts `run STRATEGY` and returns it with its namespace.
fn start(strategy: &str, extra: &[&str]) -> (Dualwrite, String) {
    let mut args = vec!["run", strategy, "--duration", LONG, "--seed", "1"];
    args.extend_from_slice(extra);
    let run = Dualwrite::start(&args);
    let ns = run.namespace();
    (run, ns)
}

/// The checks every stopped run must pass.
fn stopped_cleanly(finished: &Finished, signal: &str, code: i32, phase: &str, ns: &str) {
    assert_eq!(finished.code, Some(code), "exit code after SIG{signal}:\n{}", finished.stderr);
    assert!(finished.stderr.contains(&format!("interrupted (SIG{signal})")), "{}", finished.stderr);
    assert!(finished.stderr.contains(&format!("stopped by SIG{signal} during {phase}")), "{}", finished.stderr);
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
    assert_eq!(remains_of(ns), Vec::<String>::new(), "left behind after SIG{signal} during {phase}");
}

#[test]
fn sigint_in_the_main_phase_of_cache_aside_removes_its_schema_and_keys() {
    let (run, ns) = start("cache-aside", &[]);
    run.wait_for("cache-aside: main", Duration::from_secs(30));
    // Long enough for readers to have filled the cache.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(remains_of(&ns).iter().any(|r| r.starts_with("key ")), "the run has cache keys to remove");
    run.signal("INT");
    stopped_cleanly(&run.wait(CLEANUP_LIMIT), "INT", 130, "main", &ns);
}

#[test]
fn sigterm_in_the_main_phase_of_cdc_removes_its_database_slot_and_publication() {
    let (run, ns) = start("cdc", &[]);
    run.wait_for("cdc: main", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1000));
    let before = remains_of(&ns);
    assert!(before.contains(&format!("database {ns}")) && before.contains(&format!("slot {ns}")), "{before:?}");
    run.signal("TERM");
    stopped_cleanly(&run.wait(CLEANUP_LIMIT), "TERM", 143, "main", &ns);
}

#[test]
fn sighup_in_the_main_phase_of_outbox_removes_its_schema() {
    let (run, ns) = start("outbox", &[]);
    run.wait_for("outbox: main", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1000));
    run.signal("HUP");
    stopped_cleanly(&run.wait(CLEANUP_LIMIT), "HUP", 129, "main", &ns);
}

#[test]
fn sigterm_during_prepare_removes_what_prepare_had_made() {
    // Signalled as soon as the namespace is named: the database, schema or
    // slot may or may not exist yet, and whichever does must go.
    let (run, ns) = start("outbox-cdc", &[]);
    run.signal("TERM");
    stopped_cleanly(&run.wait(CLEANUP_LIMIT), "TERM", 143, "prepare", &ns);
}

/// A run whose drain lasts a second or two: Kafka is down from 20 % of
/// the run to its end, while orders arrive every 5 ms per writer, so the
/// relay or connector has thousands of events to publish after the heal.
fn long_drain(strategy: &str) -> (Dualwrite, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("long-drain.toml");
    std::fs::write(
        &scenario,
        "description = \"Kafka down from 20% to the end: a backlog to drain.\"\n\
         [expect]\n\
         [[window]]\nlink = \"kafka\"\nfrom = \"20%\"\nuntil = \"100%\"\ntype = \"down\"\n",
    )
    .unwrap();
    let args = ["run", strategy, "--duration", "5s", "--writers", "5ms", "--scenario", scenario.to_str().unwrap()];
    let run = Dualwrite::start(&args);
    let ns = run.namespace();
    (run, ns, dir)
}

#[test]
fn sigint_during_the_drain_of_cdc_leaves_nothing() {
    let (run, ns, _dir) = long_drain("cdc");
    run.wait_for("cdc: drain", Duration::from_secs(60));
    run.signal("INT");
    stopped_cleanly(&run.wait(CLEANUP_LIMIT), "INT", 130, "drain", &ns);
}

#[test]
fn sighup_during_the_drain_of_outbox_leaves_nothing() {
    let (run, ns, _dir) = long_drain("outbox");
    run.wait_for("outbox: drain", Duration::from_secs(60));
    run.signal("HUP");
    stopped_cleanly(&run.wait(CLEANUP_LIMIT), "HUP", 129, "drain", &ns);
}

#[test]
fn a_second_sigint_says_it_is_still_cleaning_up_and_cleanup_finishes() {
    // A CDC run: its cleanup waits for the walsender to let go of the slot,
    // so the second Ctrl-C (20 ms after the first, as an impatient hand
    // does) arrives while there is still something to clean.
    let (run, ns) = start("cdc", &[]);
    run.wait_for("cdc: main", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1000));
    run.signal("INT");
    std::thread::sleep(Duration::from_millis(20));
    run.signal("INT");
    let finished = run.wait(CLEANUP_LIMIT);
    assert!(finished.stderr.contains("still"), "the second Ctrl-C is answered:\n{}", finished.stderr);
    stopped_cleanly(&finished, "INT", 130, "main", &ns);
}

#[test]
fn a_third_sigint_quits_at_once_names_what_is_left_and_the_command_removes_it() {
    let postgres = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let (db, cache) = (postgres.url(), redis.url());
    let stores = ["--database-url", db.as_str(), "--redis-url", cache.as_str()];
    let (run, ns) = start("cdc", &stores);
    run.wait_for("cdc: main", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1000));
    // Pressed as a person presses: each Ctrl-C once the one before it has
    // been answered. (Signals sent microseconds apart can be merged by the
    // kernel before dualwrite sees them, which no program can count.)
    run.signal("INT");
    run.wait_for("interrupted (SIGINT)", Duration::from_secs(10));
    run.signal("INT");
    run.wait_for("press Ctrl-C once more to quit at once", Duration::from_secs(10));
    run.signal("INT");
    let finished = run.wait(Duration::from_secs(10));
    assert_eq!(finished.code, Some(130), "{}", finished.stderr);
    let line = finished
        .stderr
        .lines()
        .find(|l| l.starts_with("quitting at once; left behind: "))
        .unwrap_or_else(|| panic!("the third Ctrl-C names what it left:\n{}", finished.stderr));
    assert!(line.contains(&ns), "{line}");
    assert!(finished.stderr.contains("with: dualwrite doctor --drop-stale"), "{}", finished.stderr);
    // What it says it left is there: the stores agree.
    let left = postgres.dualwrite_objects();
    assert!(!left.is_empty(), "the run quit before its cleanup, so something is left");
    for thing in &left {
        let kind = thing.split(' ').next().unwrap();
        let named = match kind {
            // A CDC run's publication lives in its own database.
            "schema" | "database" => line.contains(&format!("{kind} {ns}")),
            "slot" => line.contains(&format!("replication slot {ns}")),
            _ => true,
        };
        assert!(named, "{thing} is left but not named in: {line}");
    }

    // The one command removes it.
    let doctor =
        dualwrite(&["doctor", "--drop-stale", "--database-url", &db, "--redis-url", &cache], Duration::from_secs(20));
    assert!(doctor.stdout.contains(&format!("removed {ns}")), "{}", doctor.stdout);
    assert_eq!(postgres.dualwrite_objects(), Vec::<String>::new(), "{}", doctor.stdout);
    assert_eq!(redis.dualwrite_keys(), Vec::<String>::new());
}
