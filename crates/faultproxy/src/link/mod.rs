//! One proxied connection: a client socket and an upstream socket joined by
//! two pumps, one per direction, that apply the proxy's *live* toxics.
//!
//! `upstream` carries client → server bytes, `downstream` server → client.
//! A pump owns no copy of the toxics: it watches its direction's chain (a
//! `watch` channel, see `toxic_set`), so a toxic added mid-run hits pooled
//! connections opened long before it, and its removal ends the effect at
//! once. While its chain is empty a pump reads and writes in place, on the
//! connection's own task, with one buffer ([`pump`] explains the two modes).
//!
//! # What each toxic does (Toxiproxy 2.12's semantics)
//!
//! | toxic | on a chunk |
//! |---|---|
//! | `latency` | forwarded `latency ± jitter` ms after it arrived; order kept |
//! | `timeout` | dropped; with `timeout > 0`, the connection is closed once no chunk has arrived for that long (every chunk restarts the count); EOF, or the toxic's removal, closes it (Toxiproxy's `Cleanup`) |
//! | `reset_peer` | dropped (EOF too); `timeout` ms later the connection is closed |
//! | `bandwidth` | paced to `rate` KB/s, in pieces of at most 100 ms worth |
//! | `slow_close` | the source's EOF is passed on `delay` ms late |
//! | `slicer` | cut in halves recursively into `average_size ± size_variation` byte pieces, `delay` µs after each |
//! | `limit_data` | the connection is closed once `bytes` bytes have passed since the toxic was added |
//! | `noop` | passed on |
//!
//! Several toxics on one direction compose in chain order: a chunk is dropped
//! while any `timeout` acts, else waits out the sum of the latencies, then is
//! cut to the smallest piece any of the others allows.
//!
//! # How a connection ends
//!
//! As in Toxiproxy, whatever ends one direction ends the connection: an EOF
//! from either side (a client's `shutdown(SHUT_WR)` too), a read or write
//! error, or a toxic. The ending direction closes its destination; the other
//! direction stops reading, forwards what it already holds through its own
//! toxics, and closes its destination too. A half-closed connection is
//! therefore not kept open for a late reply.
//!
//! Closing sends a FIN, except on a connection that was opened while a
//! `reset_peer` toxic existed on either of its streams: Toxiproxy sets
//! `SO_LINGER 0` on both sockets when a link starts with `reset_peer` in its
//! chain (`link.go`, `ToxicLink.Start`), and only then, so every close of
//! such a connection is a TCP RST ("connection reset by peer"), and a
//! `reset_peer` added to a connection that is already open closes it with a
//! plain FIN. The built-in server does the same, so that a scenario's lesson
//! does not depend on which proxy runs it.
//!
//! # Why `timeout` drops rather than holds
//!
//! That is what Toxiproxy 2.x does (a black hole). A request swallowed by a
//! black hole never reaches the server, and the connection it was sent on
//! does not survive the fault: it is closed when the toxic goes, so no client
//! can read a late reply as the answer to a later request.

mod draw;
mod fast;
mod forward;
mod pump;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

pub(crate) use draw::{name_key, DrawKey};

use crate::toxic_set::{has_reset_peer, Chain};
use crate::wire::Stream;
use pump::Pump;

/// A piece of a byte stream as it was read, with its arrival time.
struct Chunk {
    data: Bytes,
    at: Instant,
}

/// What a pump's reader hands to it while toxics act.
enum Event {
    Data(Chunk),
    /// The source closed (EOF, a read error, or the other direction ended
    /// the connection): Toxiproxy closes the link's input in all three cases.
    Eof,
}

/// Runs one connection until it ends. Dropping the future — the proxy going
/// down — closes both sockets.
pub(crate) async fn run(
    mut client: TcpStream,
    mut upstream: TcpStream,
    upstream_toxics: watch::Receiver<Chain>,
    downstream_toxics: watch::Receiver<Chain>,
    key: DrawKey,
) {
    // Small requests must not wait for Nagle: latency is measured in ms here.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    // Toxiproxy's `ToxicLink.Start`: a `reset_peer` in either chain when the
    // connection starts sets SO_LINGER 0 on both sockets for good, which
    // turns every later close() into an RST.
    let abortive = has_reset_peer(&upstream_toxics.borrow()) || has_reset_peer(&downstream_toxics.borrow());
    if abortive {
        for stream in [&client, &upstream] {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
    }

    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let mut up = Pump::new(upstream_toxics, key.stream(Stream::Upstream), abortive);
    let mut down = Pump::new(downstream_toxics, key.stream(Stream::Downstream), abortive);
    // Set when a direction has ended: the other one then stops reading (its
    // source is the socket the first one just closed).
    let (up_ended, down_ended) = (AtomicBool::new(false), AtomicBool::new(false));
    let mut up_run = pin!(up.run(&mut client_read, &mut upstream_write, &down_ended));
    let mut down_run = pin!(down.run(&mut upstream_read, &mut client_write, &up_ended));

    // Both pumps run on this task (a chunk never changes task on its way
    // through). When one ends, the other is polled again at once, so that it
    // sees the flag without a waker of its own.
    let (mut up_done, mut down_done) = (false, false);
    std::future::poll_fn(|cx| loop {
        let mut ended_now = false;
        if !up_done && up_run.as_mut().poll(cx).is_ready() {
            (up_done, ended_now) = (true, true);
            up_ended.store(true, Ordering::Relaxed);
        }
        if !down_done && down_run.as_mut().poll(cx).is_ready() {
            (down_done, ended_now) = (true, true);
            down_ended.store(true, Ordering::Relaxed);
        }
        if up_done && down_done {
            return Poll::Ready(());
        }
        if !ended_now {
            return Poll::Pending;
        }
    })
    .await;
    // Both sockets close here: a FIN, or an RST if `abortive`.
}

/// A future that is ready once `flag` is set. It registers no waker: the
/// connection's driver polls again whenever it sets one.
async fn until_set(flag: &AtomicBool) {
    std::future::poll_fn(|_| if flag.load(Ordering::Relaxed) { Poll::Ready(()) } else { Poll::Pending }).await
}

/// Sleeps until `until`, or forever if there is no such moment.
async fn sleep_until_or_forever(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `at + ms` milliseconds; `None` (never) when that is beyond any clock.
fn after_ms(at: Instant, ms: i64) -> Option<Instant> {
    at.checked_add(Duration::from_millis(ms.max(0) as u64))
}

#[cfg(test)]
mod tests;
