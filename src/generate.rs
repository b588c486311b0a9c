//! The seeded generator: what each writer orders and what each reader reads.
//!
//! Every draw is a pure function of the seed and the draw's coordinates (which
//! writer, which order in its sequence), never of what happened before. So the
//! same seed gives the same orders to every strategy, even when one strategy's
//! writer crashes and skips a stretch of its sequence while another's does not.
//!
//! Each coordinate gets its own ChaCha8 position: a *stream* per kind of draw
//! (writer *w* uses stream `WRITER_STREAM + w`) and a block of the stream per
//! index. The fault schedule draws from a stream of its own, so changing the
//! workload never moves the faults.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use crate::history::Order;

/// ChaCha streams. Stream 1 belongs to the fault schedule (see `scenario`).
const WRITER_STREAM: u64 = 1_000;
const READER_STREAM: u64 = 100;
const CACHE_FILL_STREAM: u64 = 200;

/// 32-bit words reserved per draw: more than any one draw uses.
const WORDS_PER_DRAW: u128 = 64;

/// A generator positioned at draw `index` of `stream`.
fn rng_at(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng.set_word_pos(index as u128 * WORDS_PER_DRAW);
    rng
}

/// The `seq`-th order of writer `writer`: a product, an amount of 1 to 5
/// units, and a unique order id.
pub fn order(seed: u64, writer: u32, seq: u64, products: u32) -> Order {
    let mut rng = rng_at(seed, WRITER_STREAM + writer as u64, seq);
    let product_id = rng.random_range(1..=products as i32);
    let amount = rng.random_range(1..=5);
    let order_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
    Order { order_id, product_id, delta: -amount, writer, seq }
}

/// The product the `k`-th read looks at.
pub fn read_product(seed: u64, k: u64, products: u32) -> i32 {
    rng_at(seed, READER_STREAM, k).random_range(1..=products as i32)
}

/// cache-aside: the pause before the `k`-th cache fill, uniform in
/// `[low, high]` (the scenario's `cache_fill_delay`).
pub fn cache_fill_delay(seed: u64, k: u64, low: std::time::Duration, high: std::time::Duration) -> std::time::Duration {
    if high <= low {
        return low;
    }
    let ms = rng_at(seed, CACHE_FILL_STREAM, k).random_range(low.as_millis() as u64..=high.as_millis() as u64);
    std::time::Duration::from_millis(ms)
}

/// A short random id for a run's namespace (schema, topic, key prefix). Not
/// seeded: two runs with the same seed must not share a namespace.
pub fn run_id() -> String {
    let id = Uuid::new_v4().simple().to_string();
    id[..8].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_coordinates_give_the_same_order() {
        assert_eq!(order(7, 2, 41, 6), order(7, 2, 41, 6));
        // Drawing other orders first changes nothing.
        let _ = order(7, 2, 40, 6);
        assert_eq!(order(7, 2, 41, 6), order(7, 2, 41, 6));
    }

    #[test]
    fn orders_differ_across_writers_seqs_and_seeds() {
        let a = order(7, 0, 0, 6);
        assert_ne!(a.order_id, order(7, 1, 0, 6).order_id);
        assert_ne!(a.order_id, order(7, 0, 1, 6).order_id);
        assert_ne!(a.order_id, order(8, 0, 0, 6).order_id);
    }

    #[test]
    fn draws_stay_in_range() {
        for seq in 0..500 {
            let o = order(3, 1, seq, 6);
            assert!((1..=6).contains(&o.product_id));
            assert!((-5..=-1).contains(&o.delta));
            assert!((1..=6).contains(&read_product(3, seq, 6)));
        }
    }

    #[test]
    fn order_ids_are_unique_over_a_long_run() {
        let mut ids = std::collections::HashSet::new();
        for w in 0..8 {
            for seq in 0..2_000 {
                assert!(ids.insert(order(1, w, seq, 6).order_id));
            }
        }
    }
}
