//! The connector process: one replication session after another, each
//! streaming the slot through the pipeline and confirming positions.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::StreamExt;
use pgwire_replication::{Lsn, PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent};
use tokio_util::sync::CancellationToken;

use super::super::pgoutput::{self, PgOutput, Relations};
use super::super::Capture;
use super::capture::{capture_insert, capture_message, CaptureError, Outgoing};
use super::pipeline::{Pipeline, Published};
use super::sink::Sink;
use super::{ConnectorConfig, Ledger};
use crate::backoff::Backoff;

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
pub(super) async fn run(config: Arc<ConnectorConfig>, ledger: Arc<Ledger>, sink: Arc<Sink>, stop: CancellationToken) {
    // A fresh process knows nothing and starts where the slot says (ZERO
    // asks the server for the slot's confirmed position). After a broken
    // session it resumes from what it has confirmed itself, which may be
    // ahead of what the server heard before the connection broke.
    let mut resume = Lsn::ZERO;
    let mut failures: u32 = 0;
    loop {
        let ended = match Session::open(&config, resume).await {
            Ok(mut session) => {
                let ended = stream(&mut session, &config, &ledger, &sink, &stop, &mut resume, &mut failures).await;
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
    sink: &Sink,
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
    let mut pipeline = Pipeline::new(sink);
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
                    let event = capture_message(config, &content).map_err(capture)?;
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
