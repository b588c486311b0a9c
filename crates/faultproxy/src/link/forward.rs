//! One chunk through the live toxics, step by step.
//!
//! Before each piece of the chunk goes out, the pump looks at the chain
//! again, so that a toxic added or removed while the chunk waits changes
//! what happens to the rest of it. In order:
//!
//! 1. `timeout`: the chunk falls into the black hole;
//! 2. `reset_peer`: the chunk is dropped and the connection closed after the
//!    toxic's delay;
//! 3. `latency`: the chunk waits until `arrival + Σ(latency ± jitter)`;
//! 4. the piece: as large as the strictest of `limit_data` (bytes left),
//!    `slicer` (the next cut) and `bandwidth` (100 ms worth) allows;
//! 5. `bandwidth`: the piece waits for its slot on the link;
//! 6. the write, then the bookkeeping (`limit_data` counts, `bandwidth`
//!    books, `slicer` pauses `delay` µs after each of its pieces).

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::pump::{Pump, Wake};
use super::{after_ms, Chunk};
use crate::wire::ToxicKind;

/// A toxic's identity in one revision: an update starts it afresh.
type Key = (u64, u64);

/// What the toxics drew for one chunk, kept while it is on its way.
#[derive(Default)]
struct ChunkPlan {
    /// Each latency toxic's delay in ms, drawn once per chunk however often
    /// the chain changes while the chunk waits.
    delays: Vec<(Key, i64)>,
    /// Each slicer's remaining pieces of the chunk.
    slices: Vec<(Key, VecDeque<usize>)>,
    /// The bandwidth slot booked for the piece about to be written, kept
    /// across chain changes so that an unrelated change does not restart it.
    booked: Option<Instant>,
}

impl Pump {
    /// Passes one chunk through the toxics, in pieces if a toxic says so.
    /// `Break` means the connection must end.
    pub(super) async fn forward<W: AsyncWrite + Unpin>(&mut self, chunk: Chunk, dest: &mut W) -> ControlFlow<()> {
        let mut data = chunk.data;
        let mut plan = ChunkPlan::default();
        while !data.is_empty() {
            self.refresh();
            let now = Instant::now();
            if self.cleanup_due {
                return ControlFlow::Break(());
            }
            if self.held() {
                self.note_drop(now);
                return ControlFlow::Continue(());
            }
            // Like Toxiproxy, the countdown is not interrupted once it began.
            if let Some(after) = self.reset_peer() {
                tokio::time::sleep(after).await;
                return ControlFlow::Break(());
            }

            // Latency counts from the chunk's arrival, not from when the
            // previous one left, so delays do not add up along a busy stream.
            let due = after_ms(chunk.at, self.latency_ms(&mut plan));
            if due.is_none_or(|due| due > now) {
                // Whether the delay ran out or the chain changed, look again:
                // a removed latency toxic releases the chunk at once.
                self.wait(due).await;
                continue;
            }

            let Some(size) = self.piece_size(data.len(), &mut plan) else {
                // `limit_data` has nothing left to give.
                return ControlFlow::Break(());
            };
            if let Some(slot) = self.bandwidth_slot(size, now, &mut plan) {
                if slot > now {
                    if let Wake::Changed = self.wait(Some(slot)).await {
                        continue;
                    }
                }
            }

            let piece = data.split_to(size);
            if dest.write_all(&piece).await.is_err() {
                return ControlFlow::Break(());
            }
            let (limit_reached, pause) = self.account(piece.len(), &mut plan);
            if limit_reached {
                return ControlFlow::Break(());
            }
            if pause > Duration::ZERO {
                self.slicer_pause(Instant::now() + pause).await;
            }
        }
        ControlFlow::Continue(())
    }

    /// The chunk's total latency in ms: every active latency toxic's
    /// `latency + jitter`, summed (so a negative latency shortens the others,
    /// as in Toxiproxy's chain, where each moves the chunk's timestamp).
    fn latency_ms(&mut self, plan: &mut ChunkPlan) -> i64 {
        let toxics: Vec<(Key, i64, i64)> = self
            .active()
            .filter_map(|a| match a.kind {
                ToxicKind::Latency { latency, jitter } => Some(((a.id, a.revision), latency, jitter)),
                _ => None,
            })
            .collect();
        let mut total = 0i64;
        for (key, latency, jitter) in toxics {
            let delay = match plan.delays.iter().find(|(k, _)| *k == key) {
                Some((_, d)) => *d,
                None => {
                    let d = latency.saturating_add(self.draws.jitter(jitter));
                    plan.delays.push((key, d));
                    d
                }
            };
            total = total.saturating_add(delay);
        }
        total
    }

    /// The size of the next piece, or `None` if `limit_data` allows no more.
    fn piece_size(&mut self, len: usize, plan: &mut ChunkPlan) -> Option<usize> {
        let mut size = len;
        let mut slicers = Vec::new();
        for a in self.active() {
            match a.kind {
                ToxicKind::LimitData { bytes } => {
                    let left = bytes.saturating_sub(a.sent.min(i64::MAX as u64) as i64);
                    if left <= 0 {
                        return None;
                    }
                    size = size.min(usize::try_from(left).unwrap_or(usize::MAX));
                }
                ToxicKind::Slicer { average_size, size_variation, .. } => {
                    slicers.push(((a.id, a.revision), average_size, size_variation));
                }
                // Toxiproxy sends at most 100 ms worth at a time.
                ToxicKind::Bandwidth { rate } if rate > 0 => {
                    size = size.min(usize::try_from(rate.saturating_mul(100)).unwrap_or(usize::MAX));
                }
                _ => {}
            }
        }
        for (key, average, variation) in slicers {
            // A slicer cuts what is left of the chunk when it first sees it.
            let index = match plan.slices.iter().position(|(k, pieces)| *k == key && !pieces.is_empty()) {
                Some(i) => i,
                None => {
                    plan.slices.retain(|(k, _)| *k != key);
                    plan.slices.push((key, self.draws.slices(len, average, variation)));
                    plan.slices.len() - 1
                }
            };
            size = size.min(plan.slices[index].1[0]);
        }
        Some(size)
    }

    /// When a piece of `size` bytes may go out under the active bandwidth
    /// toxics, booked in `plan`; `None` without any.
    fn bandwidth_slot(&self, size: usize, now: Instant, plan: &mut ChunkPlan) -> Option<Instant> {
        let mut free_at: Option<Instant> = None;
        for a in self.active() {
            // A rate of 0 or less means unlimited, as in Toxiproxy.
            if let ToxicKind::Bandwidth { rate } = a.kind {
                if rate > 0 {
                    // A piece of n bytes occupies the link n / rate ms.
                    let nanos = (size as u64).saturating_mul(1_000_000) / rate as u64;
                    let at = a.free_at.max(now) + Duration::from_nanos(nanos);
                    free_at = Some(free_at.map_or(at, |t| t.max(at)));
                }
            }
        }
        match free_at {
            Some(at) => Some(*plan.booked.get_or_insert(at)),
            None => {
                plan.booked = None;
                None
            }
        }
    }

    /// Books a written piece of `len` bytes against the toxics. Returns
    /// whether `limit_data` is now exhausted and how long the slicers pause.
    fn account(&mut self, len: usize, plan: &mut ChunkPlan) -> (bool, Duration) {
        let sent_at = plan.booked.take();
        let mut limit_reached = false;
        let mut pause = Duration::ZERO;
        for a in self.applied.iter_mut().filter(|a| a.active) {
            match a.kind {
                ToxicKind::LimitData { bytes } => {
                    a.sent += len as u64;
                    limit_reached |= a.sent.min(i64::MAX as u64) as i64 >= bytes;
                }
                ToxicKind::Bandwidth { .. } => {
                    if let Some(t) = sent_at {
                        a.free_at = t;
                    }
                }
                ToxicKind::Slicer { delay, .. } => {
                    let key = (a.id, a.revision);
                    if let Some((_, pieces)) = plan.slices.iter_mut().find(|(k, _)| *k == key) {
                        if let Some(front) = pieces.front_mut() {
                            *front = front.saturating_sub(len);
                            if *front == 0 {
                                pieces.pop_front();
                                // Toxiproxy waits after every piece, the last too.
                                pause += Duration::from_micros(delay.max(0) as u64);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        (limit_reached, pause)
    }

    /// A slicer's pause between pieces; ends early if no slicer is left.
    async fn slicer_pause(&mut self, until: Instant) {
        loop {
            self.refresh();
            let slicing = self.active().any(|a| matches!(a.kind, ToxicKind::Slicer { .. }));
            if !slicing || Instant::now() >= until {
                return;
            }
            self.wait(Some(until)).await;
        }
    }
}
