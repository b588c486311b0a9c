//! Quiet by default: a default `compare` under the flaky-network scenario —
//! every kind of injected fault, each of which makes a library log
//! something (sqlx's "error occurred while testing the connection
//! on-release", librdkafka's disconnects, the connector's retries) — writes
//! nothing at all to stderr when stderr is not a terminal. The faults are
//! the point of the run, not warnings; what they did is in the report.
//! (On a terminal the live view is drawn there instead: `tests/live.rs`.)

mod common;

use std::process::Command;

#[test]
fn a_default_compare_under_flaky_network_writes_nothing_to_stderr() {
    // A short run keeps the test fast: the windows scale with the duration,
    // so every fault of the scenario still happens; a 1 s delivery timeout
    // (instead of 2 s) keeps the Kafka outage longer than it, so that
    // publishes time out and the relay and the connector retry, as they do
    // in a default 8 s compare.
    let out = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["compare", "--scenario", "flaky-network", "--duration", "6s", "--publish-timeout", "1s", "--seed", "3"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 0 or 1: in a short run a lesson may not show; that is not what this checks.
    assert!(matches!(out.status.code(), Some(0 | 1)), "exit {:?}\n{stdout}\n{stderr}", out.status.code());
    assert!(stdout.contains("what the stores hold after the run:"), "{stdout}");
    // One thing may be there, and rightly: on a server other runs share,
    // the start-up note naming runs that died before cleaning up (with the
    // command that removes them). It says nothing about this run's faults.
    let rest = common::without_leftovers_note(&stderr);
    assert!(rest.is_empty(), "stderr was not quiet:\n{stderr}");
}
