//! A store that dies mid-run — not through an injected fault — is a tool
//! error: the run notices within seconds, heals, cleans what it can, and
//! stops with one line naming the store, its address and the fix (exit 2).
//! An outage that ends by itself is reported with the run's figures.
//!
//! Each test kills stores of its own (a throwaway PostgreSQL or Redis, a
//! tansu broker), never the shared ones.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::process::{dualwrite, Dualwrite};
use common::throwaway::{ThrowawayPostgres, ThrowawayRedis};

/// dualwrite declares a store that refuses its probes dead after 5 s
/// (`runner::watch::DEAD_AFTER`; the stores these tests kill refuse); the
/// rest is the stop and the cleanup, with a margin for a shared, loaded
/// machine.
const NOTICE_LIMIT: Duration = Duration::from_secs(20);

/// The lines of stderr, blank ones aside, and without the start-up note
/// about other runs' leftovers (see `common::without_leftovers_note`).
fn lines(stderr: &str) -> Vec<String> {
    common::without_leftovers_note(stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// A 12 s naive run on the throwaway stores, its report written to `json`;
/// returned once its main phase has begun.
fn naive_run_reporting_to(postgres: &ThrowawayPostgres, redis: &ThrowawayRedis, json: &Path) -> Dualwrite {
    let (db, cache) = (postgres.url(), redis.url());
    let json = json.to_str().unwrap();
    let run = Dualwrite::start(&[
        "run",
        "naive",
        "--duration",
        "12s",
        "--database-url",
        &db,
        "--redis-url",
        &cache,
        "--json",
        json,
    ]);
    run.wait_for("naive: main", Duration::from_secs(30));
    run
}

/// The outages a run's JSON report lists.
fn outages(json: &Path) -> Vec<serde_json::Value> {
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    report["runs"][0]["outages"].as_array().expect("an outages list").clone()
}

/// The pid of the run's lease backend, the one the store watch probes on.
fn lease_backend(postgres: &ThrowawayPostgres) -> String {
    let pid = postgres.psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'dualwrite-lease'");
    let pid = pid.trim().to_string();
    assert!(pid.parse::<u32>().is_ok(), "one lease backend: {pid:?}");
    pid
}

/// `kill -<name> <pid>`.
fn signal(pid: &str, name: &str) {
    let status = std::process::Command::new("kill").args([format!("-{name}").as_str(), pid]).status().unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

#[test]
fn postgres_killed_mid_run_stops_the_run_with_one_line_within_seconds() {
    let postgres = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let (db, cache) = (postgres.url(), redis.url());
    // As a user runs it, without -v: what it prints is what they would see.
    let run =
        Dualwrite::start_plain(&["run", "naive", "--duration", "60s", "--database-url", &db, "--redis-url", &cache]);
    // Set-up takes about a second; by four the orders are flowing.
    std::thread::sleep(Duration::from_secs(4));
    let ns = postgres.dualwrite_objects().first().expect("the run's schema").trim_start_matches("schema ").to_string();
    postgres.kill();
    let killed = Instant::now();
    let finished = run.wait(Duration::from_secs(60));
    let noticed = killed.elapsed();
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    assert!(noticed < NOTICE_LIMIT, "noticed after {noticed:?}");
    let error = finished.stderr.lines().find(|l| l.starts_with("error: ")).expect("an error line");
    let address = postgres.address();
    assert!(error.contains(&format!("PostgreSQL at {address} stopped answering")), "{error}");
    assert!(error.contains("not because of an injected fault"), "{error}");
    assert!(error.contains("pg_isready"), "the fix: {error}");
    // Besides the error: the header, what the run could not remove, and
    // the outage as the watch saw it — a handful, not hundreds.
    let lines = lines(&finished.stderr);
    assert!(lines.len() <= 6, "{} lines:\n{}", lines.len(), lines.join("\n"));
    let left = lines.iter().find(|l| l.contains("left behind")).expect("what could not be removed is named");
    assert!(left.contains(&ns) && left.contains("dualwrite doctor --drop-stale"), "{left}");
    eprintln!("stopped {noticed:?} after the kill, {} lines on stderr:\n{}", lines.len(), lines.join("\n"));

    // Once PostgreSQL is back, the command named removes what was left.
    postgres.start_again();
    assert!(postgres.dualwrite_objects().contains(&format!("schema {ns}")));
    let doctor =
        dualwrite(&["doctor", "--drop-stale", "--database-url", &db, "--redis-url", &cache], Duration::from_secs(20));
    assert!(doctor.stdout.contains(&format!("removed {ns}")), "{}", doctor.stdout);
    assert_eq!(postgres.dualwrite_objects(), Vec::<String>::new());
}

#[test]
fn a_postgres_outage_that_ends_by_itself_is_reported_with_the_figures() {
    let postgres = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let run = naive_run_reporting_to(&postgres, &redis, &json);
    std::thread::sleep(Duration::from_millis(2000));
    postgres.kill();
    std::thread::sleep(Duration::from_millis(1500));
    postgres.start_again();
    let finished = run.wait(Duration::from_secs(90));
    // The run went on: its verdict is whatever the stores say, not a tool error.
    assert!(matches!(finished.code, Some(0) | Some(1)), "{}\n{}", finished.stdout, finished.stderr);
    let outages = outages(&json);
    assert_eq!(outages.len(), 1, "{outages:?}");
    let outage = &outages[0];
    assert_eq!(outage["store"], "postgres");
    assert_eq!(outage["address"], postgres.address().as_str());
    let (from, until) = (outage["from_ms"].as_u64().unwrap(), outage["until_ms"].as_u64().expect("it came back"));
    // The kill came about 2 s into main; the restart takes a moment.
    assert!((1000..6000).contains(&from), "{outage}");
    assert!(until > from + 1000 && until < from + 5000, "{outage}");
    let line = finished.stdout.lines().find(|l| l.contains("was unreachable")).expect("a line in the report");
    assert!(line.contains("not injected"), "{line}");
    eprintln!("the report says: {}", line.trim());
    assert_eq!(postgres.dualwrite_objects(), Vec::<String>::new(), "the run cleaned up after the outage");
}

#[test]
fn redis_killed_mid_run_stops_a_cache_aside_run_naming_redis() {
    let postgres = ThrowawayPostgres::start();
    let mut redis = ThrowawayRedis::start();
    let (db, cache) = (postgres.url(), redis.url());
    let run = Dualwrite::start_plain(&[
        "run",
        "cache-aside",
        "--duration",
        "60s",
        "--database-url",
        &db,
        "--redis-url",
        &cache,
    ]);
    std::thread::sleep(Duration::from_secs(4));
    let ns = postgres.dualwrite_objects().first().expect("the run's schema").trim_start_matches("schema ").to_string();
    redis.kill();
    let killed = Instant::now();
    let finished = run.wait(Duration::from_secs(60));
    assert!(killed.elapsed() < NOTICE_LIMIT, "noticed after {:?}", killed.elapsed());
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    let error = finished.stderr.lines().find(|l| l.starts_with("error: ")).expect("an error line");
    assert!(error.contains(&format!("Redis at 127.0.0.1:{} stopped answering", redis.port)), "{error}");
    assert!(error.contains("redis-cli"), "the fix: {error}");
    // PostgreSQL was fine: the schema went; only the keys could not.
    assert_eq!(postgres.dualwrite_objects(), Vec::<String>::new());
    let lines = lines(&finished.stderr);
    assert!(lines.len() <= 6, "{} lines:\n{}", lines.len(), lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("left behind") && l.contains(&format!("cache keys {ns}:*"))), "{lines:?}");
}

#[test]
fn a_broker_killed_mid_run_stops_the_run_naming_kafka() {
    // A tansu broker of the test's own, behind the built-in proxy's kafka
    // link (it must advertise the link's address).
    let link = format!("127.0.0.1:{}", common::free_port());
    let mut tansu = Some(common::Tansu::start(Some(link.parse().unwrap())));
    let brokers = tansu.as_ref().unwrap().listen.to_string();
    let args = ["run", "naive", "--duration", "60s", "--brokers", &brokers, "--kafka-proxy-listen", &link];
    let run = Dualwrite::start_plain(&args);
    std::thread::sleep(Duration::from_secs(5));
    drop(tansu.take());
    let killed = Instant::now();
    let finished = run.wait(Duration::from_secs(60));
    assert!(killed.elapsed() < NOTICE_LIMIT, "noticed after {:?}", killed.elapsed());
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    let error = finished.stderr.lines().find(|l| l.starts_with("error: ")).expect("an error line");
    assert!(error.contains(&format!("Kafka at {brokers} stopped answering")), "{error}");
    let lines = lines(&finished.stderr);
    assert!(lines.len() <= 6, "{} lines:\n{}", lines.len(), lines.join("\n"));
}

/// A busy PostgreSQL is not a dead one: once a pool has made its first
/// connection, a later one may wait longer than the 4 s first-connection
/// limit (`db::BUSY_TIMEOUT`). Here the pool's only connection is held for
/// 6 s and a second query waits for it; with the first-connection limit it
/// failed at 4 s, as the final snapshot of a run did on a loaded server.
#[tokio::test]
async fn a_busy_postgres_is_waited_for_past_the_first_connection_limit() {
    let postgres = ThrowawayPostgres::start();
    let options = dualwrite::db::parse_url(&postgres.url()).unwrap();
    let pool = dualwrite::db::connect_direct(&options, None, 1).await.expect("PostgreSQL answers");
    let held = pool.acquire().await.unwrap();
    let hold = dualwrite::db::CONNECT_TIMEOUT + Duration::from_secs(2);
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let answer: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.expect("the query waits its turn");
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(hold).await;
    drop(held);
    let (answer, waited) = waiter.await.unwrap();
    assert_eq!(answer, 1);
    assert!(waited >= hold - Duration::from_millis(100), "it waited for the held connection: {waited:?}");
}

/// A probe answered late keeps its session. The lease's own backend is
/// stopped (SIGSTOP) for 3.5 s, past the probe's 2 s limit and short of
/// the 5 s after which even a refusing store is dead (a silent one has
/// 15 s): the run reports the outage and goes
/// on, and the lease is still held by the same backend, not by a new
/// connection opened for every late probe (on a busy server each of those
/// is slower than the last).
#[test]
fn a_late_probe_is_an_outage_and_keeps_the_lease_session() {
    let postgres = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let run = naive_run_reporting_to(&postgres, &redis, &json);
    std::thread::sleep(Duration::from_millis(1000));
    let pid = lease_backend(&postgres);
    signal(&pid, "STOP");
    std::thread::sleep(Duration::from_millis(3500));
    signal(&pid, "CONT");
    std::thread::sleep(Duration::from_millis(1000));
    let after = lease_backend(&postgres);
    let finished = run.wait(Duration::from_secs(60));
    assert!(matches!(finished.code, Some(0) | Some(1)), "{}\n{}", finished.stdout, finished.stderr);
    assert_eq!(after, pid, "the lease is held by the backend it was taken on");
    let outages = outages(&json);
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0]["store"], "postgres");
    assert!(outages[0]["until_ms"].as_u64().is_some(), "it answered again: {outages:?}");
}

/// A silent store is given longer than a refusing one: the lease's own
/// backend is stopped (SIGSTOP) for 8 s — past the 5 s after which a
/// refusing store is dead, short of the 15 s a silent one has. Its probes
/// go unanswered (the lease times them out itself), so the run carries on,
/// as it should for a server that is only slow, and reports the outage.
#[test]
fn a_store_silent_for_longer_than_five_seconds_is_an_outage_not_a_death() {
    let postgres = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let run = naive_run_reporting_to(&postgres, &redis, &json);
    std::thread::sleep(Duration::from_millis(500));
    let pid = lease_backend(&postgres);
    signal(&pid, "STOP");
    std::thread::sleep(Duration::from_secs(8));
    signal(&pid, "CONT");
    let finished = run.wait(Duration::from_secs(60));
    assert!(matches!(finished.code, Some(0) | Some(1)), "{}\n{}", finished.stdout, finished.stderr);
    let outages = outages(&json);
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0]["store"], "postgres");
    let (from, until) = (outages[0]["from_ms"].as_u64().unwrap(), outages[0]["until_ms"].as_u64());
    let until = until.expect("it answered again");
    assert!(until - from >= 5_000, "an outage longer than DEAD_AFTER, survived: {outages:?}");
}

/// A cleanup connects to a server the run has reached already, and waits
/// for a busy one: the throwaway server's postmaster is stopped (SIGSTOP)
/// for 6 s, so no new backend starts. A first connection gives up at 4 s,
/// naming the server; the cleanup's connection (`db::reconnect_direct`)
/// is made once the postmaster goes on. With the 4 s limit a loaded
/// server's cleanup left replication slots behind.
#[tokio::test]
async fn a_cleanup_connection_waits_for_a_busy_postmaster() {
    let postgres = ThrowawayPostgres::start();
    let options = dualwrite::db::parse_url(&postgres.url()).unwrap();
    // The checkpointer is a child of the postmaster, and lives as long as it.
    let checkpointer = postgres.psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", checkpointer.trim())).unwrap();
    // `pid (comm) state ppid …`; comm is in parentheses and may hold spaces.
    let postmaster = stat.rsplit_once(") ").unwrap().1.split(' ').nth(1).unwrap().to_string();
    signal(&postmaster, "STOP");
    let stopped = Instant::now();
    let first = dualwrite::db::connect_direct(&options, None, 1).await;
    let gave_up = stopped.elapsed();
    let again = tokio::spawn({
        let options = options.clone();
        async move { dualwrite::db::reconnect_direct(&options, None, 1).await }
    });
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(stopped.elapsed())).await;
    signal(&postmaster, "CONT");
    let pool = again.await.unwrap().expect("the cleanup's connection is made once the server goes on");
    let answer: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(answer, 1);
    let error = dualwrite::error::chain(&first.expect_err("a first connection gives up"));
    assert!(error.contains(&postgres.address()) && error.contains("no answer within 4s"), "{error}");
    assert!(gave_up < Duration::from_secs(5), "it gave up within its limit: {gave_up:?}");
}
