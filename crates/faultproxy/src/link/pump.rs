//! One direction of a connection, in its two modes.
//!
//! - **Pass-through** (`fast`): while the direction's chain is empty, the
//!   pump reads into one buffer and writes it out in place, watching the
//!   chain for a change. This is the proxy's cost on a healthy link, so it
//!   is kept to the two system calls any proxy needs.
//! - **Toxic** (this file and `forward`): a reader timestamps chunks into a
//!   queue, so that a direction held by a toxic keeps reading (up to
//!   [`BUFFERED_CHUNKS`], then TCP flow control pushes back) and latency
//!   counts from each chunk's arrival; the pump takes chunks off the queue
//!   and passes them through the live toxics.
//!
//! The pump moves from pass-through to toxic when a toxic appears (the chunk
//! just read, if any, is the first to meet it), and back once the chain is
//! empty and the queue drained. Per-connection state of a toxic (its
//! toxicity roll, the bytes `limit_data` counted, the bandwidth booked) lives
//! in [`Applied`], rebuilt from the chain at every change and kept for the
//! toxics that stay.

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::draw::Draws;
use super::{after_ms, sleep_until_or_forever, until_set, Chunk, Event};
use crate::toxic_set::Chain;
use crate::wire::ToxicKind;

/// Chunks a reader may run ahead of its pump (Toxiproxy buffers 1024 chunks
/// in front of a latency toxic). A held or delayed direction keeps reading
/// until this fills, then TCP flow control pushes back on the sender.
const BUFFERED_CHUNKS: usize = 1024;

/// How much a read asks the kernel for at a time (Go's `io.Copy` buffer).
pub(super) const READ_SIZE: usize = 32 * 1024;

/// A toxic as applied to this connection: the toxic plus the state that
/// Toxiproxy keeps per link.
#[derive(Debug, Clone)]
pub(super) struct Applied {
    pub id: u64,
    pub revision: u64,
    /// The toxicity roll: does this toxic act on this connection at all?
    pub active: bool,
    /// When this toxic started on this connection: its publication, or the
    /// connection's start if that came later.
    pub since: Instant,
    pub kind: ToxicKind,
    /// `timeout`: when it last swallowed a chunk (each restarts its count).
    pub last_drop: Option<Instant>,
    /// `limit_data`: bytes passed since the toxic was added.
    pub sent: u64,
    /// `bandwidth`: when the link is free again.
    pub free_at: Instant,
}

/// Why pass-through stopped, when the connection goes on.
pub(super) enum Change {
    /// The chain changed; the event, if any, was read after the change and
    /// must meet it (a chunk, or the EOF).
    Toxics(Option<Event>),
    /// The proxy's toxic set is gone (the proxy is being deleted).
    Closed,
}

/// Why a wait ended.
pub(super) enum Wake {
    /// The toxic chain changed: look again.
    Changed,
    /// The time waited for has come.
    Due,
}

/// How a stretch of toxic mode ended.
enum Mode {
    /// The connection is over.
    End,
    /// No toxic left and nothing queued: back to pass-through.
    Clear,
}

/// One direction of a connection.
pub(super) struct Pump {
    pub(super) chain: watch::Receiver<Chain>,
    /// The chain `applied` was built from.
    seen: Chain,
    /// The proxy's toxic set is gone (the proxy was deleted; this connection
    /// is about to be dropped): stop waiting for changes.
    pub(super) chain_closed: bool,
    pub(super) applied: Vec<Applied>,
    opened: Instant,
    /// A `timeout` toxic that was on this direction has been removed: the
    /// connection closes (Toxiproxy's `Cleanup`, run whatever the toxicity).
    pub(super) cleanup_due: bool,
    pub(super) draws: Draws,
    /// The connection closes with an RST (SO_LINGER 0 is set): do not send
    /// a FIN first.
    abortive: bool,
}

impl Pump {
    pub fn new(chain: watch::Receiver<Chain>, draws: Draws, abortive: bool) -> Pump {
        Pump {
            chain,
            seen: Arc::new(Vec::new()),
            chain_closed: false,
            applied: Vec::new(),
            opened: Instant::now(),
            cleanup_due: false,
            draws,
            abortive,
        }
    }

    /// Forwards `source` to `dest` until the connection ends: the source's
    /// EOF or an error, a toxic, or `peer_ended` (the other direction ended
    /// it). Closes `dest` with a FIN unless the connection is abortive.
    pub async fn run<R, W>(&mut self, source: &mut R, dest: &mut W, peer_ended: &AtomicBool)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut pending = None;
        let mut buffer: Option<Box<[u8]>> = None;
        loop {
            self.refresh();
            if self.cleanup_due {
                break;
            }
            if self.applied.is_empty() && pending.is_none() {
                let buf = buffer.get_or_insert_with(|| vec![0; READ_SIZE].into_boxed_slice());
                match self.pass_through(source, dest, buf, peer_ended).await {
                    Some(Change::Toxics(event)) => pending = event,
                    Some(Change::Closed) => self.chain_closed = true,
                    None => break,
                }
                continue;
            }
            match self.with_toxics(source, dest, pending.take(), peer_ended).await {
                Mode::Clear => {}
                Mode::End => break,
            }
        }
        if !self.abortive {
            // Toxiproxy closes the link's destination: the peer sees EOF at
            // once. The socket itself closes when the connection's task ends.
            let _ = dest.shutdown().await;
        }
    }

    /// Toxic mode: a reader and the pump, side by side, until the connection
    /// ends or the chain is empty again.
    async fn with_toxics<R, W>(
        &mut self,
        source: &mut R,
        dest: &mut W,
        pending: Option<Event>,
        peer_ended: &AtomicBool,
    ) -> Mode
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (chunks, mut queue) = mpsc::channel(BUFFERED_CHUNKS);
        if let Some(event) = pending {
            if chunks.try_send(event).is_err() {
                unreachable!("a new channel has room for one event");
            }
        }
        tokio::select! {
            mode = self.pump_chunks(&mut queue, dest) => mode,
            never = read_chunks(source, chunks, peer_ended) => match never {},
        }
    }

    /// Brings `applied` up to date with the proxy's current chain.
    pub(super) fn refresh(&mut self) {
        // `changed()` marks a version as seen before the pump gets here, so
        // the version flag cannot tell whether `applied` is stale; the
        // chain's identity can: every change publishes a new `Arc` (the pump
        // holds the old one, so `Arc::make_mut` must copy).
        let chain = self.chain.borrow_and_update().clone();
        if Arc::ptr_eq(&chain, &self.seen) {
            return;
        }
        self.seen = chain.clone();
        let old = std::mem::take(&mut self.applied);
        // A `timeout` that acted here and is gone closes the connection.
        self.cleanup_due |= old
            .iter()
            .any(|a| matches!(a.kind, ToxicKind::Timeout { .. }) && !chain.iter().any(|live| live.id == a.id));
        let mut applied = Vec::with_capacity(chain.len());
        for live in chain.iter() {
            let previous = old.iter().find(|a| a.id == live.id);
            applied.push(match previous {
                Some(prev) if prev.revision == live.revision => prev.clone(),
                _ => Applied {
                    id: live.id,
                    revision: live.revision,
                    // Toxiproxy rolls `rand < toxicity` each time a toxic
                    // starts on a link (added or updated).
                    active: self.draws.applies(live.toxic.toxicity),
                    since: live.since.max(self.opened),
                    kind: live.toxic.kind.clone(),
                    last_drop: None,
                    // An update keeps the per-link state, as Toxiproxy's
                    // stub state survives an update.
                    sent: previous.map_or(0, |p| p.sent),
                    free_at: previous.map_or(self.opened, |p| p.free_at),
                },
            });
        }
        self.applied = applied;
    }

    pub(super) fn active(&self) -> impl Iterator<Item = &Applied> {
        self.applied.iter().filter(|a| a.active)
    }

    /// Is a `timeout` toxic black-holing this direction?
    pub(super) fn held(&self) -> bool {
        self.active().any(|a| matches!(a.kind, ToxicKind::Timeout { .. }))
    }

    /// A black hole swallowed a chunk: every `timeout` starts counting again.
    pub(super) fn note_drop(&mut self, at: Instant) {
        for a in self.applied.iter_mut().filter(|a| a.active) {
            if let ToxicKind::Timeout { .. } = a.kind {
                a.last_drop = Some(at);
            }
        }
    }

    /// When the earliest `timeout` with a positive timeout closes the link:
    /// that long after it started or last swallowed a chunk.
    fn timeout_deadline(&self) -> Option<Instant> {
        self.active()
            .filter_map(|a| match a.kind {
                ToxicKind::Timeout { timeout } if timeout > 0 => {
                    after_ms(a.last_drop.map_or(a.since, |t| t.max(a.since)), timeout)
                }
                _ => None,
            })
            .min()
    }

    /// The `reset_peer` delay, if one is active.
    pub(super) fn reset_peer(&self) -> Option<Duration> {
        self.active().find_map(|a| match a.kind {
            ToxicKind::ResetPeer { timeout } => Some(Duration::from_millis(timeout.max(0) as u64)),
            _ => None,
        })
    }

    /// Waits for a change of the chain or for `until` (forever if `None`).
    pub(super) async fn wait(&mut self, until: Option<Instant>) -> Wake {
        let due = sleep_until_or_forever(until);
        tokio::select! {
            changed = self.chain.changed(), if !self.chain_closed => {
                if changed.is_err() {
                    self.chain_closed = true;
                }
                Wake::Changed
            }
            () = due => Wake::Due,
        }
    }

    /// The pump's half of toxic mode: chunks off the queue, through the
    /// toxics, until the connection ends or nothing is left to do.
    async fn pump_chunks<W: AsyncWrite + Unpin>(&mut self, queue: &mut mpsc::Receiver<Event>, dest: &mut W) -> Mode {
        loop {
            self.refresh();
            if self.cleanup_due {
                return Mode::End;
            }
            if self.applied.is_empty() && queue.is_empty() {
                return Mode::Clear;
            }
            let due = sleep_until_or_forever(self.timeout_deadline());
            // Idle, the pump still watches the chain: a `timeout` added now
            // must close the connection on time even if no byte ever moves.
            tokio::select! {
                changed = self.chain.changed(), if !self.chain_closed => {
                    if changed.is_err() {
                        self.chain_closed = true;
                    }
                }
                () = due => return Mode::End,
                event = queue.recv() => match event {
                    Some(Event::Data(chunk)) => {
                        if self.forward(chunk, dest).await.is_break() {
                            return Mode::End;
                        }
                    }
                    Some(Event::Eof) | None => {
                        self.finish().await;
                        return Mode::End;
                    }
                },
            }
        }
    }

    /// The source is closed: the connection ends, as soon as the toxics let
    /// it. `timeout` closes it at once, `reset_peer` after its delay,
    /// `slow_close` after its delay.
    async fn finish(&mut self) {
        let eof_at = Instant::now();
        loop {
            self.refresh();
            if self.held() || self.cleanup_due {
                return;
            }
            if let Some(after) = self.reset_peer() {
                tokio::time::sleep(after).await;
                return;
            }
            let delay: i64 = self
                .active()
                .filter_map(|a| match a.kind {
                    ToxicKind::SlowClose { delay } => Some(delay.max(0)),
                    _ => None,
                })
                .fold(0i64, i64::saturating_add);
            match after_ms(eof_at, delay) {
                Some(due) if due <= Instant::now() => return,
                due => {
                    self.wait(due).await;
                }
            }
        }
    }
}

/// Toxic mode's reader: timestamped chunks from `source` into the queue
/// until the source closes or the other direction ends the connection.
/// Never returns: once done it waits to be dropped with toxic mode.
///
/// A place in the queue is reserved *before* reading, so that dropping this
/// future (the pump going back to pass-through) never loses bytes: it is
/// then either waiting for room or in a read that has not completed, and
/// tokio's reads are cancel-safe.
async fn read_chunks<R: AsyncRead + Unpin>(
    source: &mut R,
    chunks: mpsc::Sender<Event>,
    peer_ended: &AtomicBool,
) -> Infallible {
    let mut buf = BytesMut::new();
    while let Ok(permit) = chunks.reserve().await {
        buf.reserve(READ_SIZE);
        let event = tokio::select! {
            biased;
            () = until_set(peer_ended) => Event::Eof,
            read = source.read_buf(&mut buf) => match read {
                Ok(n) if n > 0 => Event::Data(Chunk { data: buf.split().freeze(), at: Instant::now() }),
                // EOF and read errors alike: Toxiproxy closes the link's input.
                _ => Event::Eof,
            },
        };
        let last = matches!(event, Event::Eof);
        permit.send(event);
        if last {
            break;
        }
    }
    std::future::pending().await
}
