//! # two-phase: prepare everywhere, then commit everywhere
//!
//! **What it does.** The writer is a *coordinator* running two-phase commit
//! over PostgreSQL and a Kafka transaction, with a *coordinator log* (the
//! table `coordinator_log`) that records each decision:
//!
//! ```text
//! BEGIN; UPDATE stock …; INSERT INTO orders …;
//! PREPARE TRANSACTION 'dw2pc:<schema>:<order>';      -- phase 1: the database votes yes
//! INSERT INTO coordinator_log … 'commit' ON CONFLICT DO NOTHING;  -- the decision
//! kafka: begin_transaction; send(event); commit_transaction;      -- phase 2
//! COMMIT PREPARED 'dw2pc:…';                                      -- phase 2
//! ```
//!
//! A prepared transaction survives its session, a crash of the server and
//! of the coordinator: it holds its row locks and waits for someone to say
//! `COMMIT PREPARED` or `ROLLBACK PREPARED`. That someone is the coordinator,
//! or, if it died, *recovery* (`recovery.rs`), which reads the log.
//!
//! **Why Kafka is a poor participant.** A real 2PC participant can *prepare*:
//! promise to commit, and then wait for a decision made elsewhere, even
//! across its own restart. A Kafka producer cannot. librdkafka has no
//! externally driven prepare vote: `commit_transaction` flushes, votes and
//! commits in one call, and a transaction lives only as long as the producer
//! that opened it — a new producer claiming the same `transactional.id`
//! aborts it (that is the broker's only recovery), and so does the broker's
//! `transaction.timeout.ms`. So Kafka cannot be asked to hold a vote across
//! a coordinator crash. This coordinator therefore lets the database vote,
//! decides, and only then drives Kafka, keeping the event in the log: if the
//! Kafka transaction fails or dies with the coordinator, recovery publishes
//! the event again from the log. What that means for the guarantee: the
//! database leg is atomic; the Kafka leg is *at-least-once* (a commit that
//! landed before the coordinator could record it is published again — a
//! duplicate the idempotent consumer absorbs), exactly like an outbox — at
//! the price of a prepared transaction per order.
//!
//! **What it guarantees.** An order commits in the database if and only if
//! its commit decision is in the log, and every committed order's event is
//! published (by the coordinator or by recovery). Nothing lost, no ghosts.
//!
//! **How it breaks: it blocks.** Between PREPARE and COMMIT PREPARED the
//! product's row is locked. If the coordinator dies there
//! (`--scenario coordinator-crash`), the prepared transaction stays, shown
//! in `pg_prepared_xacts`, and *every later order for that product waits*
//! for its lock until recovery resolves it — here after
//! [`recovery::IN_DOUBT_AFTER`]; a real transaction manager waits for its
//! coordinator's restart, or a human. The report counts the orders that
//! were in doubt, the orders that waited (lock wait ≥ [`BLOCKED_AFTER_MS`]
//! ms, measured by the server), and tells the story of the longest lock.
//! Even without a crash the lock is held across a Kafka round trip: under a
//! slow Kafka every order for a product queues behind the one before.
//!
//! **Brokers.** The embedded broker (librdkafka's mock cluster) accepts
//! transactions but writes no commit or abort markers and reports no
//! aborted transactions: an aborted transaction's record is served to
//! `read_committed` consumers like any other. Here that can only add a
//! duplicate (an event is aborted only after its order was decided commit,
//! and recovery publishes it again), never a ghost. tansu 0.6.0: see the
//! README.
//!
//! **Read next.** `recovery.rs`, then `outbox.rs`: the same log-and-replay
//! without holding a lock across the network.

pub mod kafka_tx;
pub mod recovery;

use std::time::{Duration, Instant};

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::db::{self, AppDb, DbError, Stage};
use crate::error::Result;
use crate::event::{EventKey, StockChanged};
use crate::history::{History, Leg, Order, OrderId, Outcome, StockAfter, Told};

use self::kafka_tx::TxProducers;
use super::{Env, Integration, Served};

/// A lock wait (measured by the server) from which an order counts as
/// blocked: an uncontended UPDATE waits well under a millisecond.
pub const BLOCKED_AFTER_MS: f64 = 100.0;

/// The prefix of every prepared transaction of a run: `dw2pc:<schema>:`.
/// `doctor` finds leftovers by it.
pub fn gid_prefix(schema: &str) -> String {
    format!("dw2pc:{schema}:")
}

/// The identifier of an order's prepared transaction,
/// `dw2pc:<schema>:<product>:<order>`: recovery, which knows nothing but
/// the identifier, can tell whose lock it held.
pub fn gid(schema: &str, product_id: i32, order_id: OrderId) -> String {
    format!("{}{product_id}:{order_id}", gid_prefix(schema))
}

/// The product and order an identifier names (after the run's prefix).
pub fn parse_gid(rest: &str) -> Option<(i32, OrderId)> {
    let (product, order) = rest.split_once(':')?;
    Some((product.parse().ok()?, order.parse().ok()?))
}

/// `'…'` with quotes doubled: PREPARE TRANSACTION and COMMIT PREPARED take
/// a literal, not a parameter.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The two-phase app: the participants' pool, the coordinator's own pool
/// (its log and phase 2), the coordinator's Kafka producers.
pub struct TwoPhase {
    db: AppDb,
    /// The coordinator's connections, apart from the orders'. Sharing one
    /// pool deadlocks under a crash: orders waiting for a prepared
    /// transaction's row lock hold every pooled connection, and the
    /// coordinator then cannot get one to log the decision or say COMMIT
    /// PREPARED that would release the lock. A transaction manager keeps
    /// its log apart from the resources it coordinates for this reason.
    log: AppDb,
    schema: String,
    kafka: std::sync::Arc<TxProducers>,
    /// The events' record key: the product, unless the scenario says otherwise.
    key: EventKey,
    /// Claims every transactional id at start (see [`TxProducers::claim_all`]).
    claim: tokio::task::JoinHandle<()>,
}

impl Drop for TwoPhase {
    fn drop(&mut self) {
        self.claim.abort();
        self.kafka.close();
    }
}

/// What phase 1 left: a prepared transaction and what it wrote.
struct Prepared {
    after: StockAfter,
    lock_wait_ms: f64,
}

impl Integration for TwoPhase {
    fn connect(env: &Env) -> Result<TwoPhase> {
        let kafka = std::sync::Arc::new(TxProducers::new(
            &env.kafka,
            &env.topic,
            env.tuning.publish_timeout,
            env.tuning.pool_size,
        ));
        // A (re)started coordinator claims its transactional ids first, so
        // that the broker aborts what a previous life left open.
        let claimer = kafka.clone();
        let claim = tokio::spawn(async move { claimer.claim_all().await });
        let log =
            db::pool_through(&env.db, env.links.postgres, &env.schema, env.tuning.pool(), "dualwrite-coordinator");
        let log = AppDb::new(log, env.tuning.db_timeout);
        Ok(TwoPhase { db: env.app_db(), log, schema: env.schema.clone(), kafka, key: env.knobs.event_key, claim })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);
        let gid = gid(&self.schema, order.product_id, order.order_id);

        // Phase 1: the database prepares (votes yes) or fails.
        history.invoke(order.order_id, Leg::Db);
        let prepared = match self.prepare(order, &gid, history).await {
            Ok(prepared) => prepared,
            Err(told) => return history.complete(order.order_id, Leg::Db, told),
        };

        // The decision, in the log. From here on the order *will* commit,
        // whatever happens to this process: recovery reads the log.
        let event = StockChanged::new(order, prepared.after);
        if let Err(told) = self.decide(order, &gid, &event, prepared.lock_wait_ms).await {
            return history.complete(order.order_id, Leg::Db, told);
        }

        // Phase 2, Kafka: the event in a transaction of its own. A failure
        // does not undo the decision: recovery publishes the event from the
        // log, so the writer is told Unknown ("not yet"), never Fail.
        history.invoke(order.order_id, Leg::Topic);
        let told = self.kafka.publish_in_transaction(&event.key(self.key), &event.to_json()).await;
        let delivered = told.outcome == Outcome::Ok;
        let told = match told.outcome {
            Outcome::Ok => told,
            _ => Told::unknown(format!(
                "{}; the decision is commit: recovery publishes the event from the log",
                told.error.unwrap_or_default()
            )),
        };
        history.complete(order.order_id, Leg::Topic, told);

        // Phase 2, the database: COMMIT PREPARED releases the row lock.
        let told = self.commit_prepared(&gid).await;
        history.complete(order.order_id, Leg::Db, told);
        if delivered {
            // Best effort: if this is lost, recovery publishes the event
            // again — a duplicate, which the consumer ignores by version.
            self.mark_published(&gid).await;
        }
    }

    async fn read(&self, product_id: i32) -> Served {
        Served { value: self.db.read_stock(product_id).await.ok(), from_cache: false, filled_cache: false }
    }

    fn db(&self) -> &AppDb {
        &self.db
    }
}

impl TwoPhase {
    /// Phase 1: the order's transaction, ended by PREPARE TRANSACTION.
    ///
    /// | step          | error                         | told |
    /// |---------------|-------------------------------|------|
    /// | acquire       | any                           | `Fail`: nothing sent |
    /// | BEGIN, UPDATE, INSERT | any (a lock timeout too) | `Fail`: the server rolls back a transaction that never prepared |
    /// | PREPARE       | the server answered an error  | `Fail`: it did not prepare |
    /// | PREPARE       | timeout, reset                | `Unknown`: it may be prepared; with no decision in the log, recovery rolls it back |
    async fn prepare(&self, order: &Order, gid: &str, history: &History) -> std::result::Result<Prepared, Told> {
        let mut conn = self.db.acquire().await.map_err(|e| db::classify(Stage::Acquire, &e))?;
        let timeout = self.db.timeout;
        let result: std::result::Result<Prepared, (Stage, DbError)> = async {
            // The lock wait is bounded below the client's own timeout, so
            // that a blocked order ends with the server's answer (and its
            // measured wait), not a dropped connection.
            let begin = format!("BEGIN; SET LOCAL lock_timeout = '{}ms'", lock_timeout(timeout).as_millis());
            db::bounded(timeout, raw(&mut conn, &begin)).await.map_err(|e| (Stage::Statement, e))?;
            let started = Instant::now();
            let row = db::bounded(timeout, update_stock(&mut conn, order)).await.map_err(|e| {
                if is_lock_timeout(&e) {
                    // Record the wait: the order was blocked for the whole timeout.
                    let waited = started.elapsed().as_secs_f64() * 1000.0;
                    let (db, gid, order) = (self.log.clone(), gid.to_string(), order.clone());
                    tokio::spawn(async move { log_abort(&db, &gid, &order, waited).await });
                }
                (Stage::Statement, e)
            })?;
            let after = StockAfter { quantity: row.get("quantity"), version: row.get("version") };
            let lock_wait_ms: f64 = row.get("lock_wait_ms");
            history.wrote(order.order_id, after);
            db::bounded(timeout, insert_order(&mut conn, order, after)).await.map_err(|e| (Stage::Statement, e))?;
            // PREPARE TRANSACTION: the vote. Afterwards the transaction no
            // longer belongs to this session — the connection goes back to
            // the pool while the locks stay with the prepared transaction.
            let prepare = format!("PREPARE TRANSACTION {}", literal(gid));
            db::bounded(timeout, raw(&mut conn, &prepare)).await.map_err(|e| (Stage::Commit, e))?;
            Ok(Prepared { after, lock_wait_ms })
        }
        .await;
        result.map_err(|(stage, e)| {
            // The session may be inside a failed transaction: close it
            // rather than hand it to the next order (the server rolls back).
            conn.close_on_drop();
            db::classify(stage, &e)
        })
    }

    /// The decision: `commit` in the log, unless recovery got there first
    /// (it writes `abort` for a transaction it found in doubt).
    ///
    /// | insert                         | told (database leg) |
    /// |--------------------------------|------|
    /// | inserted                       | — (go on to phase 2) |
    /// | recovery had decided abort     | `Fail`: the transaction is rolled back |
    /// | the server answered an error   | `Fail`: no commit decision exists, so the only decision left is abort |
    /// | timeout, reset                 | `Unknown`: the decision may be in the log; recovery reads it |
    async fn decide(
        &self,
        order: &Order,
        gid: &str,
        event: &StockChanged,
        lock_wait_ms: f64,
    ) -> std::result::Result<(), Told> {
        let timeout = self.log.timeout;
        let inserted = db::bounded(
            timeout,
            sqlx::query(include_str!("../../../sql/coordinator_log_decide.sql"))
                .bind(gid)
                .bind(order.order_id)
                .bind(order.product_id)
                .bind("commit")
                .bind("coordinator")
                .bind(sqlx::types::Json(event))
                .bind(lock_wait_ms)
                .execute(&self.log.pool),
        )
        .await;
        match inserted {
            Ok(done) if done.rows_affected() == 1 => Ok(()),
            // The gid was decided already: by recovery, and only ever abort.
            Ok(_) => {
                self.rollback_prepared(gid).await;
                Err(Told::fail("recovery decided abort first (the transaction was in doubt)"))
            }
            Err(e) if e.server_answered() => {
                self.rollback_prepared(gid).await;
                Err(Told::fail(format!("the commit decision could not be logged: {e}")))
            }
            Err(e) => Err(Told::unknown(format!("{e} (the decision may be logged: recovery resolves it)"))),
        }
    }

    /// COMMIT PREPARED. The decision is commit, so every failure here is
    /// `Unknown`: recovery will commit what this could not.
    async fn commit_prepared(&self, gid: &str) -> Told {
        let sql = format!("COMMIT PREPARED {}", literal(gid));
        match db::bounded(self.log.timeout, sqlx::Executor::execute(&self.log.pool, sql.as_str())).await {
            Ok(_) => Told::ok(),
            // Gone already: recovery found it in doubt and, reading the
            // commit decision, committed it.
            Err(e) if is_undefined_object(&e) => Told::ok(),
            Err(e) => Told::unknown(format!("{e} (the decision is commit: recovery commits it)")),
        }
    }

    /// ROLLBACK PREPARED, best effort: what this misses, recovery rolls back.
    async fn rollback_prepared(&self, gid: &str) {
        let sql = format!("ROLLBACK PREPARED {}", literal(gid));
        let _ = db::bounded(self.log.timeout, sqlx::Executor::execute(&self.log.pool, sql.as_str())).await;
    }

    async fn mark_published(&self, gid: &str) {
        let _ = db::bounded(
            self.log.timeout,
            sqlx::query(include_str!("../../../sql/coordinator_log_mark_published.sql"))
                .bind(gid)
                .bind("coordinator")
                .execute(&self.log.pool),
        )
        .await;
    }
}

/// One statement (or several) by the simple protocol — a query without
/// parameters is sent that way — so that no prepared statement is cached
/// for a literal used once.
async fn raw(conn: &mut PgConnection, sql: &str) -> std::result::Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await.map(drop)
}

/// The stock UPDATE, returning the new state and how long it waited for
/// the row lock (measured by the server).
async fn update_stock(conn: &mut PgConnection, order: &Order) -> std::result::Result<PgRow, sqlx::Error> {
    sqlx::query(include_str!("../../../sql/stock_update_timed.sql"))
        .bind(order.product_id)
        .bind(order.delta as i64)
        .fetch_one(conn)
        .await
}

async fn insert_order(
    conn: &mut PgConnection,
    order: &Order,
    after: StockAfter,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(include_str!("../../../sql/orders_insert.sql"))
        .bind(order.order_id)
        .bind(order.product_id)
        .bind(order.delta)
        .bind(after.quantity)
        .bind(after.version)
        .execute(conn)
        .await
        .map(drop)
}

/// The server's lock wait bound: a little under the client's, so that the
/// server answers first.
fn lock_timeout(client: Duration) -> Duration {
    client.mul_f64(0.8)
}

/// An order that gave up waiting for its product's lock, logged as aborted
/// with its wait, so that the blocked orders count it. Best effort.
async fn log_abort(db: &AppDb, gid: &str, order: &Order, waited_ms: f64) {
    let _ = db::bounded(
        db.timeout,
        sqlx::query(include_str!("../../../sql/coordinator_log_decide.sql"))
            .bind(gid)
            .bind(order.order_id)
            .bind(order.product_id)
            .bind("abort")
            .bind("coordinator")
            .bind(None::<sqlx::types::Json<StockChanged>>)
            .bind(waited_ms)
            .execute(&db.pool),
    )
    .await;
}

/// SQLSTATE 55P03: lock_timeout ran out.
fn is_lock_timeout(e: &DbError) -> bool {
    sqlstate(e).as_deref() == Some("55P03")
}

/// SQLSTATE 42704: "prepared transaction … does not exist".
pub(crate) fn is_undefined_object(e: &DbError) -> bool {
    sqlstate(e).as_deref() == Some("42704")
}

fn sqlstate(e: &DbError) -> Option<String> {
    match e {
        DbError::Sqlx(sqlx::Error::Database(d)) => d.code().map(|c| c.to_string()),
        _ => None,
    }
}
