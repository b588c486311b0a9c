//! Pass-through: a direction with no toxic, read and written in place.
//!
//! This is what the proxy costs on a healthy link, so it does only what a
//! plain proxy does — one read into a buffer owned by the connection, one
//! write of it — and, around each read, one look at whether the chain has
//! changed (an atomic load) so that a toxic added now meets the very next
//! bytes. No chunk is copied, queued or handed to another task.

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::pump::Pump;
use super::{until_set, Chunk, Event};

impl Pump {
    /// Forwards until a toxic appears on the chain or the connection ends.
    ///
    /// Returns `None` when the connection is over (the source's EOF or an
    /// error, a write error, the other direction ending it), and
    /// `Some(first)` when a toxic appeared: `first` is what was read after it
    /// did, which must meet it (a chunk, or the EOF).
    pub(super) async fn pass_through<R, W>(
        &mut self,
        source: &mut R,
        dest: &mut W,
        buf: &mut [u8],
        peer_ended: &AtomicBool,
    ) -> Option<Option<Event>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            let read = tokio::select! {
                // Biased: a change already published wins over bytes that
                // are ready, so that the toxic acts on them.
                biased;
                changed = self.chain.changed(), if !self.chain_closed => {
                    if changed.is_err() {
                        self.chain_closed = true;
                    }
                    return Some(None);
                }
                () = until_set(peer_ended) => return None,
                read = source.read(buf) => read,
            };
            // A read error ends the stream as an EOF does (Toxiproxy closes
            // the link's input either way).
            let n = read.unwrap_or_default();
            // The bytes (or the EOF) arrived after a change that the select
            // did not see yet: they go to the toxics.
            if self.chain.has_changed().unwrap_or(false) {
                let event = if n == 0 {
                    Event::Eof
                } else {
                    Event::Data(Chunk { data: Bytes::copy_from_slice(&buf[..n]), at: Instant::now() })
                };
                return Some(Some(event));
            }
            // With no toxic, EOF and errors end the connection at once.
            if n == 0 || dest.write_all(&buf[..n]).await.is_err() {
                return None;
            }
        }
    }
}
