//! The CDC connector: reads the run's replication slot, publishes what it
//! captures, and confirms a position only after the broker acknowledged it.
//!
//! **The loop.** One replication session at a time; in it, messages in
//! WAL order:
//!
//! ```text
//! Begin            → start collecting the transaction's events
//! Relation, Insert → decode (pgoutput.rs); a captured row becomes an event
//! Message          → a captured logical decoding message becomes an event
//! Commit(end_lsn)  → publish the events; once the broker has acknowledged
//!                    them and everything committed before, confirm end_lsn
//! KeepAlive(pos)   → once everything before is acknowledged, confirm pos
//!                    (WAL other runs wrote, with nothing for this one)
//! ```
//!
//! **Why it cannot lose an event.** The slot hands out a committed
//! transaction until the connector confirms a position past its commit, and
//! the connector confirms positions in commit order, each only after every
//! event of that transaction and of every earlier one was acknowledged by
//! the broker. A publish that fails or ends Unknown is retried, for ever,
//! never skipped: the position waits with it. If the connector dies, the
//! next one starts from the slot's confirmed position and publishes again
//! whatever was not confirmed: duplicates are possible, loss is not.
//!
//! **Why it cannot invent an event.** Logical decoding only ever emits
//! committed transactions; a rolled-back order never reaches the WAL stream.
//!
//! **Order.** Each product has a lane (see `pipeline.rs`): its events are
//! handed to the idempotent producer in commit order as soon as they commit,
//! and the producer keeps a partition's records in that order, through its
//! own retries too. Waiting for each acknowledgement before sending the next
//! would cap a product at one event per broker round trip. A publish the
//! producer gives up on is retried, and its lane then sends one event at a
//! time, each after the one before is acknowledged, until it is empty. Only
//! then can a version land after a newer one (the producer gave up on one
//! and delivered the next): the report counts it as `reordered`.
//!
//! **Crash.** [`Connector::crash`] imitates the process dying: the task
//! stops at its current `.await` (no code after it runs), the replication
//! connection is cut without a goodbye, and the producer is dropped, which
//! purges what librdkafka still had queued. [`Connector::restart`] starts a
//! new one from the slot.
//!
//! **Where each part lives.**
//!
//! | file          | responsible for |
//! |---------------|-----------------|
//! | `mod.rs`      | [`Connector`]: start, crash, restart, stop; the drain check and the backlog |
//! | `session.rs`  | one replication session after another: the loop above, and confirming positions |
//! | `capture.rs`  | which changes become events, and how a row or message becomes one |
//! | `pipeline.rs` | committed events on their way to the broker: per-product lanes, positions in commit order |
//! | `ledger.rs`   | what the broker acknowledged, across every connector process of a run |
//! | `sink.rs`     | where events go: the topic, or (cache-cdc) the cache |
//! | `cache_sink.rs` | cache-cdc: each committed order set in Redis, only if newer |
//!
//! For cache-cdc "the broker" above is Redis: the same loop sets each
//! event's stock in the cache instead of publishing it, and confirms a
//! position once Redis has answered for it and everything before it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Capture;
use crate::env::Env;
use crate::error::Result;
use crate::event::EventKey;
use crate::history::OrderId;
use crate::snapshot::Backlog;

mod cache_sink;
mod capture;
mod ledger;
mod pipeline;
mod session;
mod sink;

pub use capture::CaptureError;
pub use ledger::Ledger;
pub use session::SessionError;
use sink::Sink;

/// Where and what a connector streams.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Postgres through the `postgres_relay` link.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The password of `--database-url` (or PGPASSWORD / ~/.pgpass, which
    /// sqlx reads when the URL has none): the connector authenticates as
    /// the app does.
    pub password: Password,
    pub database: String,
    /// The replication slot and the publication (the run's schema's name).
    pub slot: String,
    /// The run's schema: where captured tables live, and the prefix of
    /// captured messages.
    pub schema: String,
    pub capture: Capture,
    /// The events' record key, as the app would key them (a captured row or
    /// message is keyed here; an outbox row carries its key).
    pub event_key: EventKey,
}

impl ConnectorConfig {
    /// The connector of a CDC strategy's run.
    pub fn from_env(env: &Env) -> ConnectorConfig {
        let relay = env.links.postgres_relay;
        ConnectorConfig {
            host: relay.ip().to_string(),
            port: relay.port(),
            user: env.db.get_username().to_string(),
            password: Password::of(&env.db),
            // libpq's default: a database named after the user.
            database: env.db.get_database().unwrap_or(env.db.get_username()).to_string(),
            slot: super::slot_name(env).to_string(),
            schema: env.schema.clone(),
            capture: Capture::of(env).expect("a connector runs for CDC strategies only"),
            event_key: env.knobs.event_key,
        }
    }
}

/// A database password, kept out of logs and `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password sqlx would send for `options`. sqlx does not expose it
    /// directly; its URL form carries it, percent-encoded.
    pub fn of(options: &sqlx::postgres::PgConnectOptions) -> Password {
        use sqlx::ConnectOptions;
        let url = options.to_url_lossy();
        let decoded = url.password().map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
        Password(decoded.unwrap_or_default())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "(none)" } else { "(redacted)" })
    }
}

/// A running (or crashed) connector and what it has done.
pub struct Connector {
    config: Arc<ConnectorConfig>,
    ledger: Arc<Ledger>,
    /// Straight to Postgres (no proxy), for the drain check and slot lag.
    direct: PgPool,
    /// `None` between a crash and its restart.
    running: Option<Running>,
}

struct Running {
    task: JoinHandle<()>,
    /// Shared with the task. Dropping the last handle purges what its
    /// producer still queued (see `Publisher`).
    sink: Arc<Sink>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("config", &self.config)
            .field("ledger", &self.ledger)
            .field("running", &self.running.is_some())
            .finish()
    }
}

/// How long the connector's producer may take to start before the run
/// begins anyway (on a healthy link it takes milliseconds).
const WARM_UP: Duration = Duration::from_secs(5);

impl Connector {
    /// Starts the connector of a CDC run. The slot and publication must
    /// exist ([`super::prepare`]). Reaching Postgres through the relay link
    /// happens in the background: a link that is down is retried, not an error.
    pub async fn start(env: &Env) -> Result<Connector> {
        let direct = crate::db::connect_direct(&env.db, Some(&env.schema), 1).await?;
        let mut connector = Connector {
            config: Arc::new(ConnectorConfig::from_env(env)),
            ledger: Arc::default(),
            direct,
            running: None,
        };
        connector.spawn(env)?;
        // Running before the first order, as the relay and the app's
        // producer are: a producer's first publish otherwise waits up to
        // half a second for its producer id, and the run's lag would show
        // the connector's start-up. A restarted connector is not waited for.
        if let Some(running) = &connector.running {
            running.sink.warm_up(WARM_UP).await;
        }
        Ok(connector)
    }

    fn spawn(&mut self, env: &Env) -> Result<()> {
        let sink = Arc::new(Sink::of(env)?);
        let stop = CancellationToken::new();
        let task = tokio::spawn(session::run(self.config.clone(), self.ledger.clone(), sink.clone(), stop.clone()));
        self.running = Some(Running { task, sink, stop });
        Ok(())
    }

    /// What the broker acknowledged so far, and the test hook.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Why the connector is not making progress, if it is not (see
    /// [`Ledger::last_error`]), with its producer's replacements, if any.
    pub fn last_error(&self) -> Option<String> {
        let error = self.ledger.last_error()?;
        Some(match &self.running {
            Some(running) => running.sink.with_rebuilds(error),
            None => error,
        })
    }

    /// The process-death imitation: see the module doc.
    pub async fn crash(&mut self) {
        let Some(running) = self.running.take() else { return };
        // Cancelled at its current `.await`: the replication session's drop
        // cuts the connection (no CopyDone), the publish in flight is abandoned.
        running.task.abort();
        let _ = running.task.await;
        // The task's future is gone, so this is the producer's last handle:
        // dropping it purges librdkafka's queue, as the process's death would.
        drop(running.sink);
    }

    /// Starts a new connector process after a crash. It resumes from the
    /// slot's confirmed position; until the server has noticed the old
    /// connection is gone, the slot is still active and the new one retries.
    pub fn restart(&mut self, env: &Env) -> Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        self.spawn(env)
    }

    /// True when every order committed in the run's `orders` table has had
    /// its event acknowledged by the broker. Exact, and blind to the WAL that
    /// other runs write to the same cluster.
    pub async fn caught_up(&self) -> bool {
        let committed: Vec<OrderId> = match sqlx::query_scalar(include_str!("../../../sql/orders_select_ids.sql"))
            .fetch_all(&self.direct)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::debug!("cannot read the committed orders yet: {e}");
                return false;
            }
        };
        self.ledger.all_acknowledged(&committed)
    }

    /// What the connector left behind, for the snapshot: the committed
    /// orders whose event the broker has not acknowledged (exact, from the
    /// ledger), and the slot's lag in bytes. An error when either cannot be
    /// read: then the backlog is unknown, not zero.
    pub async fn backlog(&self) -> std::result::Result<Backlog, sqlx::Error> {
        let committed: Vec<OrderId> =
            sqlx::query_scalar(include_str!("../../../sql/orders_select_ids.sql")).fetch_all(&self.direct).await?;
        let slot_lag_bytes = super::slot_lag_bytes(&self.direct, &self.config.slot).await?;
        Ok(Backlog {
            unacknowledged: Some(self.ledger.unacknowledged(&committed)),
            slot_lag_bytes,
            ..Backlog::default()
        })
    }

    /// Stops the connector for good: it finishes the event in hand (briefly),
    /// ends its replication session cleanly and drops its producer.
    pub async fn stop(mut self) {
        if let Some(mut running) = self.running.take() {
            running.stop.cancel();
            if tokio::time::timeout(Duration::from_secs(5), &mut running.task).await.is_err() {
                running.task.abort();
                let _ = running.task.await;
            }
            drop(running.sink);
        }
        self.direct.close().await;
    }
}

impl Drop for Connector {
    /// A connector dropped without [`Connector::stop`] (a failing test, an
    /// error path) must not keep the slot busy.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.task.abort();
        }
    }
}

#[cfg(test)]
impl ConnectorConfig {
    /// A configuration for unit tests that never connect.
    pub(crate) fn for_tests(capture: Capture) -> ConnectorConfig {
        ConnectorConfig {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            password: Password::default(),
            database: "postgres".into(),
            slot: "dw_cdc_test".into(),
            schema: "dw_cdc_test".into(),
            capture,
            event_key: EventKey::Product,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_urls_decoded_and_never_printed() {
        let options = crate::db::parse_url("postgres://dw:s%40cret%2F1@127.0.0.1:5432/postgres").unwrap();
        let password = Password::of(&options);
        assert_eq!(password, Password::new("s@cret/1"));
        assert_eq!(format!("{password:?}"), "(redacted)");
        let mut config = ConnectorConfig::for_tests(Capture::Orders);
        config.password = password;
        assert!(!format!("{config:?}").contains("cret"), "{config:?}");
    }
}
