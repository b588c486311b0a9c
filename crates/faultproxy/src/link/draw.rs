//! The random draws of the toxics, seeded.
//!
//! Toxiproxy draws latency jitter, slicer cuts and toxicity rolls from Go's
//! process-wide generator, which its `-seed` flag does not reach (the flag
//! builds a generator that is never used: `cmd/server/server.go`), so its
//! draws cannot be repeated. Here each direction of each connection has a
//! ChaCha8 stream of its own, keyed by the server's seed, the proxy's name,
//! the connection's number on that proxy and the direction: the same seed
//! and the same sequence of connections and chunks give the same draws,
//! whatever the other proxies and connections do meanwhile.
//!
//! The samplers are written out (rejection sampling on the raw stream)
//! rather than taken from `rand`'s distributions, which do not promise to
//! stay the same across releases: a seed must mean the same draws after a
//! dependency update.

use std::collections::VecDeque;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::wire::Stream;

/// Which connection the draws are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DrawKey {
    pub seed: u64,
    /// [`name_key`] of the proxy's name.
    pub proxy: u64,
    /// The connection's number on its proxy, from 0.
    pub connection: u64,
}

impl DrawKey {
    /// The draws of one direction of this connection.
    pub fn stream(self, stream: Stream) -> Draws {
        Draws { key: self, stream, rng: None }
    }
}

/// A stable 64-bit key for a proxy name (FNV-1a: the same on every
/// platform and release, unlike `std`'s hasher).
pub(crate) fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64's finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random draws of one direction of one connection.
pub(crate) struct Draws {
    key: DrawKey,
    stream: Stream,
    /// Created at the first draw: most connections never draw at all.
    rng: Option<ChaCha8Rng>,
}

impl Draws {
    fn rng(&mut self) -> &mut ChaCha8Rng {
        let DrawKey { seed, proxy, connection } = self.key;
        let direction = match self.stream {
            Stream::Upstream => 1,
            Stream::Downstream => 2,
        };
        self.rng.get_or_insert_with(|| {
            let key = mix(mix(mix(seed ^ proxy).wrapping_add(connection)).wrapping_add(direction));
            ChaCha8Rng::seed_from_u64(key)
        })
    }

    /// A uniform draw from `0..span` (`span > 0`).
    fn below(&mut self, span: u64) -> u64 {
        // Values at or above `limit` would favour the low residues: draw again.
        let limit = u64::MAX - u64::MAX % span;
        loop {
            let x = self.rng().next_u64();
            if x < limit {
                return x % span;
            }
        }
    }

    /// Toxiproxy's toxicity roll, `rand.Float32() < toxicity`: does a toxic
    /// act on this connection? Certain outcomes take no draw.
    pub fn applies(&mut self, toxicity: f32) -> bool {
        if toxicity >= 1.0 {
            return true;
        }
        if toxicity.is_nan() || toxicity <= 0.0 {
            return false;
        }
        // 24 random bits: every f32 in [0, 1) with that many is exact.
        let x = (self.rng().next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        x < toxicity
    }

    /// A latency toxic's offset in ms: uniform in `[-jitter, jitter)` as
    /// Toxiproxy's `rand.Int63n(jitter*2) - jitter`; 0 for `jitter <= 0`.
    pub fn jitter(&mut self, jitter: i64) -> i64 {
        if jitter <= 0 {
            return 0;
        }
        let span = (jitter as u64).saturating_mul(2);
        (self.below(span) as i128 - i128::from(jitter)) as i64
    }

    /// Where Toxiproxy's slicer cuts a chunk of `len` bytes: the lengths of
    /// the pieces, in order. Like `SlicerToxic.chunk`, a piece longer than
    /// `average + variation` is cut near its middle (± `variation`, uniform
    /// in `[-variation, variation)`) and both halves are cut again. Unlike
    /// it, a cut always leaves both halves non-empty, so that an
    /// `average_size` of 0 or a variation above the average gives one-byte
    /// pieces where Toxiproxy recurses without end or slices out of range
    /// (and its server dies).
    pub fn slices(&mut self, len: usize, average: i64, variation: i64) -> VecDeque<usize> {
        let mut pieces = VecDeque::new();
        // Depth-first, left half first: the pieces come out in order. An
        // explicit stack, because a cut next to an end can make the depth
        // as large as the chunk.
        let mut pending = vec![(0usize, len)];
        while let Some((start, end)) = pending.pop() {
            let size = end - start;
            if size <= 1 || (size as i128) - i128::from(average) <= i128::from(variation) {
                if size > 0 {
                    pieces.push_back(size);
                }
                continue;
            }
            let mut mid = (start + size / 2) as i128;
            if variation > 0 {
                let span = (variation as u64).saturating_mul(2);
                mid += self.below(span) as i128 - i128::from(variation);
            }
            let mid = mid.clamp(start as i128 + 1, end as i128 - 1) as usize;
            pending.push((mid, end));
            pending.push((start, mid));
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(seed: u64) -> Draws {
        DrawKey { seed, proxy: name_key("p"), connection: 0 }.stream(Stream::Downstream)
    }

    #[test]
    fn the_same_key_gives_the_same_draws() {
        let take = |mut d: Draws| (0..50).map(|_| d.jitter(100)).collect::<Vec<_>>();
        assert_eq!(take(draws(7)), take(draws(7)));
        assert_ne!(take(draws(7)), take(draws(8)));
        let other_connection = DrawKey { seed: 7, proxy: name_key("p"), connection: 1 }.stream(Stream::Downstream);
        assert_ne!(take(draws(7)), take(other_connection));
        let other_direction = DrawKey { seed: 7, proxy: name_key("p"), connection: 0 }.stream(Stream::Upstream);
        assert_ne!(take(draws(7)), take(other_direction));
    }

    #[test]
    fn jitter_is_toxiproxys_half_open_range() {
        let mut d = draws(1);
        let offsets: Vec<i64> = (0..2000).map(|_| d.jitter(20)).collect();
        assert!(offsets.iter().all(|o| (-20..20).contains(o)), "{offsets:?}");
        assert!(offsets.contains(&-20) && offsets.contains(&19));
        assert_eq!(d.jitter(0), 0);
        assert_eq!(d.jitter(-5), 0, "a negative jitter is ignored, as in Toxiproxy");
    }

    #[test]
    fn slices_bisect_within_the_variation_and_cover_the_chunk() {
        let mut d = draws(2);
        for len in [1, 99, 100, 1000, 32 * 1024] {
            let pieces = d.slices(len, 100, 20);
            assert_eq!(pieces.iter().sum::<usize>(), len);
            // A piece is cut until it is no longer than average + variation;
            // halving a piece above that leaves at least (121 - 20) / 2 - 20.
            assert!(pieces.iter().all(|&p| p <= 120), "{len}: {pieces:?}");
            if len >= 1000 {
                assert!(pieces.iter().all(|&p| p >= 30), "{len}: {pieces:?}");
            }
        }
        // No variation: exact halving, as Toxiproxy's `start + (end-start)/2`.
        assert_eq!(Vec::from(d.slices(400, 100, 0)), [100, 100, 100, 100]);
        assert_eq!(Vec::from(d.slices(300, 100, 0)), [75, 75, 75, 75]);
        assert_eq!(Vec::from(d.slices(50, 100, 0)), [50]);
    }

    #[test]
    fn degenerate_slicers_give_one_byte_pieces_instead_of_crashing() {
        let mut d = draws(3);
        assert_eq!(Vec::from(d.slices(5, 0, 0)), [1, 1, 1, 1, 1]);
        let pieces = d.slices(1000, 1, 500);
        assert_eq!(pieces.iter().sum::<usize>(), 1000);
        assert!(pieces.iter().all(|&p| p >= 1));
        assert!(d.slices(0, 10, 2).is_empty());
    }

    #[test]
    fn toxicity_rolls_follow_the_probability() {
        let mut d = draws(4);
        assert!(d.applies(1.0) && !d.applies(0.0) && !d.applies(-1.0) && !d.applies(f32::NAN));
        let hits = (0..10_000).filter(|_| d.applies(0.25)).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
    }
}
