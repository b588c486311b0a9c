//! The cache tier's lessons, each over seeds 1..=10 (every seed, none
//! picked): cache-cdc ends with no stale key under redis-timeouts and
//! cache-race, where cache-aside ends stale on at least nine seeds of ten;
//! the staleness window is measured for both; db-only is never stale and
//! shows what a read costs without a cache.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{summary, RunSpec};
use dualwrite::history::Event;
use dualwrite::reconcile::{Anomaly, Verdict};
use dualwrite::runner::RunResult;
use dualwrite::strategy::Strategy;
use tokio::sync::Semaphore;

const SEEDS: std::ops::RangeInclusive<u64> = 1..=10;
/// The length both scenarios are tuned for.
const TUNED: Duration = Duration::from_secs(15);
/// Runs at a time (each holds about ten Postgres connections).
const PARALLEL: usize = 5;

/// Every seed of `scenario` for both cache strategies.
async fn both_caches(scenario: &'static str) -> Vec<(Strategy, u64, RunResult)> {
    let room = Arc::new(Semaphore::new(PARALLEL));
    let mut runs = tokio::task::JoinSet::new();
    for strategy in [Strategy::CacheAside, Strategy::CacheCdc] {
        for seed in SEEDS {
            let room = room.clone();
            runs.spawn(async move {
                let _permit = room.acquire_owned().await.unwrap();
                (strategy, seed, RunSpec::new(strategy, scenario, seed, TUNED).run().await)
            });
        }
    }
    let mut results = Vec::new();
    while let Some(joined) = runs.join_next().await {
        results.push(joined.expect("a run panicked"));
    }
    results.sort_by_key(|(s, seed, _)| (*s, *seed));
    results
}

/// What cache-cdc's stale reads may add to an outage: the connector's
/// longest retry pause (2 s, `Backoff::BACKGROUND`), one Redis timeout
/// (500 ms by default) and half a second for the set itself and the reader.
const LAG_ALLOWANCE_MS: u64 = 3_000;

/// The longest any fault window was in force, from the faults as applied.
fn longest_window(result: &RunResult) -> u64 {
    let mut added = std::collections::HashMap::new();
    let mut longest = 0;
    for applied in &result.faults {
        match applied.action {
            "added" => {
                added.insert(applied.window, applied.at);
            }
            _ => {
                if let Some(from) = added.remove(&applied.window) {
                    longest = longest.max(applied.at.saturating_sub(from));
                }
            }
        }
    }
    longest
}

fn ms(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.0} ms"))
}

async fn cache_cdc_heals_where_cache_aside_stays_stale(scenario: &'static str) {
    let results = both_caches(scenario).await;
    let mut aside_stale = 0;
    let mut failures = Vec::new();
    for (strategy, seed, result) in &results {
        let f = &result.findings;
        let stale = f.count(Anomaly::StaleCache);
        let reads = f.cache_reads.expect("both strategies have a cache");
        eprintln!(
            "{scenario} {strategy} seed {seed}: stale keys {stale:?}, stale reads {} of {} hits, staleness window \
             p50 {} p99 {}, worst {:?} ms, reads p50 {} p99 {}",
            reads.stale_reads,
            reads.hits,
            ms(reads.stale_p50_ms),
            ms(reads.stale_p99_ms),
            reads.worst_ms,
            ms(f.latency.read_p50),
            ms(f.latency.read_p99),
        );
        // A stale read has an age, so the window is measured whenever there is one.
        assert_eq!(reads.stale_reads > 0, reads.stale_p99_ms.is_some(), "{}", summary(result));
        match strategy {
            Strategy::CacheAside => aside_stale += u32::from(stale.is_some_and(|n| n > 0)),
            _ => {
                // Stale while an outage lasts, and for the connector's lag after it.
                let bound = longest_window(result) + LAG_ALLOWANCE_MS;
                if let Some(worst) = reads.worst_ms {
                    assert!(worst <= bound, "seed {seed}: a value {worst} ms out of date, beyond {bound} ms");
                }
                let healed = stale == Some(0) && f.verdict == Verdict::Consistent && result.snapshot.drain.completed;
                if !healed {
                    failures.push(format!("seed {seed}: {}", summary(result)));
                }
            }
        }
    }
    assert!(failures.is_empty(), "cache-cdc ended stale under {scenario}:\n{}", failures.join("\n"));
    assert!(aside_stale >= 9, "cache-aside ended stale on only {aside_stale} of 10 seeds under {scenario}");
    eprintln!("{scenario}: cache-aside ended stale on {aside_stale} of 10 seeds, cache-cdc on 0 of 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_cdc_ends_with_no_stale_key_under_redis_timeouts() {
    cache_cdc_heals_where_cache_aside_stays_stale("redis-timeouts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_cdc_ends_with_no_stale_key_under_cache_race() {
    cache_cdc_heals_where_cache_aside_stays_stale("cache-race").await;
}

/// db-only: every read served the database's value as it was when the read
/// began, or a newer one; and what each read cost is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_only_is_never_stale_and_its_reads_are_timed() {
    let result = RunSpec::new(Strategy::DbOnly, "flaky-network", 3, Duration::from_secs(6)).run().await;
    let f = &result.findings;
    assert_eq!(f.verdict, Verdict::Consistent, "{}", summary(&result));
    assert_eq!(f.count(Anomaly::StaleCache), None, "db-only has no cache");
    let mut reads = 0;
    for event in result.history.whole() {
        let Event::Read(sample) = event else { continue };
        reads += 1;
        assert!(!sample.from_cache);
        // The truth is read first; a database read after it cannot be older.
        if let (Some(served), Some(truth)) = (sample.served, sample.truth) {
            assert!(served.version >= truth.version, "a stale read from the database: {sample:?}");
        }
    }
    assert!(reads > 10, "{}", summary(&result));
    assert!(f.latency.read_p50.is_some() && f.latency.read_p99.is_some(), "{}", summary(&result));
    eprintln!("db-only: {reads} reads, p50 {} p99 {}", ms(f.latency.read_p50), ms(f.latency.read_p99));
}
