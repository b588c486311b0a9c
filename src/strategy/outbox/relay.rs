//! The outbox relay: publishes committed outbox rows, marks them once the
//! broker has acknowledged them.
//!
//! One pass ([`Relay::publish_batch`]) is one transaction:
//!
//! 1. **Claim** up to a batch of unpublished rows, oldest first, with
//!    `FOR UPDATE SKIP LOCKED`. The locks keep other relays off these rows
//!    for as long as the transaction lives — which is why the transaction is
//!    bound to a variable and held to the end. (The classic bug is
//!    `pool.begin().await?;` with the transaction thrown away: sqlx rolls it
//!    back at once, the locks vanish, and two relays publish the same rows.)
//! 2. **Publish** them all and wait for the broker's acknowledgements.
//! 3. **Mark** the acknowledged rows published, dead-letter the ones Kafka
//!    refused for good, and commit — without waiting for the disk (the
//!    relay's connections use `synchronous_commit = off`, see
//!    [`Relay::new`]): a mark lost in a database crash is a duplicate.
//!
//! Why mark *after* the acknowledgement: marking first would lose the event
//! if the publish then failed. Marking after can only duplicate it, if the
//! relay dies between the two — at-least-once, which an idempotent consumer
//! absorbs.
//!
//! Why select *unpublished* rows rather than "ids above the last one I
//! published": ids (here `seq`, a sequence) are assigned when a row is
//! inserted but become visible when its transaction commits, and
//! transactions do not commit in id order. A relay that remembers the highest
//! `seq` it published skips a row whose transaction commits late — a known
//! bug of several relays. `published_at IS NULL` cannot skip anything.
//!
//! After a pass that found rows the relay looks again at once: more may
//! have committed while it published. Only a pass that finds nothing
//! waits — until an outbox row commits (the table's trigger sends one
//! NOTIFY per inserting statement, which Postgres delivers at COMMIT) or
//! the poll interval passes, in case a notification is missed — the LISTEN connection can be cut by a
//! fault like any other. While Kafka is down it retries with backoff and
//! never skips a row.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{PgConnection, Row};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backoff::{Backoff, Retry};
use crate::db::{self, AppDb, DbError};
use crate::env::Env;
use crate::error::Result;
use crate::history::Outcome;
use crate::kafka::Publisher;
use crate::snapshot::Backlog;

/// Rows claimed per pass.
pub const BATCH: i64 = 100;

/// How long a relay's producer may take to start before the relay claims
/// anyway (its publishes then wait or fail like any other).
const WARM_UP: Duration = Duration::from_secs(10);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    pub published: usize,
    pub dead_lettered: usize,
    /// Rows whose publish failed or is unknown: left for the next pass.
    pub retry: usize,
}

/// One relay: its own connections (through the `postgres_relay` link) and
/// its own producer, as a separate process would have.
pub struct Relay {
    db: AppDb,
    publisher: Publisher,
    /// The NOTIFY channel: the run's schema name (see migrations/0002_outbox.sql).
    channel: String,
    poll: Duration,
    /// Why the last pass left rows behind (a Kafka publish error or a
    /// database error), until a pass leaves none: what the drain report
    /// names when the relay did not catch up.
    last_error: Mutex<Option<String>>,
}

impl Relay {
    /// A relay for the run in `env`, named `name` (its client id).
    pub fn new(env: &Env, name: &str) -> Result<Relay> {
        // Two connections: one for passes, one spare for the listener's
        // reconnects; a relay needs no more.
        let size = db::PoolSize { connections: 2, ..env.tuning.pool() };
        // The relay's COMMITs need not wait for their WAL to reach the disk.
        // The relay works one pass at a time, so a commit that waits on a
        // slow fsync (hundreds of ms on a busy machine) holds back every row
        // committed meanwhile. What an asynchronous commit can lose, if the
        // *database* crashes, is the marks of the last few passes — those
        // rows are published again: a duplicate, never a loss, as when the
        // relay dies before its COMMIT. (The writers' commits stay
        // synchronous: an order must be durable before the writer is told Ok.)
        let options = env.db.clone().options([("synchronous_commit", "off")]);
        let pool = db::pool_through(&options, env.links.postgres_relay, &env.schema, size, name);
        Ok(Relay {
            db: AppDb::new(pool, env.tuning.db_timeout),
            publisher: env.publisher(name)?,
            channel: env.schema.clone(),
            poll: env.tuning.relay_poll,
            last_error: Mutex::new(None),
        })
    }

    /// Why the last pass left rows behind, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("relay mutex poisoned").clone()
    }

    fn note(&self, error: Option<String>) {
        *self.last_error.lock().expect("relay mutex poisoned") = error;
    }

    /// One pass: claim, publish, mark — in one transaction.
    pub async fn publish_batch(&self) -> std::result::Result<Pass, DbError> {
        let acquired = self.db.acquire().await;
        let mut conn = match acquired {
            Ok(conn) => conn,
            Err(e) => {
                self.note(Some(format!("the relay's database: {e}")));
                return Err(e);
            }
        };
        let result = self.publish_batch_on(&mut conn).await;
        match &result {
            // Rows left for the next pass: say why (the first error seen).
            Ok((pass, first_error)) if pass.retry > 0 => self.note(Some(format!(
                "Kafka did not acknowledge {} of {} outbox rows: {}",
                pass.retry,
                pass.claimed,
                first_error.as_deref().unwrap_or("no error reported")
            ))),
            Ok(_) => self.note(None),
            Err(e) => {
                self.note(Some(format!("the relay's database: {e}")));
                // A connection that timed out or was reset may be mid-reply.
                AppDb::release_on_error(&mut conn, e);
            }
        }
        result.map(|(pass, _)| pass)
    }

    /// A pass on `conn`, and the first publish error it met, if any.
    async fn publish_batch_on(&self, conn: &mut PgConnection) -> std::result::Result<(Pass, Option<String>), DbError> {
        // The transaction lives until the commit below: the claim's row
        // locks with it. If anything fails before the commit, the server
        // rolls it back and the rows are simply still unpublished.
        let mut tx = self.db.begin(conn).await?;

        // 1. Claim. SKIP LOCKED: rows another relay is publishing right now
        //    are not waited for, nor taken.
        let rows = db::bounded(
            self.db.timeout,
            sqlx::query(include_str!("../../../sql/outbox_claim.sql")).bind(BATCH).fetch_all(&mut *tx),
        )
        .await?;
        if rows.is_empty() {
            self.db.commit(tx).await?;
            return Ok((Pass::default(), None));
        }
        let rows: Vec<(uuid::Uuid, String, String)> =
            rows.iter().map(|r| (r.get("id"), r.get("aggregateid"), r.get("payload"))).collect();

        // 2. Publish every claimed row, oldest first, and wait for every
        //    acknowledgement. The idempotent producer keeps each partition
        //    (each product) in the order the rows were handed to it.
        tracing::debug!("relay: claimed {} rows", rows.len());
        let deliveries =
            join_all(rows.iter().map(|(_, key, payload)| self.publisher.publish_detailed(key, payload.as_bytes())))
                .await;

        let mut pass = Pass { claimed: rows.len(), ..Pass::default() };
        let mut acknowledged = Vec::new();
        let mut refused = Vec::new();
        let mut first_error = None;
        for ((id, _, _), delivery) in rows.iter().zip(deliveries) {
            match delivery.told.outcome {
                Outcome::Ok => acknowledged.push(*id),
                // Kafka will never take this one (too large, invalid): park
                // it for a human instead of retrying it forever.
                _ if delivery.permanent => refused.push((*id, delivery.told.error.unwrap_or_default())),
                // Fail or Unknown: not acknowledged, so not marked. The next
                // pass publishes it again (after an Unknown, possibly twice).
                // If the producer itself died (fenced, fatal), the publisher
                // has already built a new one for that next pass.
                _ => {
                    pass.retry += 1;
                    first_error = first_error.or(delivery.told.error);
                }
            }
        }

        // 3. Mark only what the broker acknowledged.
        if !acknowledged.is_empty() {
            db::bounded(
                self.db.timeout,
                sqlx::query(include_str!("../../../sql/outbox_mark.sql")).bind(&acknowledged).execute(&mut *tx),
            )
            .await?;
        }
        for (id, error) in &refused {
            tracing::warn!("outbox row {id} refused by Kafka for good ({error}); moved to outbox_dead_letter");
            db::bounded(
                self.db.timeout,
                sqlx::query(include_str!("../../../sql/outbox_dead_letter.sql")).bind(id).bind(error).execute(&mut *tx),
            )
            .await?;
        }
        // If this COMMIT is lost, the marks are lost with it: the rows are
        // published again by the next pass — a duplicate, never a loss.
        tracing::debug!("relay: {} acknowledged, committing the marks", acknowledged.len());
        self.db.commit(tx).await?;
        tracing::debug!("relay: marks committed");
        pass.published = acknowledged.len();
        pass.dead_lettered = refused.len();
        Ok((pass, first_error))
    }

    /// Waits for a NOTIFY from a committed outbox row, or the poll interval.
    async fn wait_for_work(&self, listener: &mut Option<PgListener>) {
        if listener.is_none() {
            // Connecting is bounded: with the link down, polling carries on.
            let connect = async {
                let mut l = PgListener::connect_with(&self.db.pool).await?;
                l.listen(&self.channel).await?;
                Ok::<_, sqlx::Error>(l)
            };
            if let Ok(Ok(l)) = tokio::time::timeout(self.poll, connect).await {
                *listener = Some(l);
            }
        }
        let Some(l) = listener.as_mut() else {
            return tokio::time::sleep(self.poll).await;
        };
        match tokio::time::timeout(self.poll, l.try_recv()).await {
            // A notification: a row committed. Or the poll interval passed.
            Ok(Ok(Some(_))) | Err(_) => {}
            // The connection was lost (or failed): reconnect next time.
            Ok(Ok(None)) | Ok(Err(_)) => *listener = None,
        }
    }

    /// The relay's loop: a pass whenever woken, more passes while rows keep
    /// coming, backoff while Kafka or the database fails.
    /// `warmed` is told when the producer has started (or its warm-up
    /// gave up), just before the first pass.
    pub async fn run(self: Arc<Self>, warmed: oneshot::Sender<()>) {
        // A relay claims nothing before its producer can publish: rows it
        // claimed would otherwise sit locked while the client starts — up
        // to half a second for the producer id alone (`Publisher::warm_up`).
        self.publisher.warm_up(WARM_UP).await;
        let _ = warmed.send(());
        let mut retry = Retry::new(Backoff::BACKGROUND);
        let mut listener = None;
        loop {
            match self.publish_batch().await {
                // Kafka did not acknowledge some rows: wait, then retry them.
                Ok(pass) if pass.retry > 0 => {
                    let wait = retry.failed();
                    tracing::info!("relay: {} outbox rows not acknowledged; retrying in {wait:?}", pass.retry);
                    tokio::time::sleep(wait).await;
                }
                // Rows were there: more may have committed during the pass,
                // so look again at once rather than wait for their NOTIFY.
                // Only a pass that finds nothing sleeps.
                Ok(pass) if pass.claimed > 0 => retry.succeeded(),
                // Caught up: sleep until the next commit (or poll).
                Ok(_) => {
                    retry.succeeded();
                    self.wait_for_work(&mut listener).await;
                }
                // The database failed (a fault on postgres_relay): retry.
                Err(e) => {
                    let wait = retry.failed();
                    tracing::info!("relay: pass failed ({e}); retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// The running relays of a run (`--relays N`), as a unit the runner can
/// crash and restart.
pub struct Relays {
    relays: Vec<Arc<Relay>>,
    tasks: Vec<JoinHandle<()>>,
    /// A direct connection for the drain check and the backlog (no faults).
    direct: PgPool,
}

impl Relays {
    /// Starts `env.tuning.relays` relays and waits until their producers
    /// have started (at most [`WARM_UP`]). A service's relay is running
    /// before the first order, as the app's producer is (`App::warm_up`):
    /// the run's clock starts after this, so the lag it measures is the
    /// relay's own, not its start-up.
    pub async fn start(env: &Env) -> Result<Relays> {
        let (relays, warmed) = Relays::spawn(env).await?;
        // An error here is a relay task that ended before warming up: it
        // was aborted, and its rows wait for the next relay as after a crash.
        let _ = join_all(warmed).await;
        Ok(relays)
    }

    /// Starts the relays without waiting for them: each warms up on its own.
    async fn spawn(env: &Env) -> Result<(Relays, Vec<oneshot::Receiver<()>>)> {
        let direct = db::connect_direct(&env.db, Some(&env.schema), 1).await?;
        let mut relays = Vec::new();
        for i in 0..env.tuning.relays {
            relays.push(Arc::new(Relay::new(env, &format!("dualwrite-relay-{i}"))?));
        }
        let (senders, warmed): (Vec<_>, Vec<_>) = relays.iter().map(|_| oneshot::channel()).unzip();
        let tasks = relays.iter().zip(senders).map(|(r, warmed)| tokio::spawn(r.clone().run(warmed))).collect();
        Ok((Relays { relays, tasks, direct }, warmed))
    }

    /// The process-death imitation: every relay stops where it is. An open
    /// transaction dies with its connection — the server rolls it back, so
    /// claimed rows that were published but not yet marked stay unpublished.
    /// Messages still queued in a producer are purged, unsent.
    pub async fn crash(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        for relay in self.relays.drain(..) {
            let pool = relay.db.pool.clone();
            let _ = tokio::time::timeout(Duration::from_secs(2), pool.close()).await;
            // Its producer purges the messages still queued (see `Publisher`).
            drop(relay);
        }
    }

    /// Starts the relays again after a crash: they resume from the table
    /// itself — every row not yet marked. They are not waited for: a restarted process starts its producer
    /// while the orders go on, and the scenario's faults with them.
    pub async fn restart(&mut self, env: &Env) -> Result<()> {
        let (mut fresh, _warmed) = Relays::spawn(env).await?;
        self.relays = std::mem::take(&mut fresh.relays);
        self.tasks = std::mem::take(&mut fresh.tasks);
        Ok(())
    }

    /// Why a relay's last pass left rows behind, if one's did: the first
    /// relay with an error, and how many times its producer was replaced.
    pub fn last_error(&self) -> Option<String> {
        self.relays.iter().find_map(|relay| relay.last_error().map(|e| relay.publisher.with_rebuilds(e)))
    }

    /// What is left to publish, read directly. An error is kept: a backlog
    /// that could not be read is unknown, never "nothing left".
    pub async fn backlog(&self) -> std::result::Result<Backlog, sqlx::Error> {
        let row = sqlx::query(include_str!("../../../sql/outbox_backlog.sql")).fetch_one(&self.direct).await?;
        Ok(Backlog {
            outbox_unpublished: row.get::<i64, _>("unpublished") as u64,
            dead_letters: row.get::<i64, _>("dead_letters") as u64,
            ..Backlog::default()
        })
    }

    /// Stops the relays for good.
    pub async fn stop(mut self) {
        self.crash().await;
        self.direct.close().await;
    }
}

impl Drop for Relays {
    /// Relays dropped without [`Relays::stop`] (an error path) must not keep
    /// publishing from a namespace that is being dropped.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
