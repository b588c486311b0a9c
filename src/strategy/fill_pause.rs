//! The scenario's seeded pause between a cache miss's database read and its
//! fill (`cache_fill_delay`), shared by the strategies that fill a cache:
//! it widens the window in which a newer version can commit before the fill.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::generate;

use super::Env;

/// The pauses of one app: the n-th fill waits the n-th seeded draw.
pub struct FillPause {
    seed: u64,
    /// `None` when the scenario asks for no pause.
    range: Option<(Duration, Duration)>,
    /// Fills so far: the index of the next seeded pause.
    fills: AtomicU64,
}

impl FillPause {
    pub fn of(env: &Env) -> FillPause {
        FillPause { seed: env.seed, range: env.knobs.cache_fill_delay, fills: AtomicU64::new(0) }
    }

    /// Waits this fill's pause, if the scenario sets one.
    pub async fn wait(&self) {
        if let Some((low, high)) = self.range {
            let k = self.fills.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(generate::cache_fill_delay(self.seed, k, low, high)).await;
        }
    }
}
