//! The binary as a user meets it: bad input and unreachable services exit 2
//! quickly with one clear line and no panic (the full battery is
//! `cli_battery.rs`); scenario files are checked with line numbers; exit
//! codes say whether the verdicts were as expected; an error's causes reach
//! the user; flags a strategy does not use are named; a closed pipe is not
//! an error; `compare --history` keeps every strategy's history.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dualwrite(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("KAFKA_BROKERS")
        .env_remove("TOXIPROXY_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run dualwrite");
    (output, started.elapsed())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Exit 2, fast, no panic, and an error line that contains every `needle`.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let (output, took) = dualwrite(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
    assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let line =
        err.lines().find(|l| l.starts_with("error")).unwrap_or_else(|| panic!("{args:?}: no error line in {err}"));
    for needle in needles {
        assert!(line.contains(needle), "{args:?}: {line:?} does not mention {needle:?}");
    }
}

#[test]
fn a_duration_that_is_not_one_is_refused() {
    assert_refused(&["run", "naive", "--writers", "banana"], &["--writers", "banana", "not a duration", "100ms"]);
    assert_refused(&["run", "naive", "--duration", "0s"], &["--duration", "out of range", "from 1s to 1h"]);
}

#[test]
fn zero_products_is_refused() {
    assert_refused(&["run", "naive", "--products", "0"], &["--products", "0"]);
}

#[test]
fn an_unknown_strategy_is_refused_with_the_known_ones() {
    assert_refused(&["run", "nieve"], &["nieve"]);
    // clap lists the known names on the following lines.
    let err = stderr(&dualwrite(&["run", "nieve"]).0);
    assert!(err.contains("possible values: naive, publish-in-tx, cache-aside, outbox, cdc, outbox-cdc"), "{err}");
}

#[test]
fn a_database_that_refuses_is_not_called_unreachable() {
    assert_refused(
        &["run", "naive", "--database-url", "postgres://postgres@127.0.0.1:5432/no_such_db", "--duration", "1s"],
        &["PostgreSQL", "127.0.0.1:5432", "refused", "no_such_db"],
    );
}

#[test]
fn an_unreachable_database_names_the_service_the_address_and_the_fix() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    assert_refused(
        &["run", "naive", "--database-url", &url, "--duration", "1s"],
        &["PostgreSQL", &format!("127.0.0.1:{port}"), "make setup", "--database-url"],
    );
}

#[test]
fn a_database_url_that_is_not_one_is_refused() {
    assert_refused(&["run", "naive", "--database-url", "mysql:/nope"], &["--database-url", "postgres://"]);
}

#[test]
fn an_unreachable_fault_proxy_names_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    assert_refused(&["run", "naive", "--toxiproxy", &url, "--duration", "1s"], &["fault proxy", &url]);
}

#[test]
fn an_unknown_scenario_lists_the_built_in_ones() {
    assert_refused(&["run", "naive", "--scenario", "sunny"], &["sunny", "calm", "flaky-network"]);
}

/// Every malformed file under tests/scenarios/bad gives the precise message
/// recorded in expected.txt (file, line, what is wrong) and exits 2.
#[test]
fn malformed_scenario_files_are_refused_with_file_and_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected = std::fs::read_to_string(dir.join("tests/scenarios/bad/expected.txt")).unwrap();
    let mut checked = 0;
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let file = line.split(".toml:").next().unwrap().to_string() + ".toml";
        let (output, took) = {
            let started = Instant::now();
            let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
                .current_dir(dir)
                .args(["scenarios", "check", &file])
                .output()
                .unwrap();
            (output, started.elapsed())
        };
        assert_eq!(output.status.code(), Some(2), "{file}: {}", stderr(&output));
        assert!(took < Duration::from_secs(5));
        assert_eq!(stderr(&output).trim(), format!("error: {line}"), "{file}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} malformed files checked");
}

#[test]
fn every_built_in_scenario_is_listed_and_checks_clean() {
    let (output, _) = dualwrite(&["scenarios"]);
    assert_eq!(output.status.code(), Some(0));
    let listed = stdout(&output);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(listed.contains(&name), "{name} is not listed:\n{listed}");
        let (output, _) = dualwrite(&["scenarios", "check", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
    }
}

#[test]
fn show_prints_a_scenario_and_the_same_schedule_for_the_same_seed() {
    let show = || stdout(&dualwrite(&["scenarios", "show", "flaky-network", "--seed", "3", "--duration", "15s"]).0);
    let first = show();
    assert!(first.contains("[expect]") && first.contains("schedule for seed 3"), "{first}");
    assert_eq!(first, show());
    let other = stdout(&dualwrite(&["scenarios", "show", "flaky-network", "--seed", "4", "--duration", "15s"]).0);
    assert_ne!(first, other, "seed 4 placed the random windows exactly where seed 3 did");
}

#[test]
fn help_teaches() {
    let (output, _) = dualwrite(&["run", "--help"]);
    let help = stdout(&output);
    for flag in [
        "--readers",
        "--writers",
        "--writer-tasks",
        "--duration",
        "--products",
        "--seed",
        "--scenario",
        "--json",
        "--keep",
    ] {
        assert!(help.contains(flag), "run --help lacks {flag}");
    }
    for env in ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "TOXIPROXY_URL"] {
        assert!(help.contains(env), "run --help lacks {env}");
    }
}

/// Exit 0 when the verdict is what the scenario expects, 1 when it is not:
/// the same faults under a file that expects naive to stay consistent.
#[test]
fn exit_codes_follow_the_scenarios_expectation() {
    let (output, _) = dualwrite(&["run", "naive", "--scenario", "calm", "--duration", "2s", "--seed", "1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("every verdict is what scenario calm expects"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.toml");
    std::fs::write(
        &path,
        r#"description = "naive survives a long Kafka outage (it does not)"
[expect]
naive = "consistent"
[[window]]
link = "kafka"
from = "10%"
until = "90%"
type = "down"
"#,
    )
    .unwrap();
    let (output, _) =
        dualwrite(&["run", "naive", "--scenario", path.to_str().unwrap(), "--duration", "5s", "--seed", "1"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{}", stderr(&output));
    assert!(out.contains("naive: inconsistent but scenario wrong expects consistent"), "{out}");
}

/// An error's causes reach the user on its one line: here three levels —
/// the service that cannot be reached (with the fix), the client's own
/// failure, and the operating system's reason.
#[test]
fn an_error_shows_its_causes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    assert_refused(
        &["run", "cache-aside", "--redis-url", &url],
        &[
            &format!("cannot reach Redis at 127.0.0.1:{port} (is Redis running?"),
            &format!("): cannot connect to Redis at 127.0.0.1:{port}: "),
            "Connection refused (os error 111)",
        ],
    );
}

/// An outcome's error keeps its causes in the history too: with Redis's
/// link down, cache-aside's deletes cannot connect, and the history says why
/// the connect failed — dualwrite's "cannot connect to Redis at …", then the
/// client's or the system's reason — not only that it did.
#[test]
fn a_failed_legs_cause_reaches_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("redis-down.toml");
    std::fs::write(
        &scenario,
        r#"description = "Redis unreachable for most of the run"
[expect]
cache-aside = "any"
[[window]]
link = "redis"
from = "10%"
until = "90%"
type = "down"
"#,
    )
    .unwrap();
    let history = dir.path().join("h.jsonl");
    let (output, _) = dualwrite(&[
        "run",
        "cache-aside",
        "--scenario",
        scenario.to_str().unwrap(),
        "--duration",
        "3s",
        "--seed",
        "1",
        "--history",
        history.to_str().unwrap(),
    ]);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{}", stderr(&output));
    let text = std::fs::read_to_string(&history).unwrap();
    let connects: Vec<&str> = text.lines().filter(|l| l.contains("cannot connect to Redis at ")).collect();
    assert!(!connects.is_empty(), "no failed connect in the history:\n{text}");
    for line in connects {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let error = event["Complete"]["told"]["error"].as_str().unwrap_or_else(|| panic!("{line}"));
        // "cannot connect to Redis at 127.0.0.1:PORT: <why>": the address,
        // then the cause.
        let rest = error.strip_prefix("cannot connect to Redis at ").unwrap_or_else(|| panic!("{error}"));
        let (address, cause) = rest.split_once(": ").unwrap_or_else(|| panic!("no cause in {error:?}"));
        assert!(address.starts_with("127.0.0.1:"), "{error}");
        assert!(!cause.trim().is_empty(), "no cause in {error:?}");
    }
}

/// A flag the strategy does not use is named, one line on stderr, and the
/// run goes ahead.
#[test]
fn flags_the_strategy_does_not_use_are_named() {
    let (output, _) = dualwrite(&[
        "run",
        "naive",
        "--relays",
        "3",
        "--cache-ttl",
        "5s",
        "--scenario",
        "calm",
        "--duration",
        "1s",
        "--seed",
        "1",
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        [
            "warning: --relays is used only by outbox; it has no effect on naive",
            "warning: --cache-ttl is used only by cache-aside, cache-cdc; it has no effect on naive",
        ],
        "{err}"
    );
}

/// `dualwrite … | head`: once the reader has gone, dualwrite stops quietly
/// with exit 0, like ripgrep and friends.
#[test]
fn a_closed_pipe_is_not_an_error() {
    for args in [&["scenarios", "show", "flaky-network", "--seed", "1"][..], &["run", "naive", "--duration", "1s"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader leaves before dualwrite writes a line.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("error") && !err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `compare --history` keeps every strategy's history, each line naming
/// its strategy, and `--json` is written beside it.
#[test]
fn compare_keeps_every_strategys_history() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.jsonl");
    let json = dir.path().join("r.json");
    let (output, _) = dualwrite(&[
        "compare",
        "--strategies",
        "naive,cache-aside",
        "--scenario",
        "calm",
        "--duration",
        "1s",
        "--seed",
        "1",
        "--history",
        history.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = std::fs::read_to_string(&history).unwrap();
    let mut per_strategy = std::collections::BTreeMap::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        *per_strategy.entry(event["strategy"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        // The strategy, and the event as the history holds it.
        assert_eq!(event.as_object().unwrap().len(), 2, "{line}");
    }
    assert_eq!(per_strategy.keys().collect::<Vec<_>>(), ["cache-aside", "naive"], "{per_strategy:?}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["runs"].as_array().unwrap().len(), 2);
    // Nothing but the two files is left in the folder.
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["h.jsonl", "r.json"]);
}
