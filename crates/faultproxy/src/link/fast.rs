//! Pass-through: a direction with no toxic, read and written in place.
//!
//! This is what the proxy costs on a healthy link, so it does only what a
//! plain proxy does — one read into a buffer owned by the connection, one
//! write of it — and, around each read, one look at a wait for a change of
//! the chain, registered once, so that a toxic added now meets the very next
//! bytes. No chunk is copied, queued or handed to another task.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::AtomicBool;
use std::task::Poll;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::pump::{Change, Pump};
use super::{until_set, Chunk, Event};

impl Pump {
    /// Forwards until a toxic appears on the chain or the connection ends.
    ///
    /// Returns `None` when the connection is over (the source's EOF or an
    /// error, a write error, the other direction ending it), and what
    /// changed otherwise.
    pub(super) async fn pass_through<R, W>(
        &mut self,
        source: &mut R,
        dest: &mut W,
        buf: &mut [u8],
        peer_ended: &AtomicBool,
    ) -> Option<Change>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        // One wait for a change of the chain serves every read until the
        // change comes (creating one per read would register and unregister
        // a waiter each time).
        let chain_closed = self.chain_closed;
        let changed = self.chain.changed();
        let mut changed = pin!(changed);
        loop {
            let read = tokio::select! {
                // Biased: a change already published wins over bytes that
                // are ready, so that the toxic acts on them.
                biased;
                changed = &mut changed, if !chain_closed => {
                    return Some(changed.map_or_else(|_| Change::Closed, |()| Change::Toxics(None)));
                }
                () = until_set(peer_ended) => return None,
                read = source.read(buf) => read,
            };
            // A read error ends the stream as an EOF does (Toxiproxy closes
            // the link's input either way).
            let n = read.unwrap_or_default();
            // The bytes (or the EOF) arrived after a change that the select
            // did not see yet: they go to the toxics.
            if !chain_closed && is_ready(changed.as_mut()).await {
                let event = if n == 0 {
                    Event::Eof
                } else {
                    Event::Data(Chunk { data: Bytes::copy_from_slice(&buf[..n]), at: Instant::now() })
                };
                return Some(Change::Toxics(Some(event)));
            }
            // With no toxic, EOF and errors end the connection at once.
            if n == 0 || dest.write_all(&buf[..n]).await.is_err() {
                return None;
            }
        }
    }
}

/// Polls `future` once, with this task's waker: is it ready now?
async fn is_ready<F: Future>(mut future: Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_ready())).await
}
