//! Ordering by the wrong key, over seeds 1..=10 (every seed, none picked):
//! events keyed by order id spread one product's versions over every
//! partition, so the reconciler counts reorderings and a consumer that
//! applies events in arrival order (last write wins) ends wrong about some
//! products, while the version-checking consumer ends equal to the
//! database. The control: the same consumer restart with the events keyed
//! by product reorders nothing. And the same lesson on tansu, a real
//! Kafka-API broker.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{summary, Backend, RunSpec};
use dualwrite::reconcile::{Anomaly, Verdict};
use dualwrite::runner::RunResult;
use dualwrite::strategy::Strategy;
use tokio::sync::Semaphore;

/// The length the scenario is tuned for.
const TUNED: Duration = Duration::from_secs(15);
/// Runs at a time (each holds about ten Postgres connections).
const PARALLEL: usize = 5;

/// Runs every (strategy, seed) of `runs` under `scenario`, a few at a time.
async fn run_all(scenario: &str, backend: Backend, runs: Vec<(Strategy, u64)>) -> Vec<(Strategy, u64, RunResult)> {
    let room = Arc::new(Semaphore::new(PARALLEL));
    let mut set = tokio::task::JoinSet::new();
    for (strategy, seed) in runs {
        let (room, scenario) = (room.clone(), scenario.to_string());
        set.spawn(async move {
            let _permit = room.acquire_owned().await.unwrap();
            (strategy, seed, RunSpec::new(strategy, &scenario, seed, TUNED).on(backend).run().await)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        results.push(joined.expect("a run panicked"));
    }
    results.sort_by_key(|(s, seed, _)| (*s, *seed));
    results
}

/// What the run shows of ordering: (reordered, arrived late, products a
/// last-write-wins consumer ends wrong about), after checking that the
/// version-checking consumer agrees with the database.
fn ordering(strategy: Strategy, seed: u64, result: &RunResult) -> (u64, u64, u64) {
    let f = &result.findings;
    assert_eq!(f.verdict, Verdict::Consistent, "{strategy} seed {seed}: {}", summary(result));
    assert_eq!(f.count(Anomaly::ProjectionDrift), Some(0), "{strategy} seed {seed}: {}", summary(result));
    let reordered = f.count(Anomaly::Reordered).expect("a whole topic read");
    let arrival = f.arrival_order.clone().expect("a publishing strategy has a consumer");
    eprintln!(
        "{strategy} seed {seed}: reordered {reordered}, arrived late {}, last-write-wins wrong about {} of {} \
         products{}",
        arrival.arrived_late,
        arrival.drifted,
        arrival.products,
        arrival.example.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
    );
    (reordered, arrival.arrived_late, arrival.drifted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_key_reorders_and_only_the_version_check_absorbs_it() {
    let results = run_all("wrong-key", Backend::Embedded, (1..=10).map(|seed| (Strategy::Naive, seed)).collect()).await;
    for (strategy, seed, result) in &results {
        let (reordered, late, drifted) = ordering(*strategy, *seed, result);
        assert!(reordered > 0, "seed {seed}: nothing reordered on the topic");
        assert!(late > 0, "seed {seed}: no version reached the consumer out of order");
        assert!(drifted > 0, "seed {seed}: the last-write-wins consumer ended right");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_publishing_strategy_shows_it_and_stays_consistent() {
    let strategies = [Strategy::PublishInTx, Strategy::Outbox, Strategy::Cdc, Strategy::OutboxCdc, Strategy::TwoPhase];
    let results = run_all("wrong-key", Backend::Embedded, strategies.map(|s| (s, 1)).to_vec()).await;
    for (strategy, seed, result) in &results {
        let (reordered, late, _) = ordering(*strategy, *seed, result);
        assert!(reordered > 0 && late > 0, "{strategy}: reordered {reordered}, arrived late {late}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_by_product_the_same_restart_reorders_nothing() {
    // wrong-key, with its one change undone: the events keyed by product.
    let text = dualwrite::scenario::Scenario::load("wrong-key").unwrap().text().replace("event_key = \"order\"", "");
    assert!(!text.contains("event_key"));
    let file = std::env::temp_dir().join(format!("dw-right-key-{}.toml", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let results =
        run_all(file.to_str().unwrap(), Backend::Embedded, (1..=3).map(|s| (Strategy::Naive, s)).collect()).await;
    let _ = std::fs::remove_file(&file);
    for (strategy, seed, result) in &results {
        assert_eq!(ordering(*strategy, *seed, result), (0, 0, 0), "seed {seed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_broker_too() {
    let mut runs: Vec<(Strategy, u64)> = (1..=5).map(|seed| (Strategy::Naive, seed)).collect();
    runs.extend([(Strategy::Outbox, 1), (Strategy::Cdc, 1)]);
    let results = run_all("wrong-key", Backend::Tansu, runs).await;
    for (strategy, seed, result) in &results {
        let (reordered, late, drifted) = ordering(*strategy, *seed, result);
        assert!(reordered > 0 && late > 0, "{strategy} seed {seed} on tansu: reordered {reordered}, late {late}");
        if *strategy == Strategy::Naive {
            assert!(drifted > 0, "seed {seed} on tansu: the last-write-wins consumer ended right");
        }
    }
}
