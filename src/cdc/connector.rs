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
//! **Order.** Each product has a lane (see `Pipeline` below): its events leave
//! one at a time in commit order, the next only once the broker acknowledged
//! the one before, so a product's versions reach the topic in order even
//! when a publish is retried. Products' lanes run side by side, so a slow
//! acknowledgement delays one product rather than all of them.
//!
//! **Crash.** [`Connector::crash`] imitates the process dying: the task
//! stops at its current `.await` (no code after it runs), the replication
//! connection is cut without a goodbye, and the producer is dropped, which
//! purges what librdkafka still had queued. [`Connector::restart`] starts a
//! new one from the slot.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use pgwire_replication::{Lsn, PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pgoutput::{self, DecodeError, Insert, PgOutput, Relations};
use super::Capture;
use crate::backoff::Backoff;
use crate::env::Env;
use crate::error::Result;
use crate::event::StockChanged;
use crate::history::{OrderId, Outcome, Told};
use crate::kafka::Publisher;
use crate::snapshot::Backlog;

/// How often the replication client tells the server a new confirmed
/// position. Like any real connector this one confirms in batches
/// (pg_recvlogical every 10 s, Debezium when it commits its offsets):
/// whatever was delivered since the last report is published again after a
/// crash, so a longer interval means more duplicates and fewer status
/// messages. It never delays an event.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// How long a replication session may take to connect, authenticate and be
/// granted the slot before the attempt is abandoned and retried.
const START_LIMIT: Duration = Duration::from_secs(10);

/// The server ends a walsender whose client has been silent this long. The
/// client reports every second, so only a dead or black-holed connection
/// trips it — and then the slot is released in seconds, not after the
/// default minute, so that a restarted connector can take it.
const WAL_SENDER_TIMEOUT: &str = "10s";

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

/// What the broker acknowledged, across every connector process of a run.
///
/// The ledger is the observer's notebook, not the connector's memory: a
/// crash does not erase it, because what the broker acknowledged stays
/// acknowledged. The drain phase reads it to know when everything committed
/// has reached the topic; tests read it to see redeliveries.
#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<LedgerState>,
    /// Test hook: while set, the connector publishes but confirms nothing.
    hold_acks: AtomicBool,
}

#[derive(Debug, Default)]
struct LedgerState {
    acknowledged: HashSet<OrderId>,
    deliveries: u64,
    confirmed: Option<Lsn>,
    sessions: u64,
    /// Why the last session failed, until one streams again.
    last_error: Option<String>,
    /// Per product (lane), why its event's last publish did not succeed,
    /// until the broker acknowledges it.
    failing_publishes: HashMap<String, String>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state.lock().expect("ledger mutex poisoned")
    }

    /// True when the broker has acknowledged an event for every order.
    pub fn all_acknowledged<'a>(&self, orders: impl IntoIterator<Item = &'a OrderId>) -> bool {
        let state = self.lock();
        orders.into_iter().all(|id| state.acknowledged.contains(id))
    }

    /// How many of `orders` have had no event acknowledged by the broker.
    pub fn unacknowledged<'a>(&self, orders: impl IntoIterator<Item = &'a OrderId>) -> u64 {
        let state = self.lock();
        orders.into_iter().filter(|id| !state.acknowledged.contains(id)).count() as u64
    }

    /// Orders with at least one acknowledged event.
    pub fn acknowledged_orders(&self) -> usize {
        self.lock().acknowledged.len()
    }

    /// Events the broker acknowledged, redeliveries included.
    pub fn deliveries(&self) -> u64 {
        self.lock().deliveries
    }

    /// The last position a connector confirmed to its replication client
    /// (the server hears of it within the status interval).
    pub fn confirmed(&self) -> Option<Lsn> {
        self.lock().confirmed
    }

    /// Replication sessions that started streaming (one per connect).
    pub fn sessions(&self) -> u64 {
        self.lock().sessions
    }

    /// Why the connector is not making progress, if it is not: its last
    /// session's error while it cannot stream, else the last error of a
    /// publish still waiting to be retried.
    pub fn last_error(&self) -> Option<String> {
        let state = self.lock();
        if let Some(error) = &state.last_error {
            return Some(format!("the connector could not stream the WAL: {error}"));
        }
        let (key, error) = state.failing_publishes.iter().min_by(|a, b| a.0.cmp(b.0))?;
        Some(format!(
            "the connector's publishes are failing ({} product(s); key {key}: {error})",
            state.failing_publishes.len()
        ))
    }

    fn publish_failed(&self, key: &str, error: Option<&str>) {
        self.lock().failing_publishes.insert(key.to_string(), error.unwrap_or("no error reported").to_string());
    }

    /// Test hook: while `hold` is true the connector keeps publishing but
    /// confirms no position, so that a crash then leaves every event
    /// delivered and unconfirmed: the restarted connector must publish them
    /// all again. This is how the duplicates of a crash are made certain
    /// rather than left to timing.
    pub fn hold_acks(&self, hold: bool) {
        self.hold_acks.store(hold, Ordering::SeqCst);
    }

    fn holding_acks(&self) -> bool {
        self.hold_acks.load(Ordering::SeqCst)
    }

    fn delivered(&self, key: &str, order: Option<OrderId>) {
        let mut state = self.lock();
        state.failing_publishes.remove(key);
        state.deliveries += 1;
        if let Some(id) = order {
            state.acknowledged.insert(id);
        }
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
    /// Shared with the task; the last handle is dropped off the async
    /// threads, because dropping librdkafka's producer joins its thread.
    publisher: Arc<Publisher>,
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
        Ok(connector)
    }

    fn spawn(&mut self, env: &Env) -> Result<()> {
        let publisher = Arc::new(env.publisher("dualwrite-connector")?);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(self.config.clone(), self.ledger.clone(), publisher.clone(), stop.clone()));
        self.running = Some(Running { task, publisher, stop });
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
            Some(running) => running.publisher.with_rebuilds(error),
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
        let publisher = running.publisher;
        let _ = tokio::task::spawn_blocking(move || drop(publisher)).await;
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
        let committed: Vec<OrderId> =
            match sqlx::query_scalar(include_str!("../../sql/orders_select_ids.sql")).fetch_all(&self.direct).await {
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
            sqlx::query_scalar(include_str!("../../sql/orders_select_ids.sql")).fetch_all(&self.direct).await?;
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
            let publisher = running.publisher;
            let _ = tokio::task::spawn_blocking(move || drop(publisher)).await;
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
            // Off the async threads if there is a runtime (librdkafka joins a thread).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let publisher = running.publisher;
                runtime.spawn_blocking(move || drop(publisher));
            }
        }
    }
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub key: String,
    pub payload: Vec<u8>,
    /// The order it announces, if the payload says (for the ledger).
    pub order: Option<OrderId>,
}

/// Why a change in the stream could not be turned into an event.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("undecodable pgoutput message")]
    Decode(#[from] DecodeError),
    #[error("an insert refers to relation {0}, which no Relation message described")]
    UnknownRelation(u32),
    #[error("column {column} of {table} is missing or unreadable")]
    Column { table: String, column: &'static str },
    #[error("the captured payload is not a StockChanged event")]
    Payload(#[source] serde_json::Error),
    #[error("a change arrived outside a transaction")]
    OutsideTransaction,
}

/// Why a replication session ended, other than being asked to stop.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the replication session did not start within {0:?}")]
    StartTimedOut(Duration),
    #[error("the replication session failed")]
    Replication(#[source] PgWireError),
    #[error("the server ended the replication stream")]
    Ended,
    #[error("cannot capture the change at {lsn}")]
    Capture {
        lsn: Lsn,
        #[source]
        source: CaptureError,
    },
}

/// The connector process: sessions, one after another, until stopped.
async fn run(config: Arc<ConnectorConfig>, ledger: Arc<Ledger>, publisher: Arc<Publisher>, stop: CancellationToken) {
    // A fresh process knows nothing and starts where the slot says (ZERO
    // asks the server for the slot's confirmed position). After a broken
    // session it resumes from what it has confirmed itself, which may be
    // ahead of what the server heard before the connection broke.
    let mut resume = Lsn::ZERO;
    let mut failures: u32 = 0;
    loop {
        let ended = match Session::open(&config, resume).await {
            Ok(mut session) => {
                let ended = stream(&mut session, &config, &ledger, &publisher, &stop, &mut resume, &mut failures).await;
                if ended.is_ok() {
                    session.close().await;
                    return;
                }
                // Dropping the session here cuts its connection; a new one follows.
                ended
            }
            Err(e) => Err(SessionError::Replication(e)),
        };
        let Err(e) = ended else { return };
        failures += 1;
        ledger.lock().last_error = Some(log_session_error(&config.slot, &e, failures));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Backoff::BACKGROUND.after(failures)) => {}
        }
    }
}

/// One replication session. `Ok` when asked to stop.
async fn stream(
    session: &mut Session,
    config: &ConnectorConfig,
    ledger: &Ledger,
    publisher: &Publisher,
    stop: &CancellationToken,
    resume: &mut Lsn,
    failures: &mut u32,
) -> Result<(), SessionError> {
    let client = session.client();
    // Connect, authenticate, START_REPLICATION: fails while the slot is
    // still held by a previous connection, or while the link is down.
    tokio::select! {
        _ = stop.cancelled() => return Ok(()),
        started = tokio::time::timeout(START_LIMIT, client.wait_started()) => match started {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(SessionError::Replication(e)),
            Err(_) => return Err(SessionError::StartTimedOut(START_LIMIT)),
        },
    }
    {
        let mut state = ledger.lock();
        state.sessions += 1;
        state.last_error = None;
        // A new session publishes everything unconfirmed afresh.
        state.failing_publishes.clear();
    }
    *failures = 0;
    tracing::debug!(slot = %config.slot, from = %resume, "replication session started");

    // pgoutput describes each table once per session, before its first row.
    let mut relations = Relations::default();
    // The events of the transaction being received; `None` between transactions.
    let mut open: Option<Vec<Outgoing>> = None;
    // Everything received and not yet confirmed (see `Pipeline`).
    let mut pipeline = Pipeline::new(publisher);
    loop {
        let step = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            // A publish ended: the broker's acknowledgement, or a failure to retry.
            Some(done) = pipeline.in_flight.next(), if !pipeline.in_flight.is_empty() => Step::Published(done),
            // The next message from the server. Not while too much is waiting
            // for the broker: the replication stream then waits instead (the
            // slot keeps the WAL, nothing is dropped).
            event = client.recv(), if !pipeline.is_full() => Step::Received(event),
        };
        let event = match step {
            Step::Published(done) => {
                if let Some(lsn) = pipeline.published(done, ledger) {
                    confirm(client, ledger, resume, lsn);
                }
                continue;
            }
            // An error here is a broken connection (reset, link down, server
            // gone) → a new session, from the last confirmed position.
            Step::Received(Ok(Some(event))) => event,
            Step::Received(Ok(None)) => return Err(SessionError::Ended),
            Step::Received(Err(e)) => return Err(SessionError::Replication(e)),
        };
        match event {
            ReplicationEvent::Begin { .. } => open = Some(Vec::new()),
            ReplicationEvent::XLogData { wal_start, data, .. } => {
                let capture = |source: CaptureError| SessionError::Capture { lsn: wal_start, source };
                match pgoutput::decode(&data).map_err(|e| capture(e.into()))? {
                    PgOutput::Relation(relation) => relations.remember(relation),
                    PgOutput::Insert(insert) => {
                        if let Some(event) = capture_insert(config, &relations, &insert).map_err(capture)? {
                            open.as_mut().ok_or_else(|| capture(CaptureError::OutsideTransaction))?.push(event);
                        }
                    }
                    PgOutput::Other(_) => {}
                }
            }
            ReplicationEvent::Message { transactional, lsn, prefix, content } => {
                // Every run's messages are in this database's WAL: only the
                // run's own prefix is ours. Non-transactional messages are
                // not written by the app (they would bypass the commit).
                if config.capture == Capture::Messages && transactional && prefix == config.schema {
                    let capture = |source: CaptureError| SessionError::Capture { lsn, source };
                    let event = capture_message(&content).map_err(capture)?;
                    open.as_mut().ok_or_else(|| capture(CaptureError::OutsideTransaction))?.push(event);
                }
            }
            ReplicationEvent::Commit { end_lsn, .. } => {
                // The transaction is complete: publish its events. Its
                // position is confirmed once they, and everything committed
                // before them, are acknowledged — at once if that is already so.
                let events = open.take().unwrap_or_default();
                if let Some(lsn) = pipeline.committed(end_lsn, events) {
                    confirm(client, ledger, resume, lsn);
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                // The server has sent everything up to wal_end. Once what came
                // before is acknowledged, confirming it lets the slot release
                // the WAL that other runs wrote, with nothing for this one.
                if open.is_none() {
                    if let Some(lsn) = pipeline.committed(wal_end, Vec::new()) {
                        confirm(client, ledger, resume, lsn);
                    }
                }
            }
            // Only with a stop position, which the connector never sets.
            ReplicationEvent::StoppedAt { .. } => return Err(SessionError::Ended),
        }
    }
}

/// What woke the session loop.
enum Step {
    Published(Published),
    Received(Result<Option<ReplicationEvent>, PgWireError>),
}

/// Tells the replication client that everything up to `lsn` is delivered;
/// it reports that to the server within [`STATUS_INTERVAL`].
fn confirm(client: &ReplicationClient, ledger: &Ledger, resume: &mut Lsn, lsn: Lsn) {
    if ledger.holding_acks() || lsn <= *resume {
        return;
    }
    client.update_applied_lsn(lsn);
    *resume = lsn;
    ledger.lock().confirmed = Some(lsn);
}

/// Most events waiting for the broker before the session stops reading.
const MAX_WAITING: usize = 10_000;

/// The events of committed transactions on their way to the broker, and the
/// positions waiting for them.
///
/// Each product (the record key) has a *lane*: its events leave one at a
/// time, in commit order, and the next one leaves only when the broker has
/// acknowledged the one before. So a product's versions reach the topic in
/// order even when a publish fails and is retried. Lanes of different
/// products run side by side, so one slow acknowledgement does not hold up
/// every other product (the topic keeps order per key only, too).
///
/// Positions are confirmed strictly in commit order: a transaction's
/// position once all its events, and every earlier transaction's, are acknowledged.
struct Pipeline<'p> {
    publisher: &'p Publisher,
    /// Commit positions not confirmed yet, oldest first, with how many of
    /// their events are still unacknowledged.
    positions: VecDeque<Position>,
    /// The number of the next transaction (`positions` are consecutive).
    next: u64,
    /// Per key, the events not yet acknowledged; the first is in flight.
    lanes: HashMap<String, VecDeque<Waiting>>,
    waiting: usize,
    in_flight: FuturesUnordered<BoxFuture<'p, Published>>,
}

struct Position {
    transaction: u64,
    lsn: Lsn,
    unacknowledged: usize,
}

struct Waiting {
    transaction: u64,
    event: Outgoing,
    /// Publishes of this event that did not succeed.
    failures: u32,
}

/// A publish that ended, for the lane `key`.
struct Published {
    key: String,
    told: Told,
}

impl<'p> Pipeline<'p> {
    fn new(publisher: &'p Publisher) -> Pipeline<'p> {
        Pipeline {
            publisher,
            positions: VecDeque::new(),
            next: 0,
            lanes: HashMap::new(),
            waiting: 0,
            in_flight: FuturesUnordered::new(),
        }
    }

    fn is_full(&self) -> bool {
        self.waiting >= MAX_WAITING
    }

    /// A committed transaction's events (none, for a keepalive). Returns a
    /// position that may be confirmed now, if any.
    fn committed(&mut self, lsn: Lsn, events: Vec<Outgoing>) -> Option<Lsn> {
        if events.is_empty() && self.positions.is_empty() {
            return Some(lsn);
        }
        let transaction = self.next;
        self.next += 1;
        self.positions.push_back(Position { transaction, lsn, unacknowledged: events.len() });
        for event in events {
            self.waiting += 1;
            let lane = self.lanes.entry(event.key.clone()).or_default();
            lane.push_back(Waiting { transaction, event, failures: 0 });
            // An idle lane sends at once; a busy one sends it after the others.
            if lane.len() == 1 {
                send(&self.in_flight, self.publisher, &lane[0]);
            }
        }
        self.confirmable()
    }

    /// A publish ended. Returns a position that may be confirmed now, if any.
    fn published(&mut self, done: Published, ledger: &Ledger) -> Option<Lsn> {
        let lane = self.lanes.get_mut(&done.key).expect("a publish belongs to a lane");
        let head = lane.front_mut().expect("a lane in flight has a head");
        if done.told.outcome != Outcome::Ok {
            // Fail or Unknown: publish it again, after a pause. Skipping it
            // would lose it; retrying an Unknown may write it twice, which
            // the downstream consumer tolerates. Its position waits meanwhile.
            // At debug level: during an injected Kafka fault this is the
            // expected behaviour, not news (`-vv` shows it).
            head.failures += 1;
            ledger.publish_failed(&done.key, done.told.error.as_deref());
            tracing::debug!(
                key = %done.key,
                attempt = head.failures,
                outcome = done.told.outcome.as_str(),
                error = done.told.error.as_deref().unwrap_or(""),
                "the connector's publish did not succeed; retrying (its position stays unconfirmed)"
            );
            send(&self.in_flight, self.publisher, &lane[0]);
            return None;
        }
        // Acknowledged: the lane's next event may go.
        let acknowledged = lane.pop_front().expect("checked above");
        ledger.delivered(&done.key, acknowledged.event.order);
        self.waiting -= 1;
        match lane.front() {
            Some(next) => send(&self.in_flight, self.publisher, next),
            None => {
                self.lanes.remove(&done.key);
            }
        }
        let first = self.positions.front().expect("an event belongs to a position").transaction;
        self.positions[(acknowledged.transaction - first) as usize].unacknowledged -= 1;
        self.confirmable()
    }

    /// Removes the positions whose events, and all earlier ones, are
    /// acknowledged; returns the newest of them.
    fn confirmable(&mut self) -> Option<Lsn> {
        let mut newest = None;
        while self.positions.front().is_some_and(|p| p.unacknowledged == 0) {
            newest = self.positions.pop_front().map(|p| p.lsn);
        }
        newest
    }
}

/// Starts publishing a lane's head.
fn send<'p>(in_flight: &FuturesUnordered<BoxFuture<'p, Published>>, publisher: &'p Publisher, waiting: &Waiting) {
    let Outgoing { key, payload, .. } = waiting.event.clone();
    let pause = (waiting.failures > 0).then(|| Backoff::BACKGROUND.after(waiting.failures));
    in_flight.push(Box::pin(async move {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        // Waits for the broker's acknowledgement (bounded by the delivery
        // timeout): Ok, Fail (never reached the broker) or Unknown (the
        // reply was lost; the broker may have it).
        let told = publisher.publish(&key, &payload).await;
        Published { key, told }
    }));
}

/// The event for an inserted row of the captured table; `None` for a row of
/// any other table.
fn capture_insert(
    config: &ConnectorConfig,
    relations: &Relations,
    insert: &Insert,
) -> Result<Option<Outgoing>, CaptureError> {
    let relation = relations.get(insert.relation).ok_or(CaptureError::UnknownRelation(insert.relation))?;
    let Some(table) = config.capture.table().filter(|t| relation.is(&config.schema, t)) else { return Ok(None) };
    let column = |name: &'static str| {
        relation.text(insert, name).ok_or_else(|| CaptureError::Column { table: table.to_string(), column: name })
    };
    fn parse<T: std::str::FromStr>(text: &str, table: &str, column: &'static str) -> Result<T, CaptureError> {
        text.parse().map_err(|_| CaptureError::Column { table: table.to_string(), column })
    }
    match config.capture {
        // cdc: the row *is* the event.
        Capture::Orders => {
            let event = StockChanged {
                order_id: parse(column("order_id")?, table, "order_id")?,
                product_id: parse(column("product_id")?, table, "product_id")?,
                delta: parse(column("delta")?, table, "delta")?,
                quantity: parse(column("quantity")?, table, "quantity")?,
                version: parse(column("version")?, table, "version")?,
            };
            Ok(Some(Outgoing { key: event.key(), payload: event.to_json(), order: Some(event.order_id) }))
        }
        // outbox-cdc, table mode: the row carries the event, ready-made.
        Capture::OutboxTable => {
            let payload = column("payload")?.as_bytes().to_vec();
            let order = StockChanged::from_json(&payload).ok().map(|e| e.order_id);
            Ok(Some(Outgoing { key: column("aggregateid")?.to_string(), payload, order }))
        }
        Capture::Messages => Ok(None),
    }
}

/// The event carried by a captured logical decoding message.
fn capture_message(content: &[u8]) -> Result<Outgoing, CaptureError> {
    let event = StockChanged::from_json(content).map_err(CaptureError::Payload)?;
    Ok(Outgoing { key: event.key(), payload: content.to_vec(), order: Some(event.order_id) })
}

/// A replication connection. Dropped, it is cut at once — no CopyDone, as
/// when a process dies; [`Session::close`] ends it politely.
struct Session {
    client: Option<ReplicationClient>,
}

impl Session {
    async fn open(config: &ConnectorConfig, resume: Lsn) -> Result<Session, PgWireError> {
        let replication = ReplicationConfig::new(
            config.host.clone(),
            config.user.clone(),
            // Empty when there is none: trust authentication, as `make
            // setup` configures for loopback.
            config.password.0.clone(),
            config.database.clone(),
            config.slot.clone(),
            config.slot.clone(),
        )
        .with_port(config.port)
        .with_start_lsn(resume)
        .with_ack_lsn(resume)
        .with_status_interval(STATUS_INTERVAL)
        .with_wakeup_interval(Duration::from_secs(1))
        .with_options(format!("-c wal_sender_timeout={WAL_SENDER_TIMEOUT}"))
        .with_application_name(format!("dualwrite-connector-{}", config.slot));
        // Spawns the client's worker and returns; connecting happens there,
        // and its errors surface in `wait_started`.
        let client = ReplicationClient::connect(replication).await?;
        Ok(Session { client: Some(client) })
    }

    fn client(&mut self) -> &mut ReplicationClient {
        self.client.as_mut().expect("an open session has a client")
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.stop();
            let _ = tokio::time::timeout(Duration::from_secs(2), client.join()).await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut client) = self.client.take() {
            client.abort();
        }
    }
}

/// Logs a failed session and returns its error chain.
fn log_session_error(slot: &str, error: &SessionError, failures: u32) -> String {
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    // A restarted connector meets its predecessor's slot still active until
    // the server notices the old connection is gone: expected, and brief.
    // Reconnecting is what a connector does during a fault on its link, so
    // it is logged at debug level; one that cannot stream at all is named
    // in the drain report (its last error), where it decides the verdict.
    if chain.contains("is active for PID") {
        tracing::debug!(slot, failures, "{chain}; retrying");
    } else {
        tracing::debug!(slot, failures, "{chain}; reconnecting from the last confirmed position");
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(capture: Capture) -> ConnectorConfig {
        ConnectorConfig {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            password: Password::default(),
            database: "postgres".into(),
            slot: "dw_cdc_test".into(),
            schema: "dw_cdc_test".into(),
            capture,
        }
    }

    fn relation(id: u32, namespace: &str, name: &str, columns: &[&str]) -> pgoutput::Relation {
        pgoutput::Relation {
            id,
            namespace: namespace.into(),
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn text(values: &[&str]) -> Vec<pgoutput::Value> {
        values.iter().map(|v| pgoutput::Value::Text(v.as_bytes().to_vec())).collect()
    }

    const ORDER: &str = "6f1c2a4e-0000-4000-8000-00000000002a";

    #[test]
    fn the_password_is_the_urls_decoded_and_never_printed() {
        let options = crate::db::parse_url("postgres://dw:s%40cret%2F1@127.0.0.1:5432/postgres").unwrap();
        let password = Password::of(&options);
        assert_eq!(password, Password::new("s@cret/1"));
        assert_eq!(format!("{password:?}"), "(redacted)");
        let mut config = config(Capture::Orders);
        config.password = password;
        assert!(!format!("{config:?}").contains("cret"), "{config:?}");
    }

    #[test]
    fn an_orders_row_becomes_a_stock_changed_keyed_by_product() {
        let mut relations = Relations::default();
        relations.remember(relation(
            7,
            "dw_cdc_test",
            "orders",
            &["order_id", "product_id", "delta", "quantity", "version"],
        ));
        let insert = Insert { relation: 7, values: text(&[ORDER, "3", "-2", "998", "4"]) };
        let out = capture_insert(&config(Capture::Orders), &relations, &insert).unwrap().unwrap();
        assert_eq!(out.key, "3");
        let event = StockChanged::from_json(&out.payload).unwrap();
        assert_eq!((event.product_id, event.delta, event.quantity, event.version), (3, -2, 998, 4));
        assert_eq!(out.order, Some(ORDER.parse().unwrap()));
    }

    #[test]
    fn rows_of_other_tables_and_schemas_are_not_captured() {
        let mut relations = Relations::default();
        relations.remember(relation(7, "dw_other_run", "orders", &["order_id"]));
        relations.remember(relation(8, "dw_cdc_test", "stock", &["product_id"]));
        for id in [7, 8] {
            let insert = Insert { relation: id, values: text(&["x"]) };
            assert_eq!(capture_insert(&config(Capture::Orders), &relations, &insert).unwrap(), None);
        }
    }

    #[test]
    fn an_outbox_row_is_published_as_is_keyed_by_aggregate() {
        let mut relations = Relations::default();
        relations.remember(relation(
            9,
            "dw_cdc_test",
            "outbox",
            &["id", "aggregatetype", "aggregateid", "type", "payload"],
        ));
        let payload =
            format!(r#"{{"delta": -1, "version": 2, "order_id": "{ORDER}", "quantity": 5, "product_id": 4}}"#);
        let insert = Insert { relation: 9, values: text(&["id", "stock", "4", "StockChanged", &payload]) };
        let out = capture_insert(&config(Capture::OutboxTable), &relations, &insert).unwrap().unwrap();
        assert_eq!(out.key, "4");
        assert_eq!(out.payload, payload.as_bytes());
        assert_eq!(out.order, Some(ORDER.parse().unwrap()));
    }

    #[test]
    fn an_unreadable_row_is_an_error_not_a_skip() {
        let mut relations = Relations::default();
        relations.remember(relation(7, "dw_cdc_test", "orders", &["order_id", "product_id"]));
        let insert = Insert { relation: 7, values: text(&["not-a-uuid", "3"]) };
        assert!(matches!(
            capture_insert(&config(Capture::Orders), &relations, &insert),
            Err(CaptureError::Column { column: "order_id", .. })
        ));
        let unknown = Insert { relation: 99, values: vec![] };
        assert!(matches!(
            capture_insert(&config(Capture::Orders), &relations, &unknown),
            Err(CaptureError::UnknownRelation(99))
        ));
    }

    #[test]
    fn a_message_is_keyed_by_its_product() {
        let content = format!(r#"{{"order_id":"{ORDER}","product_id":2,"delta":-1,"quantity":9,"version":1}}"#);
        let out = capture_message(content.as_bytes()).unwrap();
        assert_eq!(out.key, "2");
        assert!(capture_message(b"not json").is_err());
    }

    /// A publisher that is never polled: the pipeline's futures are built
    /// but nothing is sent, and the tests report each outcome by hand.
    fn idle_publisher() -> Publisher {
        Publisher::new(crate::kafka::PublisherConfig {
            bootstrap: "127.0.0.1:1".into(),
            topic: "never-used".into(),
            publish_timeout: Duration::from_secs(5),
            client_id: "pipeline-test".into(),
        })
        .unwrap()
    }

    fn event(key: &str) -> Outgoing {
        Outgoing { key: key.into(), payload: b"{}".to_vec(), order: Some(OrderId::new_v4()) }
    }

    fn ok(key: &str) -> Published {
        Published { key: key.into(), told: Told::ok() }
    }

    fn unknown(key: &str) -> Published {
        Published { key: key.into(), told: Told::unknown("reply lost") }
    }

    #[tokio::test]
    async fn a_position_is_confirmed_only_after_everything_before_it() {
        let publisher = idle_publisher();
        let ledger = Ledger::default();
        let mut pipeline = Pipeline::new(&publisher);
        // T1 and T3 for product a, T2 for product b: a and b go side by side.
        assert_eq!(pipeline.committed(Lsn(10), vec![event("a")]), None);
        assert_eq!(pipeline.committed(Lsn(20), vec![event("b")]), None);
        assert_eq!(pipeline.committed(Lsn(30), vec![event("a")]), None);
        assert_eq!(pipeline.in_flight.len(), 2, "one in flight per product");
        // b's acknowledgement alone confirms nothing: T1 is still out.
        assert_eq!(pipeline.published(ok("b"), &ledger), None);
        // T1 acknowledged: T1 and T2 are done, T3 is sent.
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(20)));
        assert_eq!(pipeline.in_flight.len(), 3, "a's next event was sent (the old futures are never polled)");
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(30)));
        assert_eq!(ledger.deliveries(), 3);
    }

    #[tokio::test]
    async fn a_failed_publish_is_retried_and_holds_its_lane_and_position() {
        let publisher = idle_publisher();
        let ledger = Ledger::default();
        let mut pipeline = Pipeline::new(&publisher);
        pipeline.committed(Lsn(10), vec![event("a")]);
        pipeline.committed(Lsn(20), vec![event("a")]);
        assert_eq!(pipeline.published(unknown("a"), &ledger), None);
        assert_eq!(pipeline.published(unknown("a"), &ledger), None);
        assert_eq!(pipeline.lanes["a"][0].failures, 2, "the same event, retried");
        assert_eq!(pipeline.lanes["a"].len(), 2, "the next waits behind it");
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(10)));
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(20)));
        assert!(pipeline.lanes.is_empty());
    }

    #[tokio::test]
    async fn positions_without_events_wait_only_for_what_came_before() {
        let publisher = idle_publisher();
        let ledger = Ledger::default();
        let mut pipeline = Pipeline::new(&publisher);
        // Nothing pending: a keepalive (or another run's transaction) at once.
        assert_eq!(pipeline.committed(Lsn(5), vec![]), Some(Lsn(5)));
        pipeline.committed(Lsn(10), vec![event("a")]);
        assert_eq!(pipeline.committed(Lsn(15), vec![]), None, "behind an unacknowledged event");
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(15)));
    }
}
