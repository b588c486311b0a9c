//! The outbox relay's properties, against real Postgres and a Kafka broker
//! behind the fault proxy:
//!
//! 1. a row whose transaction commits late, with a lower `seq` than rows
//!    already published, is still published (and a relay that resumes from
//!    "the highest seq published" is shown to skip it);
//! 2. several relays at once publish each row once;
//! 3. while Kafka is down the relay retries, never marks, never dead-letters,
//!    and publishes everything once Kafka is back;
//! 4. a row Kafka can never take goes to the dead-letter table, and the
//!    backlog and the reconciler count it;
//! 5. a committed row wakes the relay at once (LISTEN/NOTIFY), long before
//!    its next poll.
//!
//! Each test works in its own schema and topic, behind its own proxy and
//! broker (see `common::stage`). What is asserted is read back from the
//! outbox table and the topic themselves.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use sqlx::Row;
use uuid::Uuid;

use dualwrite::config::Tuning;
use dualwrite::db::AppDb;
use dualwrite::event::StockChanged;
use dualwrite::history::{Clock, History, Leg, OrderId, Outcome, StockAfter};
use dualwrite::links;
use dualwrite::proxy::{Stream, ToxicKind};
use dualwrite::reconcile::{reconcile, Anomaly, Verdict};
use dualwrite::snapshot::{Backlog, DrainReport, Snapshot};
use dualwrite::strategy::outbox::relay::{Pass, Relay, Relays};
use dualwrite::strategy::{App, Strategy};

use common::stage::{eventually, order, staged, Stage, INITIAL_STOCK};

/// How long any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The stage's relays, waiting for work (warmed up, first pass done,
/// LISTENing).
async fn relays(stage: &Stage) -> Relays {
    let relays = Relays::start(&stage.env).await.unwrap();
    eventually("the relay to wait for work", PATIENCE, || stage.relay_listening()).await;
    relays
}

/// Whether every outbox row is marked published.
async fn all_published(stage: &Stage) -> bool {
    stage.outbox().await.values().all(|r| r.published)
}

async fn dead_letters(stage: &Stage) -> Vec<(Uuid, String, i32)> {
    sqlx::query("SELECT id, error, length(payload::text) AS size FROM outbox_dead_letter")
        .fetch_all(&stage.direct)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("id"), r.get("error"), r.get("size")))
        .collect()
}

/// Drops a relay off the async threads (its producer joins a thread).
async fn drop_relay(relay: Relay) {
    tokio::task::spawn_blocking(move || drop(relay)).await.unwrap();
}

// ── 1. a late commit with a lower seq ───────────────────────────────────

/// The bug the relay avoids: a relay that remembers the highest `seq` it
/// published and next claims only the rows above it. Returns what its next
/// pass would publish.
async fn unsafe_pass(stage: &Stage, highest_published: i64) -> Vec<OrderId> {
    sqlx::query_scalar("SELECT id FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(highest_published)
        .bind(dualwrite::strategy::outbox::relay::BATCH)
        .fetch_all(&stage.direct)
        .await
        .unwrap()
}

/// Two transactions insert outbox rows; the one with the lower `seq` commits
/// after a pass has published the other. The next pass publishes it; a
/// relay resuming from the highest published `seq` would never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_committed_late_with_a_lower_seq_is_published() {
    let tuning = Tuning { publish_timeout: Duration::from_secs(10), ..Tuning::default() };
    staged(Strategy::Outbox, tuning, |stage| async move {
        let relay = Relay::new(&stage.env, "dualwrite-relay-test").unwrap();

        // The early transaction takes its seq first and stays open.
        let db = AppDb::new(stage.direct.clone(), Duration::from_secs(10));
        let early = order(0);
        let mut early_tx = stage.direct.begin().await.unwrap();
        db.insert_outbox(
            &mut early_tx,
            &StockChanged::new(&early, StockAfter { quantity: INITIAL_STOCK - 1, version: 1 }),
            dualwrite::event::EventKey::Product,
        )
        .await
        .unwrap();
        let early_seq: i64 = sqlx::query_scalar("SELECT seq FROM outbox WHERE id = $1")
            .bind(early.order_id)
            .fetch_one(&mut *early_tx)
            .await
            .unwrap();

        // The late one takes a higher seq and commits first.
        let late = stage.insert_outbox(1).await[0];
        let late_seq = stage.outbox().await[&late].seq;
        assert!(early_seq < late_seq, "seq {early_seq} was taken before {late_seq}");

        let first = relay.publish_batch().await.unwrap();
        assert_eq!(first, Pass { claimed: 1, published: 1, ..Pass::default() }, "the pass sees the committed row only");
        let highest_published: i64 = sqlx::query_scalar("SELECT max(seq) FROM outbox WHERE published_at IS NOT NULL")
            .fetch_one(&stage.direct)
            .await
            .unwrap();
        assert_eq!(highest_published, late_seq);

        // Now the early transaction commits, below the published high mark.
        early_tx.commit().await.unwrap();

        // The unsafe relay would skip it for ever: the test can tell.
        assert_eq!(
            unsafe_pass(&stage, highest_published).await,
            Vec::<OrderId>::new(),
            "the unsafe relay finds nothing"
        );

        // The relay selects unpublished rows, whatever their seq.
        let second = relay.publish_batch().await.unwrap();
        assert_eq!(second, Pass { claimed: 1, published: 1, ..Pass::default() }, "the late row is published");
        assert!(all_published(&stage).await, "both rows are marked");
        let deliveries = stage.deliveries().await;
        assert_eq!(deliveries.get(&early.order_id), Some(&1), "the lower-seq row is on the topic once");
        assert_eq!(deliveries.get(&late), Some(&1), "the higher-seq row is on the topic once");
        assert_eq!(deliveries.len(), 2);
        drop_relay(relay).await;
    })
    .await;
}

// ── 2. several relays ───────────────────────────────────────────────────

/// Four relays race over 200 rows committed while they run: every row is on
/// the topic exactly once and marked exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_relays_publish_each_row_once() {
    const ROWS: usize = 200;
    let tuning = Tuning { publish_timeout: Duration::from_secs(10), ..Tuning::default() };
    staged(Strategy::Outbox, tuning, |stage| async move {
        // Acknowledgements take 200 ms, so each relay holds its claim while
        // the others look for rows: they really do overlap.
        stage.toxic(links::KAFKA, ToxicKind::Latency { latency: 200, jitter: 0 }, Stream::Downstream).await;
        let inserted = Arc::new(AtomicBool::new(false));
        let relays: Vec<_> = (0..4)
            .map(|i| {
                let relay = Relay::new(&stage.env, &format!("dualwrite-relay-{i}")).unwrap();
                let (stage, inserted) = (stage.clone(), inserted.clone());
                tokio::spawn(async move {
                    let mut published = 0;
                    loop {
                        let pass = relay.publish_batch().await.expect("the relay's database is reachable");
                        assert_eq!(
                            (pass.retry, pass.dead_lettered),
                            (0, 0),
                            "a healthy Kafka takes every row: {pass:?}"
                        );
                        published += pass.published;
                        if pass.claimed == 0 {
                            if inserted.load(Ordering::SeqCst) && all_published(&stage).await {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    drop_relay(relay).await;
                    published
                })
            })
            .collect();

        // 200 rows in 20 transactions, committed while the relays run.
        let mut ids = Vec::new();
        for _ in 0..ROWS / 10 {
            ids.extend(stage.insert_outbox(10).await);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        inserted.store(true, Ordering::SeqCst);
        let published: Vec<usize> = tokio::time::timeout(Duration::from_secs(60), join_all(relays))
            .await
            .expect("the relays finish within a minute")
            .into_iter()
            .map(|r| r.unwrap())
            .collect();

        assert_eq!(published.iter().sum::<usize>(), ROWS, "rows published by all passes together: {published:?}");
        assert!(published.iter().filter(|n| **n > 0).count() >= 2, "the relays shared the work: {published:?}");
        let rows = stage.outbox().await;
        assert_eq!(rows.len(), ROWS);
        for (id, row) in &rows {
            assert!(row.published && row.attempts == 1, "row {id} marked once: {row:?}");
        }
        stage.heal().await;
        let deliveries = stage.deliveries().await;
        assert_eq!(deliveries.len(), ROWS, "every row is on the topic");
        for id in &ids {
            assert_eq!(deliveries.get(id), Some(&1), "row {id} is on the topic exactly once");
        }
    })
    .await;
}

// ── 3. Kafka down ───────────────────────────────────────────────────────

/// While Kafka is down, passes report the rows for retry and leave them
/// unmarked and out of the dead-letter table; the relay's loop keeps trying
/// and publishes every row once Kafka is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_retries_while_kafka_is_down_and_never_gives_up() {
    // The default 2 s delivery timeout: each pass while Kafka is down ends
    // after 2 s with its rows for retry.
    staged(Strategy::Outbox, Tuning::default(), |stage| async move {
        // One pass, seen from inside.
        let relay = Relay::new(&stage.env, "dualwrite-relay-probe").unwrap();
        stage.link(links::KAFKA, false).await;
        let first = stage.insert_outbox(3).await;
        for _ in 0..2 {
            let pass = relay.publish_batch().await.unwrap();
            assert_eq!(pass, Pass { claimed: 3, retry: 3, ..Pass::default() }, "every row is left for the next pass");
            for (id, row) in stage.outbox().await {
                assert!(!row.published && row.attempts == 0, "row {id} not marked: {row:?}");
            }
            assert_eq!(dead_letters(&stage).await, vec![], "nothing dead-lettered");
        }
        stage.heal().await;
        eventually("a pass to publish the rows once Kafka is back", PATIENCE, || async {
            relay.publish_batch().await.unwrap();
            all_published(&stage).await
        })
        .await;
        drop_relay(relay).await;

        // The relay's own loop, through a longer outage.
        let relays = relays(&stage).await;
        stage.link(links::KAFKA, false).await;
        let second = stage.insert_outbox(5).await;
        // Two passes and their backoff, at least.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            relays.backlog().await.ok(),
            Some(Backlog { outbox_unpublished: 5, dead_letters: 0, ..Backlog::default() }),
            "the rows wait, neither marked nor dead-lettered"
        );
        stage.heal().await;
        eventually("the relay to publish everything once Kafka is back", PATIENCE, || all_published(&stage)).await;
        assert_eq!(relays.backlog().await.ok(), Some(Backlog::default()));
        relays.stop().await;

        let deliveries = stage.deliveries().await;
        for id in first.iter().chain(&second) {
            assert!(deliveries.get(id).is_some_and(|n| *n >= 1), "row {id} is on the topic");
        }
    })
    .await;
}

// ── 4. permanent failures ───────────────────────────────────────────────

/// A payload above librdkafka's `message.max.bytes` (1 000 000 by default).
fn too_large(order_id: OrderId) -> serde_json::Value {
    serde_json::json!({
        "order_id": order_id,
        "product_id": 1,
        "delta": -1,
        "quantity": INITIAL_STOCK - 1,
        "version": 1,
        "padding": "x".repeat(1_100_000),
    })
}

/// A row Kafka refuses for what it is goes to the dead-letter table with the
/// error, the rows around it are published, and the backlog — and so the
/// reconciler — counts the dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_kafka_refuses_for_good_is_dead_lettered_and_counted() {
    staged(Strategy::Outbox, Tuning::default(), |stage| async move {
        // librdkafka refuses it itself, before anything is sent, and the
        // refusal is permanent.
        let publisher = stage.env.publisher("dualwrite-too-large").unwrap();
        let payload = serde_json::to_vec(&too_large(Uuid::new_v4())).unwrap();
        assert!(payload.len() > 1_000_000);
        let started = Instant::now();
        let delivery = publisher.publish_detailed("1", &payload).await;
        assert_eq!(delivery.told.outcome, Outcome::Fail, "{delivery:?}");
        assert!(delivery.permanent, "{delivery:?}");
        let error = delivery.told.error.clone().unwrap_or_default();
        assert!(error.contains("MessageSizeTooLarge"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1), "refused locally, not after the delivery timeout");
        tokio::task::spawn_blocking(move || drop(publisher)).await.unwrap();

        let relays = relays(&stage).await;
        let before = stage.insert_outbox(1).await[0];
        let big = Uuid::new_v4();
        sqlx::query(include_str!("../sql/outbox_insert.sql"))
            .bind(big)
            .bind("1")
            .bind(sqlx::types::Json(too_large(big)))
            .execute(&stage.direct)
            .await
            .unwrap();
        let after = stage.insert_outbox(1).await[0];

        eventually("the relay to deal with every row", PATIENCE, || async {
            relays.backlog().await.is_ok_and(|b| b.outbox_unpublished == 0)
        })
        .await;
        let backlog = relays.backlog().await.unwrap();
        assert_eq!(backlog, Backlog { outbox_unpublished: 0, dead_letters: 1, ..Backlog::default() });
        let parked = dead_letters(&stage).await;
        assert_eq!(parked.len(), 1);
        let (id, error, size) = &parked[0];
        assert_eq!(*id, big, "the refused row is the dead letter");
        assert!(error.contains("MessageSizeTooLarge"), "the error is kept: {error}");
        assert!(*size > 1_000_000, "with its whole payload");
        assert!(!stage.outbox().await.contains_key(&big), "and out of the outbox");
        relays.stop().await;

        let deliveries = stage.deliveries().await;
        assert_eq!(deliveries.get(&before), Some(&1));
        assert_eq!(deliveries.get(&after), Some(&1));
        assert_eq!(deliveries.get(&big), None);

        // The reconciler counts it as backlog, and the run as inconsistent.
        let snapshot = Snapshot {
            backlog: Some(Ok(backlog)),
            drain: DrainReport { completed: true, ..DrainReport::default() },
            ..Snapshot::default()
        };
        let findings = reconcile(&dualwrite::history::Events::new(), &snapshot);
        assert_eq!(findings.count(Anomaly::Backlog), Some(1), "{findings:#?}");
        assert_eq!(findings.dead_letters, Some(1));
        assert_eq!(findings.verdict, Verdict::Inconsistent, "{findings:#?}");
    })
    .await;
}

// ── 5. NOTIFY ───────────────────────────────────────────────────────────

/// With a 10 s poll interval, committed orders are published within a
/// second of their commit: the relay was woken by the commit's NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_relay_at_once() {
    const POLL: Duration = Duration::from_secs(10);
    const PROMPT: Duration = Duration::from_secs(1);
    let tuning = Tuning { relay_poll: POLL, ..Tuning::default() };
    staged(Strategy::Outbox, tuning, |stage| async move {
        let relays = relays(&stage).await;
        let waiting_since = Instant::now();
        let app = App::connect(&stage.env).unwrap();
        let history = History::new(Clock::start());
        let mut ids = HashSet::new();
        for n in 0..3 {
            let order = order(n);
            app.write(&order, &history).await;
            let committed = Instant::now();
            let told = dualwrite::history::write_records(&history.events().into())
                .into_iter()
                .find(|r| r.order.order_id == order.order_id)
                .and_then(|r| r.outcome(Leg::Db));
            assert_eq!(told, Some(Outcome::Ok), "the order committed");
            eventually("the order's row to be published", PROMPT, || async {
                stage.outbox().await[&order.order_id].published
            })
            .await;
            assert!(committed.elapsed() < PROMPT, "published {:?} after the commit", committed.elapsed());
            ids.insert(order.order_id);
        }
        assert!(waiting_since.elapsed() < POLL, "all within one poll interval, so no poll published them");
        relays.stop().await;
        let deliveries = stage.deliveries().await;
        assert_eq!(deliveries.keys().copied().collect::<HashSet<_>>(), ids);
    })
    .await;
}
