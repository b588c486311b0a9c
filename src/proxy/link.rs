//! One proxied connection: two pumps that apply the *live* toxic set.
//!
//! A connection is a client socket and an upstream socket joined by two
//! pumps, one per direction: `upstream` carries client → server bytes,
//! `downstream` server → client. Each direction has a reader, which reads
//! chunks off its source socket and stamps them with their arrival time, and
//! a pump, which forwards them to the other socket through the toxics.
//!
//! The pump owns no copy of the toxics. Before each step it looks at the
//! proxy's current chain (a `watch` channel, see `toxic_set`), and every
//! wait — a held chunk, a latency delay, bandwidth pacing — also wakes up on
//! a change of the chain. That is what makes a toxic added mid-run hit pooled
//! connections opened before it, and its removal end the effect at once:
//!
//! | toxic | what the pump does (Toxiproxy's semantics) |
//! |---|---|
//! | `latency` | forwards each chunk `latency ± jitter` ms after it arrived; order kept |
//! | `timeout` | drops every chunk; with `timeout > 0`, closes the connection that many ms after the toxic was added (or the connection opened), traffic or not; an EOF, or the toxic's removal, closes the connection (Toxiproxy's `Cleanup`) |
//! | `reset_peer` | on the next chunk (or EOF), drops it, waits `timeout` ms, then closes both sockets with a TCP RST |
//! | `bandwidth` | paces writes to `rate` KB/s, in pieces of at most 100 ms worth |
//! | `slow_close` | delays passing on the source's EOF by `delay` ms |
//! | `slicer` | writes `average_size ± size_variation` byte pieces, `delay` µs apart |
//! | `limit_data` | closes the connection once `bytes` bytes have passed since the toxic was added |
//!
//! Several toxics in one direction compose in chain order: a chunk is dropped
//! while any `timeout` is active, else waits out the sum of the latencies,
//! then is cut to the smallest piece any of the others allows.
//!
//! Why `timeout` drops rather than holds: that is what Toxiproxy 2.x does (a
//! black hole), and dualwrite's results must not depend on which proxy runs.
//! A request swallowed by a black hole never reaches the server, and the
//! connection it was sent on does not survive the fault: it is closed when
//! the toxic goes, so no client can read a late reply as the answer to a
//! later request.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::toxic::ToxicKind;
use super::toxic_set::Chain;

/// Chunks a reader may run ahead of its pump (Toxiproxy buffers 1024 chunks
/// in front of a latency toxic). A held or delayed direction keeps reading
/// until this fills, then TCP flow control pushes back on the sender.
const BUFFERED_CHUNKS: usize = 1024;

/// How much a reader asks the kernel for at a time (Go's `io.Copy` buffer).
const READ_SIZE: usize = 32 * 1024;

/// A piece of a byte stream as it was read, with its arrival time.
struct Chunk {
    data: Bytes,
    at: Instant,
}

/// What a reader hands to its pump.
enum Event {
    Data(Chunk),
    /// The source closed its sending side.
    Eof,
    /// Reading failed (reset by the peer, ...): the connection is over.
    Failed,
}

/// How a pump, and so the connection, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The source's EOF was passed on; the other direction may go on.
    Eof,
    /// Close both sockets normally (FIN).
    Close,
    /// Close both sockets with RST (`SO_LINGER` 0).
    Reset,
}

/// Runs one connection until both directions have ended or a toxic (or an
/// I/O error) closes it. Dropping the future — the proxy going down — closes
/// both sockets.
pub(crate) async fn run(
    mut client: TcpStream,
    mut upstream: TcpStream,
    upstream_toxics: watch::Receiver<Chain>,
    downstream_toxics: watch::Receiver<Chain>,
) {
    // Small requests must not wait for Nagle: latency is measured in ms here.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    let ending = {
        let (client_read, mut client_write) = client.split();
        let (upstream_read, mut upstream_write) = upstream.split();
        let (up_tx, mut up_rx) = mpsc::channel(BUFFERED_CHUNKS);
        let (down_tx, mut down_rx) = mpsc::channel(BUFFERED_CHUNKS);
        let mut up = Pump::new(upstream_toxics);
        let mut down = Pump::new(downstream_toxics);

        // Readers end on EOF or error; the pumps decide when the link ends.
        let readers = async {
            tokio::join!(read_chunks(client_read, up_tx), read_chunks(upstream_read, down_tx));
            std::future::pending::<()>().await
        };
        let pumps = async {
            let up = up.run(&mut up_rx, &mut upstream_write);
            let down = down.run(&mut down_rx, &mut client_write);
            tokio::pin!(up, down);
            let (mut up_done, mut down_done) = (false, false);
            while !(up_done && down_done) {
                tokio::select! {
                    ending = &mut up, if !up_done => match ending {
                        Ending::Eof => up_done = true,
                        other => return other,
                    },
                    ending = &mut down, if !down_done => match ending {
                        Ending::Eof => down_done = true,
                        other => return other,
                    },
                }
            }
            Ending::Eof
        };
        tokio::select! {
            ending = pumps => ending,
            () = readers => unreachable!("the readers future never completes"),
        }
    };

    if ending == Ending::Reset {
        // SO_LINGER 0 turns close() into an RST: both peers see "connection
        // reset by peer" instead of an orderly EOF.
        for stream in [&client, &upstream] {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Reads `source` into timestamped chunks until EOF or an error.
async fn read_chunks<R: AsyncRead + Unpin>(mut source: R, chunks: mpsc::Sender<Event>) {
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(READ_SIZE);
        let event = match source.read_buf(&mut buf).await {
            Ok(0) => Event::Eof,
            Ok(_) => Event::Data(Chunk { data: buf.split().freeze(), at: Instant::now() }),
            Err(_) => Event::Failed,
        };
        let last = !matches!(event, Event::Data(_));
        if chunks.send(event).await.is_err() || last {
            return;
        }
    }
}

/// Sleeps until `until`, or forever if there is no such moment.
async fn sleep_until_or_forever(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A toxic as applied to this connection: the toxic plus the state that
/// Toxiproxy keeps per link.
#[derive(Debug, Clone)]
struct Applied {
    id: u64,
    revision: u64,
    /// The toxicity roll: does this toxic act on this connection at all?
    active: bool,
    /// Where a `timeout` counts from: the toxic's publication, or this
    /// connection's start if it opened later.
    since: Instant,
    kind: ToxicKind,
    /// `limit_data`: bytes passed since the toxic was added.
    sent: u64,
    /// `bandwidth`: when the link is free again.
    free_at: Instant,
}

/// Why a wait ended.
enum Wake {
    /// The toxic chain changed: look again.
    Changed,
    /// The time waited for has come.
    Due,
}

/// One direction of a connection.
struct Pump {
    chain: watch::Receiver<Chain>,
    /// The chain `applied` was built from.
    seen: Chain,
    /// The proxy's toxic set is gone (the proxy was deleted; this connection
    /// is about to be dropped): stop waiting for changes.
    chain_closed: bool,
    applied: Vec<Applied>,
    opened: Instant,
    /// A `timeout` toxic has been dropping this direction's data: when it
    /// goes, the connection is closed.
    blackholed: bool,
}

impl Pump {
    fn new(chain: watch::Receiver<Chain>) -> Pump {
        let mut pump = Pump {
            chain,
            seen: Arc::new(Vec::new()),
            chain_closed: false,
            applied: Vec::new(),
            opened: Instant::now(),
            blackholed: false,
        };
        pump.refresh();
        pump
    }

    /// Brings `applied` up to date with the proxy's current chain.
    fn refresh(&mut self) {
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
        self.applied = chain
            .iter()
            .map(|live| {
                let previous = old.iter().find(|a| a.id == live.id);
                match previous {
                    Some(prev) if prev.revision == live.revision => prev.clone(),
                    _ => Applied {
                        id: live.id,
                        revision: live.revision,
                        // Toxiproxy rolls `rand < toxicity` each time a
                        // toxic starts on a link (added or updated).
                        active: rand::random::<f32>() < live.toxic.toxicity,
                        since: live.since.max(self.opened),
                        kind: live.toxic.kind.clone(),
                        // An update keeps the per-link state, as Toxiproxy's
                        // stub state survives an update.
                        sent: previous.map_or(0, |p| p.sent),
                        free_at: previous.map_or(self.opened, |p| p.free_at),
                    },
                }
            })
            .collect();
    }

    fn active(&self) -> impl Iterator<Item = &Applied> {
        self.applied.iter().filter(|a| a.active)
    }

    /// Is a `timeout` toxic black-holing this direction?
    fn held(&self) -> bool {
        self.active().any(|a| matches!(a.kind, ToxicKind::Timeout { .. }))
    }

    /// Toxiproxy's `Cleanup` of a `timeout` toxic: once one that acted on
    /// this connection is gone, the connection is closed. Returns true when
    /// that moment has come; remembers whether one is acting now.
    fn timeout_removed(&mut self) -> bool {
        let held = self.held();
        let removed = self.blackholed && !held;
        self.blackholed = held;
        removed
    }

    /// When the earliest `timeout` with a non-zero timeout closes the link.
    fn timeout_deadline(&self) -> Option<Instant> {
        self.active()
            .filter_map(|a| match a.kind {
                ToxicKind::Timeout { timeout } if timeout > 0 => Some(a.since + Duration::from_millis(timeout)),
                _ => None,
            })
            .min()
    }

    /// The `reset_peer` delay, if one is active.
    fn reset_peer(&self) -> Option<Duration> {
        self.active().find_map(|a| match a.kind {
            ToxicKind::ResetPeer { timeout } => Some(Duration::from_millis(timeout)),
            _ => None,
        })
    }

    /// Waits for a change of the chain or for `until` (forever if `None`).
    async fn wait(&mut self, until: Option<Instant>) -> Wake {
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

    /// Forwards chunks until the source's EOF has been passed on or a toxic
    /// closes the connection.
    async fn run<W: AsyncWrite + Unpin>(&mut self, events: &mut mpsc::Receiver<Event>, dest: &mut W) -> Ending {
        loop {
            self.refresh();
            if self.timeout_removed() {
                return Ending::Close;
            }
            let due = sleep_until_or_forever(self.timeout_deadline());
            // Idle, a pump still watches the chain: a `timeout` added now
            // must close the connection on time even if no byte ever moves.
            tokio::select! {
                changed = self.chain.changed(), if !self.chain_closed => {
                    if changed.is_err() {
                        self.chain_closed = true;
                    }
                }
                () = due => return Ending::Close,
                event = events.recv() => match event {
                    Some(Event::Data(chunk)) => {
                        if let Some(ending) = self.forward(chunk, dest).await {
                            return ending;
                        }
                    }
                    Some(Event::Eof) | None => return self.finish(dest).await,
                    Some(Event::Failed) => return Ending::Close,
                },
            }
        }
    }

    /// Passes one chunk through the toxics, in pieces if a toxic says so.
    /// Returns `Some` if the connection must end.
    async fn forward<W: AsyncWrite + Unpin>(&mut self, chunk: Chunk, dest: &mut W) -> Option<Ending> {
        let mut data = chunk.data;
        // Each latency toxic draws its jitter once per chunk, however often
        // the chain changes while the chunk waits.
        let mut delays: Vec<((u64, u64), Duration)> = Vec::new();
        // The bandwidth slot booked for the piece about to be written.
        let mut booked: Option<Instant> = None;
        while !data.is_empty() {
            self.refresh();
            let now = Instant::now();

            // `timeout`: the chunk falls into the black hole. The pump's loop
            // closes the connection when the countdown ends or the toxic goes.
            if self.timeout_removed() {
                return Some(Ending::Close);
            }
            if self.blackholed {
                return None;
            }

            // `reset_peer`: the chunk is dropped and the link reset. Like
            // Toxiproxy, the countdown is not interrupted once it started.
            if let Some(after) = self.reset_peer() {
                tokio::time::sleep(after).await;
                return Some(Ending::Reset);
            }

            // `latency`: the chunk leaves `latency ± jitter` after it arrived
            // (not after the previous chunk left), so delays do not add up
            // along a busy stream; the chunks stay in order.
            let mut latency = Duration::ZERO;
            for a in self.active() {
                if let ToxicKind::Latency { latency: ms, jitter } = a.kind {
                    let key = (a.id, a.revision);
                    let delay = match delays.iter().find(|(k, _)| *k == key) {
                        Some((_, d)) => *d,
                        None => {
                            let d = jittered(ms, jitter);
                            delays.push((key, d));
                            d
                        }
                    };
                    latency += delay;
                }
            }
            if chunk.at + latency > now {
                // Whether the delay ran out or the chain changed, look again:
                // a removed latency toxic releases the chunk at once.
                self.wait(Some(chunk.at + latency)).await;
                continue;
            }

            // The next piece: as small as the strictest toxic wants.
            let mut size = data.len();
            for a in self.active() {
                match a.kind {
                    ToxicKind::LimitData { bytes } => {
                        let left = bytes.saturating_sub(a.sent);
                        if left == 0 {
                            return Some(Ending::Close);
                        }
                        size = size.min(usize::try_from(left).unwrap_or(usize::MAX));
                    }
                    ToxicKind::Slicer { average_size, size_variation, .. } => {
                        size = size.min(slice_size(average_size, size_variation));
                    }
                    // Toxiproxy sends at most 100 ms worth at a time.
                    ToxicKind::Bandwidth { rate } if rate > 0 => {
                        size = size.min(usize::try_from(rate.saturating_mul(100)).unwrap_or(usize::MAX));
                    }
                    _ => {}
                }
            }

            // `bandwidth`: a piece of n bytes occupies the link n / rate ms.
            let mut free_at = None;
            for a in self.active() {
                // A rate of 0 means unlimited, as in Toxiproxy.
                if let ToxicKind::Bandwidth { rate } = a.kind {
                    if let Some(nanos) = (size as u64).saturating_mul(1_000_000).checked_div(rate) {
                        let at = a.free_at.max(now) + Duration::from_nanos(nanos);
                        free_at = Some(free_at.map_or(at, |t: Instant| t.max(at)));
                    }
                }
            }
            if free_at.is_some() {
                // Keep the slot booked across chain changes, so that an
                // unrelated change does not restart the wait.
                let due = *booked.get_or_insert(free_at.unwrap_or(now));
                if due > now {
                    if let Wake::Changed = self.wait(Some(due)).await {
                        continue;
                    }
                }
            } else {
                booked = None;
            }

            let piece = data.split_to(size);
            if dest.write_all(&piece).await.is_err() {
                return Some(Ending::Close);
            }
            let sent_at = booked.take();
            let mut limit_reached = false;
            for a in self.applied.iter_mut().filter(|a| a.active) {
                match a.kind {
                    ToxicKind::LimitData { bytes } => {
                        a.sent += piece.len() as u64;
                        limit_reached |= a.sent >= bytes;
                    }
                    ToxicKind::Bandwidth { .. } => {
                        if let Some(t) = sent_at {
                            a.free_at = t;
                        }
                    }
                    _ => {}
                }
            }
            if limit_reached {
                return Some(Ending::Close);
            }

            // `slicer`: a pause between pieces of the same chunk.
            if !data.is_empty() {
                let pause = self
                    .active()
                    .filter_map(|a| match a.kind {
                        ToxicKind::Slicer { delay, .. } if delay > 0 => Some(Duration::from_micros(delay)),
                        _ => None,
                    })
                    .sum::<Duration>();
                if pause > Duration::ZERO {
                    self.wait(Some(Instant::now() + pause)).await;
                }
            }
        }
        None
    }

    /// Passes on the source's EOF: closes the connection under `timeout`
    /// (as Toxiproxy does), turned into a reset by `reset_peer`, delayed by
    /// `slow_close`.
    async fn finish<W: AsyncWrite + Unpin>(&mut self, dest: &mut W) -> Ending {
        let eof_at = Instant::now();
        loop {
            self.refresh();
            if self.held() || self.timeout_removed() {
                return Ending::Close;
            }
            if let Some(after) = self.reset_peer() {
                tokio::time::sleep(after).await;
                return Ending::Reset;
            }
            let delay: Duration = self
                .active()
                .filter_map(|a| match a.kind {
                    ToxicKind::SlowClose { delay } => Some(Duration::from_millis(delay)),
                    _ => None,
                })
                .sum();
            if eof_at + delay > Instant::now() {
                self.wait(Some(eof_at + delay)).await;
                continue;
            }
            break;
        }
        // Half-close: the destination sees EOF, the other direction goes on
        // until its own source closes.
        let _ = dest.shutdown().await;
        Ending::Eof
    }
}

/// `latency ± jitter` ms, never negative (Toxiproxy draws the jitter from
/// `[-jitter, jitter)`).
fn jittered(latency: u64, jitter: u64) -> Duration {
    if jitter == 0 {
        return Duration::from_millis(latency);
    }
    let offset = rand::random_range(0..jitter.saturating_mul(2)) as i128 - jitter as i128;
    Duration::from_millis((latency as i128 + offset).max(0) as u64)
}

/// A slice of `average ± variation` bytes, at least one byte. Toxiproxy
/// bisects each chunk recursively; a uniform draw gives the same average and
/// spread without its edge cases (it panics on a zero variation).
fn slice_size(average: u64, variation: u64) -> usize {
    let size = if variation == 0 {
        average
    } else {
        let low = average.saturating_sub(variation);
        rand::random_range(low..=average.saturating_add(variation))
    };
    usize::try_from(size.max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::toxic::{Stream, Toxic};
    use crate::proxy::toxic_set::LiveToxic;

    /// A chain of the given toxics, published now.
    fn chain(kinds: &[ToxicKind]) -> Chain {
        Arc::new(
            kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| LiveToxic {
                    id: i as u64 + 1,
                    revision: 0,
                    since: Instant::now(),
                    toxic: Toxic::new(kind.clone(), Stream::Downstream),
                })
                .collect(),
        )
    }

    /// A pump over an in-memory pipe, under paused time: returns the chain
    /// sender, the event sender, the far end of the pipe and the pump task.
    fn pump(
        kinds: &[ToxicKind],
    ) -> (watch::Sender<Chain>, mpsc::Sender<Event>, tokio::io::DuplexStream, tokio::task::JoinHandle<Ending>) {
        let (chain_tx, chain_rx) = watch::channel(chain(kinds));
        let (events_tx, mut events_rx) = mpsc::channel(16);
        let (mut near, far) = tokio::io::duplex(64 * 1024);
        let mut pump = Pump::new(chain_rx);
        let task = tokio::spawn(async move { pump.run(&mut events_rx, &mut near).await });
        (chain_tx, events_tx, far, task)
    }

    fn data(bytes: &'static [u8]) -> Event {
        Event::Data(Chunk { data: Bytes::from_static(bytes), at: Instant::now() })
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_exactly_and_removal_releases_a_waiting_chunk() {
        let (chain_tx, events, mut far, _task) = pump(&[ToxicKind::Latency { latency: 1000, jitter: 0 }]);
        let start = Instant::now();
        events.send(data(b"a")).await.unwrap();
        let mut buf = [0u8; 1];
        far.read_exact(&mut buf).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(1000));

        let start = Instant::now();
        events.send(data(b"b")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        chain_tx.send(chain(&[])).unwrap();
        far.read_exact(&mut buf).await.unwrap();
        assert_eq!((&buf, start.elapsed()), (b"b", Duration::from_millis(300)));
    }

    #[tokio::test(start_paused = true)]
    async fn bandwidth_paces_in_hundred_millisecond_pieces() {
        let (_chain, events, mut far, _task) = pump(&[ToxicKind::Bandwidth { rate: 10 }]);
        let start = Instant::now();
        events.send(Event::Data(Chunk { data: Bytes::from(vec![1u8; 2500]), at: start })).await.unwrap();
        let mut buf = vec![0u8; 2500];
        far.read_exact(&mut buf).await.unwrap();
        // 2500 bytes at 10 KB/s: 250 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_zero_drops_data_and_its_removal_closes_the_link() {
        let (chain_tx, events, mut far, task) = pump(&[]);
        chain_tx.send(chain(&[ToxicKind::Timeout { timeout: 0 }])).unwrap();
        events.send(data(b"swallowed")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!task.is_finished(), "a timeout of 0 never closes on its own");
        // Removing the toxic closes the connection (Toxiproxy's Cleanup), and
        // the swallowed bytes never arrive.
        chain_tx.send(chain(&[])).unwrap();
        assert_eq!(task.await.unwrap(), Ending::Close);
        drop(events);
        let mut rest = Vec::new();
        far.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_closes_an_idle_link_on_time_and_drops_data_meanwhile() {
        let (chain_tx, events, mut far, task) = pump(&[]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let added = Instant::now();
        chain_tx.send(chain(&[ToxicKind::Timeout { timeout: 500 }])).unwrap();
        events.send(data(b"held")).await.unwrap();
        assert_eq!(task.await.unwrap(), Ending::Close);
        assert_eq!(added.elapsed(), Duration::from_millis(500));
        // Nothing got through before the close.
        drop(events);
        let mut rest = Vec::new();
        far.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_close_delays_the_eof() {
        let (_chain, events, mut far, task) = pump(&[ToxicKind::SlowClose { delay: 700 }]);
        let start = Instant::now();
        events.send(data(b"last")).await.unwrap();
        events.send(Event::Eof).await.unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!((got.as_slice(), start.elapsed()), (&b"last"[..], Duration::from_millis(700)));
        assert_eq!(task.await.unwrap(), Ending::Eof);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let d = jittered(100, 20);
            assert!(d >= Duration::from_millis(80) && d < Duration::from_millis(120), "{d:?}");
        }
        // A jitter larger than the latency clamps at zero instead of wrapping.
        for _ in 0..1000 {
            assert!(jittered(5, 50) < Duration::from_millis(55));
        }
        assert_eq!(jittered(7, 0), Duration::from_millis(7));
    }

    #[test]
    fn slices_are_never_empty() {
        assert_eq!(slice_size(0, 0), 1);
        for _ in 0..1000 {
            let s = slice_size(10, 3);
            assert!((7..=13).contains(&s), "{s}");
            assert!(slice_size(2, 5) >= 1);
        }
    }
}
