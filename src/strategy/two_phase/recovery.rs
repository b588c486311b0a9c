//! two-phase's recovery: the part of a transaction manager that finds
//! transactions left *in doubt* and finishes them from the coordinator log.
//!
//! It runs beside the app, like the outbox relay (its own Postgres link,
//! `postgres_relay`), and survives a coordinator crash. Every
//! [`PASS_EVERY`] it:
//!
//! 1. lists the run's prepared transactions older than [`IN_DOUBT_AFTER`]
//!    (`pg_prepared_xacts`): a live coordinator decides within a few round
//!    trips of PREPARE, so one that has not is presumed dead;
//! 2. for each, writes `abort` into the log *unless a decision is there*
//!    (`ON CONFLICT DO NOTHING`: the coordinator's `commit` and recovery's
//!    `abort` race for the same key, and exactly one wins), reads the
//!    decision, and says `COMMIT PREPARED` or `ROLLBACK PREPARED`;
//! 3. publishes again every event whose order was decided commit but that
//!    nobody marked delivered — the coordinator may have died before or
//!    after its Kafka commit, and Kafka cannot be asked which (a duplicate
//!    is the price of not knowing).
//!
//! Presumed abort is what makes this safe: no decision means nobody ever
//! promised the order to anyone, so rolling it back breaks no promise.
//!
//! At the drain the app has stopped, so nothing is in flight any more:
//! [`Recovery::caught_up`] resolves every prepared transaction of the run,
//! whatever its age, and publishes what is left.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::Row;
use tokio::task::JoinHandle;

use crate::db;
use crate::error::Result;
use crate::event::{EventKey, StockChanged};
use crate::history::Outcome;
use crate::kafka::Publisher;
use crate::snapshot::{Backlog, InDoubt, LongestLock};

use super::super::Env;
use super::{gid_prefix, is_undefined_object, literal, BLOCKED_AFTER_MS};

/// How old a prepared transaction must be before recovery presumes its
/// coordinator dead. This is how long a crashed coordinator's locks block
/// everyone else here; transaction managers commonly scan every minute or
/// two, or wait for the coordinator's own restart.
pub const IN_DOUBT_AFTER: Duration = Duration::from_secs(5);

/// How often recovery looks.
pub const PASS_EVERY: Duration = Duration::from_millis(500);

/// The recovery service of one run.
pub struct Recovery {
    worker: Arc<Worker>,
    task: Option<JoinHandle<()>>,
}

struct Worker {
    /// Through `postgres_relay`: recovery is a process of its own.
    pool: PgPool,
    /// Straight to Postgres, for the backlog (like the relay's).
    direct: PgPool,
    timeout: Duration,
    prefix: String,
    publisher: Publisher,
    /// The events' record key, as the coordinator keys them.
    key: EventKey,
    /// The most prepared transactions of the run seen at once.
    most_seen: Mutex<u64>,
    last_error: Mutex<Option<String>>,
    passing: tokio::sync::Mutex<()>,
}

impl Recovery {
    /// Starts the periodic passes.
    pub async fn start(env: &Env) -> Result<Recovery> {
        let direct = db::connect_direct(&env.db, Some(&env.schema), 1).await?;
        let name = "dualwrite-2pc-recovery";
        let pool = db::pool_through(&env.db, env.links.postgres_relay, &env.schema, env.tuning.pool(), name);
        let worker = Arc::new(Worker {
            pool,
            direct,
            timeout: env.tuning.db_timeout,
            prefix: gid_prefix(&env.schema),
            publisher: env.publisher(name)?,
            key: env.knobs.event_key,
            most_seen: Mutex::new(0),
            last_error: Mutex::new(None),
            passing: tokio::sync::Mutex::new(()),
        });
        let looping = worker.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(PASS_EVERY).await;
                looping.pass(IN_DOUBT_AFTER).await;
            }
        });
        Ok(Recovery { worker, task: Some(task) })
    }

    /// The drain's question: with the app stopped, one pass over everything
    /// of the run; true once nothing is prepared or unpublished.
    pub async fn caught_up(&self) -> bool {
        self.worker.pass(Duration::ZERO).await
    }

    /// The last pass's failure, for the drain report.
    pub fn last_error(&self) -> Option<String> {
        self.worker.last_error.lock().expect("last_error poisoned").clone()
    }

    /// What the log and `pg_prepared_xacts` say, read directly.
    pub async fn backlog(&self) -> std::result::Result<Backlog, sqlx::Error> {
        let w = &self.worker;
        let row = sqlx::query(include_str!("../../../sql/coordinator_log_summary.sql"))
            .bind(&w.prefix)
            .bind(BLOCKED_AFTER_MS)
            .fetch_one(&w.direct)
            .await?;
        let ms = |name: &str| row.get::<Option<f64>, _>(name).map(|v| v.round() as u64);
        let count = |name: &str| row.get::<i64, _>(name) as u64;
        let longest = row.get::<Option<uuid::Uuid>, _>("longest_order").map(|order_id| LongestLock {
            order_id,
            product_id: row.get("longest_product"),
            locked_ms: ms("longest_locked_ms").unwrap_or(0),
            waited: count("longest_waited"),
        });
        let unpublished = sqlx::query(include_str!("../../../sql/coordinator_log_select_unpublished.sql"))
            .bind(0.0f64)
            .fetch_all(&w.direct)
            .await?
            .len() as u64;
        Ok(Backlog {
            outbox_unpublished: unpublished,
            in_doubt: Some(InDoubt {
                resolved: count("in_doubt"),
                committed_by_recovery: count("committed_by_recovery"),
                republished: count("republished"),
                left_prepared: count("left_prepared"),
                most_prepared_seen: *w.most_seen.lock().expect("most_seen poisoned"),
                blocked: count("blocked"),
                lock_wait_p99_ms: ms("lock_wait_p99_ms"),
                lock_wait_max_ms: ms("lock_wait_max_ms"),
                longest,
            }),
            ..Backlog::default()
        })
    }

    /// Stops the passes for good.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.worker.pool.close().await;
        self.worker.direct.close().await;
    }
}

impl Drop for Recovery {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Worker {
    /// One pass; true when it left nothing prepared and nothing unpublished.
    async fn pass(&self, older_than: Duration) -> bool {
        // One pass at a time: the drain's and the periodic one would
        // otherwise publish the same event twice.
        let _one = self.passing.lock().await;
        let result = async {
            let resolved_all = self.resolve(older_than).await?;
            let published_all = self.republish(older_than).await?;
            Ok::<bool, db::DbError>(resolved_all && published_all)
        }
        .await;
        let mut last = self.last_error.lock().expect("last_error poisoned");
        match result {
            Ok(done) => {
                if done {
                    *last = None;
                }
                done
            }
            Err(e) => {
                *last = Some(format!("two-phase recovery: {e}"));
                false
            }
        }
    }

    /// Steps 1 and 2: every in-doubt transaction, decided and finished.
    async fn resolve(&self, older_than: Duration) -> std::result::Result<bool, db::DbError> {
        let rows = db::bounded(
            self.timeout,
            sqlx::query(include_str!("../../../sql/prepared_xacts_select_in_doubt.sql"))
                .bind(&self.prefix)
                .bind(older_than.as_secs_f64() * 1000.0)
                .fetch_all(&self.pool),
        )
        .await?;
        {
            let mut most = self.most_seen.lock().expect("most_seen poisoned");
            *most = (*most).max(rows.len() as u64);
        }
        for row in rows {
            let gid: String = row.get("gid");
            let Some((product_id, order_id)) = gid.strip_prefix(&self.prefix).and_then(super::parse_gid) else {
                continue;
            };
            // Presumed abort: decide abort unless the coordinator decided.
            db::bounded(
                self.timeout,
                sqlx::query(include_str!("../../../sql/coordinator_log_decide.sql"))
                    .bind(&gid)
                    .bind(order_id)
                    .bind(product_id)
                    .bind("abort")
                    .bind("recovery")
                    .bind(None::<sqlx::types::Json<StockChanged>>)
                    .bind(None::<f64>)
                    .execute(&self.pool),
            )
            .await?;
            let decision: String = db::bounded(
                self.timeout,
                sqlx::query(include_str!("../../../sql/coordinator_log_select_decision.sql"))
                    .bind(&gid)
                    .fetch_one(&self.pool),
            )
            .await?
            .get("decision");
            // Record the resolution first: it keeps prepared_at (set when the
            // decision was logged) and marks the order as having been in doubt.
            db::bounded(
                self.timeout,
                sqlx::query(include_str!("../../../sql/coordinator_log_mark_resolved.sql"))
                    .bind(&gid)
                    .execute(&self.pool),
            )
            .await?;
            let verb = if decision == "commit" { "COMMIT PREPARED" } else { "ROLLBACK PREPARED" };
            let sql = format!("{verb} {}", literal(&gid));
            match db::bounded(self.timeout, sqlx::Executor::execute(&self.pool, sql.as_str())).await {
                Ok(_) => {}
                // The coordinator finished it meanwhile.
                Err(e) if is_undefined_object(&e) => {}
                Err(e) => return Err(e),
            }
        }
        // Anything of the run still prepared (younger than the threshold)?
        let left = db::bounded(
            self.timeout,
            sqlx::query(include_str!("../../../sql/prepared_xacts_select_in_doubt.sql"))
                .bind(&self.prefix)
                .bind(-1.0e9f64)
                .fetch_all(&self.pool),
        )
        .await?;
        Ok(left.is_empty())
    }

    /// Step 3: events decided commit that nobody marked delivered.
    async fn republish(&self, older_than: Duration) -> std::result::Result<bool, db::DbError> {
        let rows = db::bounded(
            self.timeout,
            sqlx::query(include_str!("../../../sql/coordinator_log_select_unpublished.sql"))
                .bind(older_than.as_secs_f64() * 1000.0)
                .fetch_all(&self.pool),
        )
        .await?;
        let mut all = true;
        for row in rows {
            let gid: String = row.get("gid");
            let Some(sqlx::types::Json(event)) = row.get::<Option<sqlx::types::Json<StockChanged>>, _>("event") else {
                continue;
            };
            // An ordinary idempotent producer: one record needs no transaction.
            let told = self.publisher.publish(&event.key(self.key), &event.to_json()).await;
            if told.outcome != Outcome::Ok {
                all = false;
                *self.last_error.lock().expect("last_error poisoned") = Some(
                    self.publisher
                        .with_rebuilds(format!("publishing from the log: {}", told.error.unwrap_or_default())),
                );
                continue;
            }
            db::bounded(
                self.timeout,
                sqlx::query(include_str!("../../../sql/coordinator_log_mark_published.sql"))
                    .bind(&gid)
                    .bind("recovery")
                    .execute(&self.pool),
            )
            .await?;
        }
        Ok(all)
    }
}

/// The run's cleanup: rolls back every prepared transaction of the run
/// still in `pg_prepared_xacts` (normally none: the drain resolved them).
/// What recovery could not finish must not outlive the run: it would hold
/// its row locks, and keep WAL, for ever.
pub async fn roll_back_all(env: &Env) -> Result<()> {
    let direct = db::reconnect_direct(&env.db, Some(&env.schema), 1).await?;
    let result = async {
        let rows = sqlx::query(include_str!("../../../sql/prepared_xacts_select_in_doubt.sql"))
            .bind(gid_prefix(&env.schema))
            .bind(-1.0e9f64)
            .fetch_all(&direct)
            .await?;
        for row in rows {
            let gid: String = row.get("gid");
            let sql = format!("ROLLBACK PREPARED {}", literal(&gid));
            match sqlx::Executor::execute(&direct, sql.as_str()).await {
                Ok(_) => {}
                // Resolved meanwhile.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42704") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    .await;
    direct.close().await;
    result.map_err(|e| {
        crate::error::Error::refused("PostgreSQL", db::address(&env.db), "roll back the run's prepared transactions", e)
    })
}
