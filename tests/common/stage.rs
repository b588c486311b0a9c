//! A namespace built by hand, behind a fault proxy and a broker of its own,
//! for tests that drive a strategy's parts directly — an app, a relay, a
//! producer — and put faults on the links themselves.
//!
//! [`Infra::start`] gives each stage its own built-in proxy and embedded
//! broker (advertised through the proxy's `kafka` link, so a fault on that
//! link reaches every Kafka connection), and the namespace is a fresh schema
//! and topic: stages run in parallel with each other and with real runs.
//! [`staged`] removes the namespace even when the test body panics.
//!
//! Sessions are found by what they lock in the stage's own schema, never by
//! application name alone: a parallel test's relay has the same name.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use sqlx::postgres::PgPool;
use sqlx::Row;
use uuid::Uuid;

use dualwrite::config::{Services, Tuning};
use dualwrite::db::AppDb;
use dualwrite::event::{EventKey, StockChanged};
use dualwrite::history::{Order, OrderId, StockAfter};
use dualwrite::infra::Infra;
use dualwrite::kafka::topic::TopicRecord;
use dualwrite::proxy::{Stream, Toxic, ToxicKind};
use dualwrite::strategy::{self, Env, Strategy};

/// Products in a stage's stock table.
pub const PRODUCTS: u32 = 3;
/// Units each product starts with.
pub const INITIAL_STOCK: i64 = 1000;

/// One test's services and namespace.
pub struct Stage {
    pub infra: Infra,
    pub env: Env,
    /// Postgres directly (no proxy), with the stage's schema as search_path.
    pub direct: PgPool,
}

/// Runs `body` on a fresh stage and removes the namespace afterwards, even
/// if `body` panics (the panic is raised again once the cleanup is done).
pub async fn staged<F, Fut>(strategy: Strategy, tuning: Tuning, body: F)
where
    F: FnOnce(Arc<Stage>) -> Fut,
    Fut: Future<Output = ()>,
{
    // RUST_LOG=dualwrite=debug shows the relay's passes and the proxy's links.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let stage = Arc::new(Stage::start(strategy, tuning).await);
    let outcome = AssertUnwindSafe(body(stage.clone())).catch_unwind().await;
    let _ = stage.infra.heal().await;
    let cleaned = strategy::cleanup(&stage.env).await;
    stage.direct.close().await;
    dualwrite::db::drop_schema(&stage.env.db, &stage.env.schema).await.expect("schema dropped");
    // A task the body left running may still hold the stage; the runtime
    // ends with the test and takes the proxy and broker with it.
    if let Ok(stage) = Arc::try_unwrap(stage) {
        stage.infra.shutdown().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    cleaned.expect("strategy resources dropped");
}

impl Stage {
    async fn start(strategy: Strategy, tuning: Tuning) -> Stage {
        let infra = Infra::start(&Services::local()).await.expect("the services are reachable (`make setup-tests`)");
        let schema = format!("dw_{}_{}", strategy.name().replace('-', "_"), &Uuid::new_v4().simple().to_string()[..8]);
        let env = Env {
            strategy,
            db: infra.db.clone(),
            topic: schema.clone(),
            redis_url: infra.services.redis_url.clone(),
            redis_prefix: format!("{schema}:"),
            schema,
            links: infra.links,
            kafka: infra.kafka.clone(),
            tuning,
            seed: 0,
            knobs: Default::default(),
        };
        dualwrite::db::create_schema(&env.db, &env.schema, PRODUCTS, INITIAL_STOCK).await.expect("schema created");
        infra.create_topic(&env.topic).await.expect("topic created");
        strategy::prepare(&env).await.expect("strategy prepared");
        let direct = dualwrite::db::connect_direct(&env.db, Some(&env.schema), 4).await.expect("direct pool");
        Stage { infra, env, direct }
    }

    // ── faults ──────────────────────────────────────────────────────────

    /// Takes a link down (no listener, every connection closed) or back up.
    pub async fn link(&self, name: &str, up: bool) {
        self.infra.proxy.set_enabled(name, up).await.expect("the proxy takes the change");
    }

    /// Adds a toxic to a link.
    pub async fn toxic(&self, link: &str, kind: ToxicKind, stream: Stream) {
        self.infra.proxy.add_toxic(link, &Toxic::new(kind, stream)).await.expect("the proxy takes the toxic");
    }

    /// Every link up, every toxic gone.
    pub async fn heal(&self) {
        self.infra.heal().await.expect("the proxy heals");
    }

    // ── the database, read directly ─────────────────────────────────────

    /// Commits one outbox row per order, all in one transaction (one NOTIFY,
    /// and a relay's next claim sees them all at once). Returns the order ids.
    pub async fn insert_outbox(&self, n: usize) -> Vec<OrderId> {
        let db = AppDb::new(self.direct.clone(), Duration::from_secs(10));
        let mut tx = self.direct.begin().await.unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            let order = order(i);
            let event = StockChanged::new(&order, StockAfter { quantity: INITIAL_STOCK - 1, version: i as i64 + 1 });
            db.insert_outbox(&mut tx, &event, EventKey::Product).await.unwrap();
            ids.push(order.order_id);
        }
        tx.commit().await.unwrap();
        ids
    }

    /// Every outbox row: id → (seq, published, attempts).
    pub async fn outbox(&self) -> HashMap<OrderId, OutboxRow> {
        sqlx::query("SELECT id, seq, published_at IS NOT NULL AS published, attempts FROM outbox")
            .fetch_all(&self.direct)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get("id"),
                    OutboxRow { seq: r.get("seq"), published: r.get("published"), attempts: r.get("attempts") },
                )
            })
            .collect()
    }

    /// Rows a `FOR UPDATE SKIP LOCKED` claim could take right now: those
    /// no open transaction has locked.
    pub async fn claimable(&self) -> Vec<OrderId> {
        let mut tx = self.direct.begin().await.unwrap();
        let ids = sqlx::query_scalar("SELECT id FROM outbox WHERE published_at IS NULL FOR UPDATE SKIP LOCKED")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        ids
    }

    /// Sessions (other than the stage's own) holding a lock on one of the
    /// stage's tables.
    pub async fn lock_holders(&self, table: &str) -> Vec<Session> {
        sqlx::query(
            "SELECT DISTINCT a.pid, a.application_name, a.state, a.xact_start IS NOT NULL AS in_transaction
             FROM pg_locks l
             JOIN pg_class c ON c.oid = l.relation
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE n.nspname = $1 AND c.relname = $2 AND l.pid <> pg_backend_pid()",
        )
        .bind(&self.env.schema)
        .bind(table)
        .fetch_all(&self.direct)
        .await
        .unwrap()
        .iter()
        .map(session)
        .collect()
    }

    /// The session with this pid, if it still exists.
    pub async fn session(&self, pid: i32) -> Option<Session> {
        sqlx::query(
            "SELECT pid, application_name, state, xact_start IS NOT NULL AS in_transaction
             FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(pid)
        .fetch_optional(&self.direct)
        .await
        .unwrap()
        .as_ref()
        .map(session)
    }

    /// Whether a session is listening for the stage's outbox notifications
    /// (a relay waiting for work: `LISTEN "<schema>"` was its last statement).
    pub async fn relay_listening(&self) -> bool {
        let listen = format!("LISTEN {}", dualwrite::db::quote_ident(&self.env.schema));
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'idle'")
            .bind(&listen)
            .fetch_one(&self.direct)
            .await
            .unwrap()
            > 0
    }

    /// Committed orders, by id.
    pub async fn committed(&self) -> Vec<OrderId> {
        let (orders, _) = dualwrite::db::read_tables(&self.direct).await.unwrap();
        orders.into_iter().map(|o| o.order_id).collect()
    }

    // ── the topic ───────────────────────────────────────────────────────

    /// The whole topic, read back through the (healed) kafka link.
    pub async fn topic(&self) -> Vec<TopicRecord> {
        dualwrite::kafka::read::read_all(&self.env.kafka, &self.env.topic, Duration::from_secs(20))
            .await
            .expect("the topic reads back")
    }

    /// How many times each order is on the topic.
    pub async fn deliveries(&self) -> HashMap<OrderId, usize> {
        let mut counts = HashMap::new();
        for record in self.topic().await {
            let event = record.event.unwrap_or_else(|e| panic!("an undecodable record on the topic: {e}"));
            *counts.entry(event.order_id).or_insert(0) += 1;
        }
        counts
    }
}

fn session(r: &sqlx::postgres::PgRow) -> Session {
    Session {
        pid: r.get("pid"),
        application_name: r.get("application_name"),
        state: r.get("state"),
        in_transaction: r.get("in_transaction"),
    }
}

/// One outbox row's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub published: bool,
    pub attempts: i32,
}

/// A Postgres session, from `pg_stat_activity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub pid: i32,
    pub application_name: String,
    /// `idle in transaction`, `active`, `idle`, …
    pub state: Option<String>,
    /// The session has a transaction open.
    pub in_transaction: bool,
}

/// An order for product `1 + n % PRODUCTS`, with a fresh id.
pub fn order(n: usize) -> Order {
    Order {
        order_id: Uuid::new_v4(),
        product_id: (n % PRODUCTS as usize) as i32 + 1,
        delta: -1,
        writer: 0,
        seq: n as u64,
    }
}

/// Waits until `check` holds, polling every 20 ms; fails the test after `limit`.
pub async fn eventually<Fut: Future<Output = bool>>(what: &str, limit: Duration, mut check: impl FnMut() -> Fut) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "gave up after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `find` finds something, polling every 20 ms; fails the test
/// after `limit`.
pub async fn until_some<T, Fut: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut find: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = find().await {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
