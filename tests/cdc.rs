//! The CDC strategies end to end: real Postgres (logical decoding), the
//! connector, and a Kafka broker — the embedded one, and tansu for one
//! contract body.
//!
//! Each test works in its own schema, slot, publication and topic (all named
//! `dw_<strategy>_<random>`), so the tests run in parallel with each other
//! and with real runs. Every wait is bounded. The slot is dropped even when a
//! test fails: [`with_run`] catches the panic, cleans up, then re-raises it.
//!
//! What is asserted is read back from the topic itself, not from the
//! connector's own bookkeeping: the ledger is only used to know when to look.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::message::Message;
use uuid::Uuid;

use dualwrite::config::Tuning;
use dualwrite::event::StockChanged;
use dualwrite::history::{Clock, History, OrderId, StockAfter};
use dualwrite::kafka::embedded::EmbeddedKafka;
use dualwrite::kafka::topic::{self, TopicRecord};
use dualwrite::strategy::background::Background;
use dualwrite::strategy::{self, App, Env, Links, OutboxCdcMode, Strategy};

mod common;

use common::stage::{order, PRODUCTS};

const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// How long any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

// ── brokers ─────────────────────────────────────────────────────────────

/// A Kafka-API broker for one test.
enum Broker {
    Embedded(EmbeddedKafka),
    Tansu(common::Tansu),
}

impl Broker {
    fn embedded() -> Broker {
        Broker::Embedded(EmbeddedKafka::start().expect("the embedded Kafka starts"))
    }

    /// A tansu of the test's own, advertising itself (no proxy here).
    fn tansu() -> Broker {
        Broker::Tansu(common::Tansu::start(None))
    }

    fn bootstrap(&self) -> SocketAddr {
        match self {
            Broker::Embedded(k) => k.listen_addr(),
            Broker::Tansu(t) => t.listen,
        }
    }

    async fn create_topic(&self, name: &str) {
        match self {
            Broker::Embedded(k) => k.create_topic(name, topic::PARTITIONS).expect("topic created"),
            Broker::Tansu(t) => topic::create_topic(&t.listen.to_string(), name).await.expect("topic created"),
        }
    }
}

// ── a run's namespace ───────────────────────────────────────────────────

fn env(strategy: Strategy, mode: OutboxCdcMode, broker: &Broker) -> Env {
    let schema = format!("dw_{}_{}", strategy.name().replace('-', "_"), &Uuid::new_v4().simple().to_string()[..8]);
    let postgres: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    Env {
        strategy,
        // A database of the run's own, as the runner gives a CDC run (see
        // `Strategy::needs_own_database`): created and dropped by `with_env`.
        db: dualwrite::db::parse_url(DATABASE_URL).unwrap().database(&schema),
        topic: schema.clone(),
        redis_url: "redis://127.0.0.1:6379".into(),
        redis_prefix: format!("{schema}:"),
        schema,
        // No proxy in these tests: every link is the service itself.
        links: Links {
            postgres,
            postgres_relay: postgres,
            redis: "127.0.0.1:6379".parse().unwrap(),
            kafka: broker.bootstrap(),
        },
        kafka: broker.bootstrap().to_string(),
        tuning: Tuning { outbox_cdc_mode: mode, ..Tuning::default() },
        seed: 0,
        knobs: Default::default(),
    }
}

/// Prepares a namespace as the runner does (schema, topic, slot and
/// publication), runs `body`, and removes it all — even if `body` panics.
async fn with_run<F, Fut>(strategy: Strategy, mode: OutboxCdcMode, broker: &Broker, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    let env = env(strategy, mode, broker);
    with_env(env, broker, body).await;
}

/// [`with_run`] for an `Env` the test has adjusted.
async fn with_env<F, Fut>(env: Env, broker: &Broker, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    // RUST_LOG=dualwrite=debug shows the connector's sessions and retries.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = dualwrite::db::parse_url(DATABASE_URL).unwrap();
    let database = env.db.get_database().expect("the run's database").to_string();
    dualwrite::db::create_database(&server, &database).await.expect("database created");
    dualwrite::db::create_schema(&env.db, &env.schema, PRODUCTS, 1000).await.expect("schema created");
    broker.create_topic(&env.topic).await;
    strategy::prepare(&env).await.expect("slot and publication created");
    let outcome = AssertUnwindSafe(body(env.clone())).catch_unwind().await;
    // A connector dropped by a panic has had its task aborted; cleanup
    // retries while its walsender is still exiting.
    let cleaned = strategy::cleanup(&env).await;
    dualwrite::db::drop_schema(&env.db, &env.schema).await.expect("schema dropped");
    // After the slot: a database holding a slot cannot be dropped.
    if cleaned.is_ok() {
        dualwrite::db::drop_database(&server, &database).await.expect("database dropped");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    cleaned.expect("slot and publication dropped");
}

/// Places `n` orders through the strategy's app, one after another.
async fn place_orders(app: &App, history: &History, n: usize) -> Vec<OrderId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let order = order(i);
        app.write(&order, history).await;
        ids.push(order.order_id);
    }
    ids
}

/// The ids of every committed order, read from the database.
async fn committed_orders(env: &Env) -> HashSet<OrderId> {
    let pool = dualwrite::db::connect_direct(&env.db, Some(&env.schema), 1).await.unwrap();
    let (orders, _) = dualwrite::db::read_tables(&pool).await.unwrap();
    pool.close().await;
    orders.into_iter().map(|o| o.order_id).collect()
}

async fn eventually<Fut: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> Fut) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "gave up after {PATIENCE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn connector(background: &Background) -> &dualwrite::cdc::Connector {
    match background {
        Background::Connector(c) => c,
        _ => panic!("expected the CDC connector as the background component"),
    }
}

/// Every record of the topic, decoded (an undecodable record fails the test).
async fn topic_events(env: &Env) -> Vec<(TopicRecord, StockChanged)> {
    let records =
        dualwrite::kafka::read::read_all(&env.kafka, &env.topic, Duration::from_secs(20)).await.expect("topic read");
    records
        .into_iter()
        .map(|r| {
            let event = r.event.clone().unwrap_or_else(|e| panic!("undecodable record {r:?}: {e}"));
            assert_eq!(r.key.as_deref(), Some(event.product_id.to_string().as_str()), "keyed by product");
            (r, event)
        })
        .collect()
}

/// How many times each order is on the topic.
fn deliveries(events: &[(TopicRecord, StockChanged)]) -> HashMap<OrderId, usize> {
    let mut counts = HashMap::new();
    for (_, e) in events {
        *counts.entry(e.order_id).or_insert(0) += 1;
    }
    counts
}

/// The slot's confirmed position, as the server has it.
/// How often the connector's replication client reports its confirmed
/// position to the server (`STATUS_INTERVAL` in src/cdc/connector.rs; its
/// wake-up interval is the same).
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

async fn confirmed_flush(env: &Env) -> Option<String> {
    let pool = dualwrite::db::connect_direct(&env.db, None, 1).await.unwrap();
    let lsn: Option<Option<String>> =
        sqlx::query_scalar("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1")
            .bind(&env.schema)
            .fetch_optional(&pool)
            .await
            .unwrap();
    pool.close().await;
    lsn.flatten()
}

// ── the contract: committed orders reach the topic, and only those ──────

/// Writes something that would become an event, and rolls it back; then
/// commits one that no capture of this run should see (another run's
/// message, or another schema's row). Returns the order id of each.
async fn write_what_must_not_be_published(env: &Env) -> Vec<OrderId> {
    let pool = dualwrite::db::connect_direct(&env.db, Some(&env.schema), 1).await.unwrap();
    let rolled_back = order(0);
    let event =
        String::from_utf8(StockChanged::new(&rolled_back, StockAfter { quantity: 0, version: 999 }).to_json()).unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE stock SET quantity = quantity - 1, version = version + 1 WHERE product_id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO orders (order_id, product_id, delta, quantity, version) VALUES ($1, 1, -1, 0, 999)")
        .bind(rolled_back.order_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT pg_logical_emit_message(true, $1::text, $2::text)")
        .bind(&env.schema)
        .bind(&event)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, 'stock', '1', 'StockChanged', $2::text::jsonb)")
        .bind(rolled_back.order_id)
        .bind(&event)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    // Committed, but not this run's: a message with another run's prefix.
    let foreign = order(0);
    let event =
        String::from_utf8(StockChanged::new(&foreign, StockAfter { quantity: 0, version: 999 }).to_json()).unwrap();
    sqlx::query("SELECT pg_logical_emit_message(true, 'dw_some_other_run', $1::text)")
        .bind(&event)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    vec![rolled_back.order_id, foreign.order_id]
}

/// The contract every CDC capture meets, on any broker.
async fn only_committed_orders_are_published(env: Env) {
    let history = History::new(Clock::start());
    let background = Background::start(&env).await.unwrap();
    let app = App::connect(&env).unwrap();

    let mut placed = place_orders(&app, &history, 5).await;
    let never = write_what_must_not_be_published(&env).await;
    placed.extend(place_orders(&app, &history, 5).await);

    eventually("the connector to publish every committed order", || background.caught_up(&env)).await;
    let committed = committed_orders(&env).await;
    assert_eq!(committed, placed.iter().copied().collect::<HashSet<_>>(), "every order committed");

    let events = topic_events(&env).await;
    let counts = deliveries(&events);
    for id in &placed {
        assert_eq!(counts.get(id), Some(&1), "order {id} published exactly once");
    }
    for id in &never {
        assert!(!counts.contains_key(id), "order {id} was rolled back or not this run's, yet published");
    }
    assert_eq!(events.len(), placed.len(), "nothing else on the topic");
    // Keyed by product, so each product's versions arrive in order.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, e) in &events {
        let before = last.insert(e.product_id, e.version).unwrap_or(0);
        assert!(e.version > before, "product {} went from version {before} to {}", e.product_id, e.version);
    }
    // Idle, the connector confirms the server's keepalive positions too, so
    // the slot does not hold the WAL that other runs keep writing.
    eventually("the slot's lag to shrink below 64 KiB", || async {
        matches!(background.backlog(&env).await.and_then(|b| b.ok()?.slot_lag_bytes), Some(lag) if lag < 64 * 1024)
    })
    .await;
    background.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_publishes_committed_orders_and_only_those() {
    let broker = Broker::embedded();
    with_run(Strategy::Cdc, OutboxCdcMode::Message, &broker, only_committed_orders_are_published).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_cdc_messages_publish_committed_orders_and_only_those() {
    let broker = Broker::embedded();
    with_run(Strategy::OutboxCdc, OutboxCdcMode::Message, &broker, only_committed_orders_are_published).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_cdc_table_publishes_committed_orders_and_only_those() {
    let broker = Broker::embedded();
    with_run(Strategy::OutboxCdc, OutboxCdcMode::Table, &broker, |env| async move {
        let schema = env.schema.clone();
        let db = env.db.clone();
        only_committed_orders_are_published(env).await;
        // The rows were deleted in their own transactions: the table stays empty.
        let pool = dualwrite::db::connect_direct(&db, Some(&schema), 1).await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.unwrap();
        pool.close().await;
        assert_eq!(rows, 0, "the outbox table keeps no rows");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_on_tansu_publishes_committed_orders_and_only_those() {
    let broker = Broker::tansu();
    with_run(Strategy::Cdc, OutboxCdcMode::Message, &broker, only_committed_orders_are_published).await;
}

// ── crashes ─────────────────────────────────────────────────────────────

/// The duplicates of a crash, made certain: the connector delivers every
/// event but confirms none (the `hold_acks` test hook — as if each crash
/// struck between the broker's acknowledgement and the slot's confirmation),
/// then dies. Its successor starts from the slot, which still has them all,
/// and publishes every one again. Nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_confirmation_publishes_again_and_loses_nothing() {
    let broker = Broker::embedded();
    with_run(Strategy::Cdc, OutboxCdcMode::Message, &broker, |env| async move {
        let history = History::new(Clock::start());
        let mut background = Background::start(&env).await.unwrap();
        let app = App::connect(&env).unwrap();
        let ledger = connector(&background).ledger().clone();
        ledger.hold_acks(true);
        let confirmed_before = ledger.confirmed();
        // The slot's position is read once a position handed over before the
        // hold has reached the server (with a status update, at most
        // STATUS_INTERVAL later): the connector has been streaming since it
        // started, its producer warming up, and may have handed one over just
        // before.
        tokio::time::sleep(STATUS_INTERVAL * 5 / 2).await;
        let slot_before = confirmed_flush(&env).await;

        let first = place_orders(&app, &history, 8).await;
        eventually("the broker to acknowledge the first orders", || {
            let ledger = ledger.clone();
            let first = first.clone();
            async move { ledger.all_acknowledged(&first) }
        })
        .await;
        // Delivered, yet nothing confirmed. First the connector's own word:
        // it handed its replication client no new position (a position it
        // hands over is recorded at that moment, before the server hears of it).
        assert_eq!(ledger.confirmed(), confirmed_before, "the connector confirmed a position while acks are held");
        // Then the server's: a position reaches it only with the client's
        // next status update, at most STATUS_INTERVAL later. Waiting several
        // of those intervals makes "the slot has not moved" evidence — a
        // position handed over would have arrived by now (the restart below
        // shows that one does) — so the server would hand them all out again.
        tokio::time::sleep(STATUS_INTERVAL * 5 / 2).await;
        assert_eq!(ledger.confirmed(), confirmed_before, "the connector confirmed a position while acks are held");
        assert_eq!(confirmed_flush(&env).await, slot_before, "nothing confirmed while acks are held");

        background.crash().await;
        ledger.hold_acks(false);
        background.restart(&env, &history).await.unwrap();
        eventually("the restarted connector to publish everything again", || {
            let ledger = ledger.clone();
            async move { ledger.deliveries() >= 16 }
        })
        .await;

        let second = place_orders(&app, &history, 4).await;
        eventually("the connector to publish every committed order", || background.caught_up(&env)).await;
        eventually("the restarted connector to confirm a position", || {
            let env = env.clone();
            let before = slot_before.clone();
            async move { confirmed_flush(&env).await != before }
        })
        .await;
        background.stop().await;

        let counts = deliveries(&topic_events(&env).await);
        for id in &first {
            assert_eq!(counts.get(id), Some(&2), "order {id}: delivered, unconfirmed, crashed → published twice");
        }
        for id in &second {
            assert_eq!(counts.get(id), Some(&1), "order {id}, after the restart, published once");
        }
        assert!(ledger.sessions() >= 2, "the restart opened a new replication session");
    })
    .await;
}

/// Crashes at arbitrary points while orders keep committing: whatever the
/// timing, every committed order reaches the topic (duplicates ≥ 0, loss = 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_under_load_lose_nothing() {
    let broker = Broker::embedded();
    with_run(Strategy::OutboxCdc, OutboxCdcMode::Message, &broker, |env| async move {
        let history = History::new(Clock::start());
        let mut background = Background::start(&env).await.unwrap();
        let app = Arc::new(App::connect(&env).unwrap());
        let writer = {
            let (app, history) = (app.clone(), history.clone());
            tokio::spawn(async move {
                for i in 0..300 {
                    app.write(&order(i), &history).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        for pause in [300, 250, 400] {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            background.crash().await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            background.restart(&env, &history).await.unwrap();
        }
        writer.await.unwrap();
        eventually("the connector to publish every committed order", || background.caught_up(&env)).await;
        let ledger = connector(&background).ledger().clone();
        background.stop().await;

        let committed = committed_orders(&env).await;
        let counts = deliveries(&topic_events(&env).await);
        let lost: Vec<_> = committed.iter().filter(|id| !counts.contains_key(id)).collect();
        let ghosts: Vec<_> = counts.keys().filter(|id| !committed.contains(id)).collect();
        let duplicates: usize = counts.values().map(|n| n - 1).sum();
        eprintln!(
            "{} committed, {} records, {duplicates} duplicates, {} sessions",
            committed.len(),
            counts.values().sum::<usize>(),
            ledger.sessions()
        );
        assert!(committed.len() >= 250, "most orders committed ({})", committed.len());
        assert!(lost.is_empty(), "lost: {lost:?}");
        assert!(ghosts.is_empty(), "ghosts: {ghosts:?}");
        assert!(ledger.sessions() >= 4, "three restarts, three new sessions");
    })
    .await;
}

// ── a Kafka outage ──────────────────────────────────────────────────────

/// A TCP forwarder to the broker that the test can cut and heal: a small
/// stand-in for the fault proxy's `down`. The broker advertises it, so every
/// connection of every client goes through it.
struct Cuttable {
    addr: SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Cuttable {
    async fn start(upstream: SocketAddr) -> Cuttable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = tokio::sync::watch::channel(true);
        let watch = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let mut up = watch.subscribe();
                if !*up.borrow() {
                    continue; // refused: dropped at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = up.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Cuttable { addr, up }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// Kafka unreachable for a while: the connector's publishes fail (or end
/// Unknown), and it retries them — it never skips one to move on — so once
/// Kafka is back, every order committed during the outage is on the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_outage_delays_events_and_loses_none() {
    let broker = Broker::embedded();
    let Broker::Embedded(kafka) = &broker else { unreachable!() };
    let link = Cuttable::start(kafka.listen_addr()).await;
    kafka.advertise(link.addr);
    let mut env = env(Strategy::Cdc, OutboxCdcMode::Message, &broker);
    env.kafka = link.addr.to_string();
    env.links.kafka = link.addr;
    env.tuning.publish_timeout = Duration::from_millis(500);
    with_env(env, &broker, |env| async move {
        let history = History::new(Clock::start());
        let background = Background::start(&env).await.unwrap();
        let app = App::connect(&env).unwrap();
        let before = place_orders(&app, &history, 3).await;
        eventually("the orders before the outage", || background.caught_up(&env)).await;

        link.set(false);
        let during = place_orders(&app, &history, 5).await;
        // Several delivery timeouts later, none of them has been acknowledged…
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ledger = connector(&background).ledger().clone();
        assert!(during.iter().all(|id| !ledger.all_acknowledged([id])), "acknowledged while Kafka was cut");
        assert!(!background.caught_up(&env).await);
        // The backlog is computed, not assumed: exactly the outage's orders.
        let backlog = background.backlog(&env).await.expect("a connector has a backlog").expect("it reads");
        assert_eq!(backlog.unacknowledged, Some(during.len() as u64), "{backlog:?}");
        assert_eq!(backlog.left_behind(), during.len() as u64);

        // …and once it is back, all of them are.
        link.set(true);
        eventually("the orders of the outage", || background.caught_up(&env)).await;
        let backlog = background.backlog(&env).await.expect("a connector has a backlog").expect("it reads");
        assert_eq!(backlog.unacknowledged, Some(0), "{backlog:?}");
        background.stop().await;
        let counts = deliveries(&topic_events(&env).await);
        for id in before.iter().chain(&during) {
            assert!(counts.contains_key(id), "order {id} lost");
        }
        assert_eq!(counts.len(), before.len() + during.len(), "no ghosts");
    })
    .await;
}

/// The connector's Postgres link cut while orders commit: the replication
/// session breaks, the connector reconnects and resumes from the position it
/// confirmed itself — so nothing is lost, and nothing it had already
/// published and confirmed is published again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_replication_connection_resumes_where_it_confirmed() {
    let broker = Broker::embedded();
    let link = Cuttable::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut env = env(Strategy::OutboxCdc, OutboxCdcMode::Table, &broker);
    env.links.postgres_relay = link.addr;
    with_env(env, &broker, |env| async move {
        let history = History::new(Clock::start());
        let background = Background::start(&env).await.unwrap();
        let app = App::connect(&env).unwrap();
        let before = place_orders(&app, &history, 4).await;
        eventually("the orders before the cut", || background.caught_up(&env)).await;
        // The confirmation follows the last acknowledgement by microseconds.
        tokio::time::sleep(Duration::from_millis(200)).await;

        link.set(false);
        let during = place_orders(&app, &history, 4).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        link.set(true);
        eventually("the orders committed during the cut", || background.caught_up(&env)).await;
        let ledger = connector(&background).ledger().clone();
        background.stop().await;

        assert!(ledger.sessions() >= 2, "the connector opened a new session");
        let counts = deliveries(&topic_events(&env).await);
        for id in before.iter().chain(&during) {
            assert_eq!(counts.get(id), Some(&1), "order {id} published exactly once");
        }
    })
    .await;
}

// ── cleanup ─────────────────────────────────────────────────────────────

/// Cleanup drops the slot and the publication even right after a crash,
/// while the server may still count the slot as active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_drops_the_slot_and_publication() {
    let broker = Broker::embedded();
    let env = env(Strategy::Cdc, OutboxCdcMode::Message, &broker);
    let server = dualwrite::db::parse_url(DATABASE_URL).unwrap();
    dualwrite::db::create_database(&server, &env.schema).await.unwrap();
    dualwrite::db::create_schema(&env.db, &env.schema, PRODUCTS, 1000).await.unwrap();
    broker.create_topic(&env.topic).await;
    strategy::prepare(&env).await.unwrap();

    let history = History::new(Clock::start());
    let mut background = Background::start(&env).await.unwrap();
    let app = App::connect(&env).unwrap();
    place_orders(&app, &history, 2).await;
    eventually("the connector to publish", || background.caught_up(&env)).await;
    background.crash().await;
    let cleaned = strategy::cleanup(&env).await;

    let pool = dualwrite::db::connect_direct(&env.db, None, 1).await.unwrap();
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1")
        .bind(&env.schema)
        .fetch_one(&pool)
        .await
        .unwrap();
    let publications: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_publication WHERE pubname = $1")
        .bind(&env.schema)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    dualwrite::db::drop_schema(&env.db, &env.schema).await.unwrap();
    dualwrite::db::drop_database(&server, &env.schema).await.unwrap();
    cleaned.expect("cleanup succeeds");
    assert_eq!((slots, publications), (0, 0), "slot and publication dropped");
    background.stop().await;
}

// ── lag ─────────────────────────────────────────────────────────────────

/// Commit acknowledged → event received by a consumer, for orders placed
/// one at a time. Prints the distribution; asserts only a generous bound,
/// since the machine is shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_to_event_latency() {
    let broker = Broker::embedded();
    with_run(Strategy::Cdc, OutboxCdcMode::Message, &broker, |env| async move {
        let history = History::new(Clock::start());
        let background = Background::start(&env).await.unwrap();
        let app = App::connect(&env).unwrap();

        let consumer = topic::assign_from_beginning(&env.kafka, &env.topic, "cdc-latency").await.unwrap();
        let seen = Arc::new(std::sync::Mutex::new(HashMap::<OrderId, Instant>::new()));
        let watcher = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    if let Ok(message) = consumer.recv().await {
                        if let Some(Ok(event)) = message.payload().map(StockChanged::from_json) {
                            seen.lock().unwrap().entry(event.order_id).or_insert_with(Instant::now);
                        }
                    }
                }
            })
        };
        // Warm up — connections, metadata, the Relation message, and the
        // consumer's first fetch, which alone takes a few hundred ms.
        let warm_up = place_orders(&app, &history, 5).await;
        eventually("the warm-up orders to reach the consumer", || {
            let seen = seen.clone();
            let ids = warm_up.clone();
            async move {
                let seen = seen.lock().unwrap();
                ids.iter().all(|id| seen.contains_key(id))
            }
        })
        .await;

        let mut committed_at = Vec::new();
        for i in 0..200 {
            let order = order(i);
            app.write(&order, &history).await;
            committed_at.push((order.order_id, Instant::now()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eventually("every event to reach the consumer", || {
            let seen = seen.clone();
            let ids: Vec<_> = committed_at.iter().map(|(id, _)| *id).collect();
            async move {
                let seen = seen.lock().unwrap();
                ids.iter().all(|id| seen.contains_key(id))
            }
        })
        .await;
        watcher.abort();
        background.stop().await;

        let seen = seen.lock().unwrap();
        let mut lags: Vec<f64> = committed_at
            .iter()
            .map(|(id, at)| seen[id].saturating_duration_since(*at).as_secs_f64() * 1000.0)
            .collect();
        lags.sort_by(f64::total_cmp);
        let p = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "commit → event lag over {} orders: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            lags.len(),
            p(0.5),
            p(0.99),
            p(1.0)
        );
        assert!(p(0.5) < 250.0, "median lag {:.1} ms", p(0.5));
    })
    .await;
}

/// The connector authenticates with the password of `--database-url`
/// (issue 9: it used to send an empty one, and with password
/// authentication every CDC order was reported lost).
///
/// The shared server trusts loopback, where any password is accepted, so
/// this runs `dualwrite run cdc` against a cluster of the test's own that
/// demands scram-sha-256 for every connection — the app's pool, the relay
/// link's replication session, the snapshot's direct reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_authenticates_with_the_urls_password() {
    let cluster = tokio::task::spawn_blocking(common::scram::ScramPostgres::start).await.unwrap();
    // The password matters here: without it the server refuses.
    let refused = sqlx::PgPool::connect(&cluster.url_without_password()).await;
    assert!(refused.is_err(), "the scram cluster let a client in without a password");
    let pool = sqlx::PgPool::connect(&cluster.url()).await.expect("the password is accepted");
    pool.close().await;

    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let url = cluster.url();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dualwrite"))
            .args(["run", "cdc", "--scenario", "calm", "--seed", "1", "--duration", "4s"])
            .args(["--database-url", &url, "--json", json.to_str().unwrap()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let run = &report["runs"][0];
    let committed = run["orders"]["committed"].as_u64().unwrap();
    assert!(committed >= 8, "{run}");
    assert_eq!(run["anomalies"]["lost"].as_u64(), Some(0), "every committed order reached the topic: {run}");
    assert_eq!(run["verdict"].as_str(), Some("consistent"), "{run}");
    // The password never reaches the output.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(cluster.password) && !stderr.contains(cluster.password), "the password was printed");
    drop(cluster);
}
