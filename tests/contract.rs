//! Every strategy, on the real services, on both brokers.
//!
//! The contract (one body, run per strategy and per backend): on a calm day
//! every strategy is consistent, loses and invents nothing, and the topic
//! holds exactly one event per committed order. Then each strategy's lesson:
//! the failure its module documentation promises, under the scenario that
//! shows it.

mod common;

use std::time::Duration;

use common::{summary, Backend, RunSpec};
use dualwrite::reconcile::{Anomaly, Verdict};
use dualwrite::strategy::Strategy;

const CALM: Duration = Duration::from_secs(4);
/// What the fault scenarios were tuned for.
const TUNED: Duration = Duration::from_secs(15);

async fn calm_contract(strategy: Strategy, backend: Backend) {
    let result = RunSpec::new(strategy, "calm", 7, CALM).on(backend).run().await;
    let f = &result.findings;
    let s = summary(&result);
    assert_eq!(f.verdict, Verdict::Consistent, "{s}");
    assert!(f.orders.attempted >= 12, "{s}");
    assert_eq!(f.orders.committed, f.orders.attempted, "{s}");
    assert_eq!(f.orders.acknowledged, f.orders.attempted, "{s}");
    for (anomaly, tally) in &f.anomalies {
        assert_eq!(tally.count, 0, "{anomaly:?} on a calm day: {s}");
    }
    assert!(result.snapshot.drain.completed, "{s}");
    if strategy.publishes() {
        // One record per committed order, read back from the broker.
        let topic = result.snapshot.topic.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(topic.records.len() as u64, f.orders.committed, "{s}");
        assert!(f.latency.event_lag_p50.is_some() && f.latency.event_lag_p99.is_some(), "no lag measured: {s}");
        assert_eq!(f.count(Anomaly::Lost), Some(0));
    } else {
        assert!(result.snapshot.topic.is_none());
        assert_eq!(f.count(Anomaly::Lost), None, "cache-aside publishes nothing: lost does not apply");
    }
    assert_eq!(f.count(Anomaly::StaleCache).is_some(), strategy.caches());
    assert!(f.pool.probes > 0 && f.pool.acquire_timeouts == 0, "{s}");
}

macro_rules! contract {
    ($($name:ident: $strategy:expr, $backend:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            calm_contract($strategy, $backend).await;
        }
    )*};
}

contract! {
    calm_naive_embedded: Strategy::Naive, Backend::Embedded;
    calm_publish_in_tx_embedded: Strategy::PublishInTx, Backend::Embedded;
    calm_cache_aside_embedded: Strategy::CacheAside, Backend::Embedded;
    calm_outbox_embedded: Strategy::Outbox, Backend::Embedded;
    calm_cdc_embedded: Strategy::Cdc, Backend::Embedded;
    calm_outbox_cdc_embedded: Strategy::OutboxCdc, Backend::Embedded;
    calm_two_phase_embedded: Strategy::TwoPhase, Backend::Embedded;
    calm_db_only_embedded: Strategy::DbOnly, Backend::Embedded;
    calm_cache_cdc_embedded: Strategy::CacheCdc, Backend::Embedded;
    calm_naive_tansu: Strategy::Naive, Backend::Tansu;
    calm_publish_in_tx_tansu: Strategy::PublishInTx, Backend::Tansu;
    calm_cache_aside_tansu: Strategy::CacheAside, Backend::Tansu;
    calm_outbox_tansu: Strategy::Outbox, Backend::Tansu;
    calm_cdc_tansu: Strategy::Cdc, Backend::Tansu;
    calm_outbox_cdc_tansu: Strategy::OutboxCdc, Backend::Tansu;
}

// The same contract on containers (PostgreSQL, Redis, Redpanda, Toxiproxy):
// `cargo test --features testcontainers --test contract`, with Docker.
#[cfg(feature = "testcontainers")]
contract! {
    calm_naive_containers: Strategy::Naive, Backend::Containers;
    calm_publish_in_tx_containers: Strategy::PublishInTx, Backend::Containers;
    calm_cache_aside_containers: Strategy::CacheAside, Backend::Containers;
    calm_outbox_containers: Strategy::Outbox, Backend::Containers;
    calm_cdc_containers: Strategy::Cdc, Backend::Containers;
    calm_outbox_cdc_containers: Strategy::OutboxCdc, Backend::Containers;
}

/// naive: committed, then the publish fails → lost events. The issue's
/// command, `run naive --scenario kafka-resets --seed 1 --duration 20s`, run
/// twice: the same fault schedule both times, lost events both times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_loses_events_when_kafka_resets_and_the_schedule_repeats() {
    let spec = || RunSpec::new(Strategy::Naive, "kafka-resets", 1, Duration::from_secs(20));
    let (a, b) = tokio::join!(spec().run(), spec().run());
    for result in [&a, &b] {
        let f = &result.findings;
        assert!(f.count(Anomaly::Lost).unwrap() > 0, "{}", summary(result));
        assert_eq!(f.verdict, Verdict::Inconsistent, "kafka-resets expects naive inconsistent: {}", summary(result));
        assert_eq!(f.count(Anomaly::Ghost), Some(0));
    }
    let applied = |r: &dualwrite::runner::RunResult| {
        r.faults.iter().map(|f| (f.window, f.action, f.description.clone())).collect::<Vec<_>>()
    };
    assert!(!applied(&a).is_empty());
    assert_eq!(applied(&a), applied(&b), "same seed, same faults");
}

/// The same, on a real Kafka-API broker advertising the proxy: faults reach
/// every connection, not only the bootstrap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_loses_events_on_a_real_broker_too() {
    let result = RunSpec::new(Strategy::Naive, "kafka-outage", 2, TUNED).on(Backend::Tansu).run().await;
    assert!(result.findings.count(Anomaly::Lost).unwrap() > 0, "{}", summary(&result));
}

/// publish-in-tx: published, then the commit is lost → ghost events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_in_tx_leaves_ghosts_when_postgres_resets() {
    let result = RunSpec::new(Strategy::PublishInTx, "postgres-resets", 3, TUNED).run().await;
    let f = &result.findings;
    assert!(f.count(Anomaly::Ghost).unwrap() > 0, "{}", summary(&result));
    assert_eq!(f.verdict, Verdict::Inconsistent);
    // Every ghost is on the topic and absent from the orders table.
    let committed: std::collections::HashSet<_> = result.snapshot.orders.iter().map(|o| o.order_id).collect();
    for example in &f.anomalies[&Anomaly::Ghost].examples {
        assert!(!committed.contains(&example.order_id.unwrap()));
    }
}

/// publish-in-tx holds a pooled connection across the publish: a slow Kafka
/// starves unrelated readers of the pool. naive, in the same scenario, does
/// not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_kafka_starves_the_pool_for_publish_in_tx_only() {
    let (tx, naive, outbox) = tokio::join!(
        RunSpec::new(Strategy::PublishInTx, "slow-kafka", 4, TUNED).run(),
        RunSpec::new(Strategy::Naive, "slow-kafka", 4, TUNED).run(),
        RunSpec::new(Strategy::Outbox, "slow-kafka", 4, TUNED).run(),
    );
    assert!(tx.findings.pool.acquire_timeouts > 0, "{}", summary(&tx));
    assert_eq!(naive.findings.pool.acquire_timeouts, 0, "{}", summary(&naive));
    assert_eq!(outbox.findings.pool.acquire_timeouts, 0, "{}", summary(&outbox));
    // The starved lookups waited the whole acquire timeout.
    assert!(tx.findings.pool.unrelated_p99_ms.unwrap() >= 900.0, "{:?}", tx.findings.pool);
}

/// cache-aside: lost deletes leave stale keys, and the count is what Redis
/// and the database hold when read directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_aside_ends_stale_when_redis_swallows_deletes() {
    let result = RunSpec::new(Strategy::CacheAside, "redis-timeouts", 5, TUNED).keep().run().await;
    let stale = result.findings.count(Anomaly::StaleCache).unwrap();
    assert!(stale > 0, "{}", summary(&result));
    assert!(result.findings.cache_reads.unwrap().stale_reads > 0, "{}", summary(&result));

    // Independently: every key of the run in Redis against the stock table.
    let ns = &result.namespace;
    let mut redis =
        redis::Client::open("redis://127.0.0.1:6379").unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}*", ns.redis_prefix)).query_async(&mut redis).await.unwrap();
    let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await.unwrap();
    let mut differ = 0;
    for key in &keys {
        let cached: String = redis::cmd("GET").arg(key).query_async(&mut redis).await.unwrap();
        let product: i32 = key.rsplit(':').next().unwrap().parse().unwrap();
        let (quantity, version): (i64, i64) =
            sqlx::query_as(&format!("SELECT quantity, version FROM \"{}\".stock WHERE product_id = $1", ns.schema))
                .bind(product)
                .fetch_one(&pool)
                .await
                .unwrap();
        if cached != format!("{quantity}:{version}") {
            differ += 1;
        }
    }
    assert_eq!(differ, stale, "dualwrite counted {stale} stale keys; Redis and Postgres read directly say {differ}");

    // Clean up what --keep left.
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await.unwrap();
    }
    sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", ns.schema)).execute(&pool).await.unwrap();
}

/// cache-aside: the set-after-delete race, widened by a seeded pause.
///
/// A race's end state depends on timing: a product stays stale only if its
/// last old fill lands before any fresh one. The seed decides how wide that
/// margin is. Measured with 16 runs at a time, seed 5 ended with 2–4 stale
/// keys every time; seed 6 (used before) ended with 0 or 1, so it did not
/// reproduce the race reliably under load. The seed only makes the race
/// likely: the test checks in the history that the race is what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_aside_ends_stale_from_the_set_after_delete_race() {
    let result = RunSpec::new(Strategy::CacheAside, "cache-race", 5, TUNED).run().await;
    let f = &result.findings;
    assert!(f.count(Anomaly::StaleCache).unwrap() > 0, "{}", summary(&result));
    assert!(f.cache_reads.unwrap().stale_reads > 0);
    // No fault was involved: every order committed and every delete succeeded.
    assert_eq!(f.orders.acknowledged, f.orders.attempted, "{}", summary(&result));
    // Every stale key is the race's: with no fault, nothing else leaves one.
    let races = set_after_delete_races(&result);
    let stale = f.count(Anomaly::StaleCache).unwrap();
    assert_eq!(races.len() as u64, stale, "stale keys the history explains: {races:?}; {}", summary(&result));
}

/// The stale keys at the end that the history explains as the race: the
/// product's last delete (of a newer version) succeeded, and a fill of
/// exactly the stale value completed after it — the set came after the
/// delete. Returns `(product, stale version, the deleted write's version)`.
fn set_after_delete_races(result: &dualwrite::runner::RunResult) -> Vec<(i32, i64, i64)> {
    use dualwrite::history::{Event, Leg, Outcome};
    use std::collections::HashMap;
    let (mut product, mut version) = (HashMap::new(), HashMap::new());
    let (mut deletes, mut fills) = (Vec::new(), Vec::new());
    // When each delete was sent: a set that the delete did not remove ran
    // after the delete ran, which is after it was sent, and before the
    // reader noted its fill (its sample's time). Comparing with the
    // delete's completion instead would depend on which of the two tasks
    // the scheduler ran first after their replies.
    let mut sent = HashMap::new();
    for event in result.history.iter() {
        match &event {
            Event::Begin { order, .. } => {
                product.insert(order.order_id, order.product_id);
            }
            Event::Wrote { order_id, after, .. } => {
                version.insert(*order_id, after.version);
            }
            Event::Invoke { at, order_id, leg: Leg::Cache } => {
                sent.insert(*order_id, *at);
            }
            Event::Complete { order_id, leg: Leg::Cache, told, .. } if told.outcome == Outcome::Ok => {
                deletes.push((product[order_id], version[order_id], sent[order_id]));
            }
            Event::Read(read) if read.filled_cache => {
                fills.push((read.product_id, read.served.expect("a fill serves what it read").version, read.at));
            }
            _ => {}
        }
    }
    let truth: HashMap<i32, i64> = result.snapshot.stock.iter().map(|s| (s.product_id, s.version)).collect();
    let cached = result.snapshot.cache.as_ref().expect("cache-aside has a cache").as_ref().expect("the cache was read");
    let mut races = Vec::new();
    for entry in cached {
        let Ok(value) = &entry.value else { continue };
        if value.version >= truth[&entry.product_id] {
            continue;
        }
        let p = entry.product_id;
        // The product's last delete: the value outlived it, so the set that
        // put it there ran after that delete.
        let Some(&(_, newer, delete_sent)) = deletes.iter().filter(|d| d.0 == p).max_by_key(|d| d.2) else { continue };
        let filled_after =
            fills.iter().any(|&(q, v, filled_at)| q == p && v == value.version && filled_at > delete_sent);
        if newer > value.version && filled_after {
            races.push((p, value.version, newer));
        }
    }
    races
}

/// The fixes under the scenario that breaks naive the most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixes_lose_nothing_in_a_kafka_outage_and_report_their_lag() {
    let (outbox, cdc, outbox_cdc) = tokio::join!(
        RunSpec::new(Strategy::Outbox, "kafka-outage", 8, TUNED).run(),
        RunSpec::new(Strategy::Cdc, "kafka-outage", 8, TUNED).run(),
        RunSpec::new(Strategy::OutboxCdc, "kafka-outage", 8, TUNED).run(),
    );
    for result in [&outbox, &cdc, &outbox_cdc] {
        let f = &result.findings;
        assert_eq!(f.verdict, Verdict::Consistent, "{}", summary(result));
        assert_eq!((f.count(Anomaly::Lost), f.count(Anomaly::Ghost)), (Some(0), Some(0)));
        assert_eq!(f.count(Anomaly::ProjectionDrift), Some(0));
        // They fell behind during the outage and caught up: the lag shows it.
        assert!(f.latency.event_lag_p99.unwrap() > 1000.0, "{}: {:?}", result.strategy, f.latency);
    }
}
