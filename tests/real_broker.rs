//! The fault matrix on a real Kafka-API broker.
//!
//! `tests/fixes_hold.rs` runs the fixes under every scenario on the
//! embedded broker. This file runs them where a user runs them: a real
//! broker (tansu 0.6.0, memory engine, a process of each run's own) behind
//! an *external* fault proxy — a `dualwrite toxiproxy` process driven over
//! HTTP with `--toxiproxy`, as a real Toxiproxy would be.
//!
//! 1. outbox, cdc and outbox-cdc under flaky-network, kafka-outage,
//!    kafka-resets, relay-crash and connector-crash, seeds 1–5 each: nothing
//!    lost, nothing invented, the drain complete.
//! 2. naive and publish-in-tx still show their lessons there, with figures
//!    close to the embedded broker's for the same seeds (the test prints
//!    both, and bounds the difference; see `lessons_hold_on_a_real_broker`).
//!
//! tansu refuses the epoch that librdkafka's idempotent producer bumps after
//! message timeouts (see the README, "dualwrite found it"); these runs are
//! where the producers' recovery from that (`kafka::producer`) is exercised.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{summary, Backend, RunSpec};
use dualwrite::reconcile::{Anomaly, Verdict};
use dualwrite::runner::RunResult;
use dualwrite::strategy::Strategy;
use tokio::sync::Semaphore;

const SCENARIOS: [&str; 5] = ["flaky-network", "kafka-outage", "kafka-resets", "relay-crash", "connector-crash"];
const SEEDS: std::ops::RangeInclusive<u64> = 1..=5;
/// Scenario windows are shares of the run, so a short run compresses them;
/// 6 s keeps kafka-outage's and kafka-resets' windows longer than the 2 s
/// delivery timeout, so messages do time out and the epoch is bumped.
const DURATION: Duration = Duration::from_secs(6);
/// Runs at a time, across the whole file (each run has its own proxy
/// process and broker process, and about ten Postgres connections).
const PARALLEL: usize = 6;

fn room() -> Arc<Semaphore> {
    static ROOM: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    ROOM.get_or_init(|| Arc::new(Semaphore::new(PARALLEL))).clone()
}

async fn run(spec: RunSpec) -> RunResult {
    let _permit = room().acquire_owned().await.unwrap();
    spec.run().await
}

async fn fixes_hold_on_a_real_broker(strategy: Strategy) {
    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for scenario in SCENARIOS {
        for seed in SEEDS {
            runs.spawn(async move {
                let result =
                    run(RunSpec::new(strategy, scenario, seed, DURATION).on(Backend::TansuExternalProxy)).await;
                (scenario, seed, result)
            });
        }
    }
    let mut failures = Vec::new();
    let (mut count, mut duplicates) = (0, 0);
    while let Some(joined) = runs.join_next().await {
        let (scenario, seed, result) = joined.expect("a run panicked");
        count += 1;
        let f = &result.findings;
        duplicates += f.count(Anomaly::Duplicate).unwrap_or(0);
        let broken = f.count(Anomaly::Lost) != Some(0)
            || f.count(Anomaly::Ghost) != Some(0)
            || f.count(Anomaly::ProjectionDrift) != Some(0)
            || f.count(Anomaly::Backlog) != Some(0)
            || f.verdict != Verdict::Consistent
            || !result.snapshot.drain.completed;
        if broken {
            failures.push(format!("{scenario} seed {seed}: {}", summary(&result)));
        }
    }
    assert_eq!(count, SCENARIOS.len() * SEEDS.count());
    assert!(failures.is_empty(), "{strategy} broke in {} of {count} runs:\n{}", failures.len(), failures.join("\n"));
    eprintln!(
        "{strategy} on tansu behind an external proxy: {count} runs in {:.0?}, nothing lost, no ghosts, \
         {duplicates} duplicates absorbed",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_holds_on_a_real_broker() {
    fixes_hold_on_a_real_broker(Strategy::Outbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_holds_on_a_real_broker() {
    fixes_hold_on_a_real_broker(Strategy::Cdc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_cdc_holds_on_a_real_broker() {
    fixes_hold_on_a_real_broker(Strategy::OutboxCdc).await;
}

/// The lessons, on both brokers, same seeds: (strategy, scenario, anomaly).
const LESSONS: [(Strategy, &str, Anomaly); 3] = [
    (Strategy::Naive, "kafka-resets", Anomaly::Lost),
    (Strategy::Naive, "kafka-outage", Anomaly::Lost),
    (Strategy::PublishInTx, "postgres-resets", Anomaly::Ghost),
];
const LESSON_SEEDS: std::ops::RangeInclusive<u64> = 1..=3;
/// What the lesson scenarios were tuned for.
const TUNED: Duration = Duration::from_secs(15);

/// naive and publish-in-tx show their lessons on the real broker too, and
/// their figures are close to the embedded broker's.
///
/// How close: per (scenario, seed) the counts differ by timing on any
/// broker (two runs on the *same* broker differ by a few too); the bound
/// here is the sum over the seeds, within a third of the embedded sum plus
/// three per run. A producer left fenced for the rest of the run (what
/// happened before the producers rebuilt themselves: naive lost 51–52 under
/// kafka-resets against 29–30 embedded) is far outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lessons_hold_on_a_real_broker() {
    let mut runs = tokio::task::JoinSet::new();
    for (strategy, scenario, anomaly) in LESSONS {
        for seed in LESSON_SEEDS {
            for backend in [Backend::Embedded, Backend::TansuExternalProxy] {
                runs.spawn(async move {
                    let result = run(RunSpec::new(strategy, scenario, seed, TUNED).on(backend)).await;
                    (strategy, scenario, anomaly, seed, backend, result)
                });
            }
        }
    }
    let mut figures: std::collections::BTreeMap<(String, &str), [Vec<u64>; 2]> = Default::default();
    let mut failures = Vec::new();
    while let Some(joined) = runs.join_next().await {
        let (strategy, scenario, anomaly, seed, backend, result) = joined.expect("a run panicked");
        let f = &result.findings;
        let count = f.count(anomaly).unwrap_or(0);
        if count == 0 || f.verdict != Verdict::Inconsistent {
            failures.push(format!(
                "{strategy} {scenario} seed {seed} on {}: no lesson: {}",
                backend.name(),
                summary(&result)
            ));
        }
        let slot = usize::from(backend != Backend::Embedded);
        figures.entry((format!("{strategy} {scenario} {}", anomaly.key()), scenario)).or_default()[slot].push(count);
    }
    for ((what, _), [embedded, tansu]) in &figures {
        let (e, t): (u64, u64) = (embedded.iter().sum(), tansu.iter().sum());
        eprintln!("{what}: embedded {embedded:?} (sum {e}), tansu {tansu:?} (sum {t})");
        let bound = e / 3 + 3 * embedded.len() as u64;
        if e.abs_diff(t) > bound {
            failures.push(format!("{what}: tansu {t} vs embedded {e}, more than {bound} apart"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
