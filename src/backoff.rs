//! How long a background component waits before trying again.
//!
//! The outbox relay and the CDC connector both retry for ever — skipping a
//! row or a transaction would lose its event — so both need the same
//! answer to "how long until the next attempt": short at first, so that a
//! blip costs little lag, then doubling, so that a long outage is not
//! hammered. One policy, used by both.

use std::time::Duration;

/// Exponential backoff: `min` after the first failure, doubling with each
/// further one, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The relay's and the connector's policy: 100 ms, doubling, at most 2 s.
    pub const BACKGROUND: Backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(2) };

    /// The wait after `failures` consecutive failures (none after zero).
    pub fn after(self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        // 2^(failures-1), capped well before the multiplication can overflow.
        let factor = 1u32 << (failures - 1).min(16);
        self.min.saturating_mul(factor).min(self.max)
    }
}

/// A run of consecutive failures and the wait each one earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    policy: Backoff,
    failures: u32,
}

impl Retry {
    pub fn new(policy: Backoff) -> Retry {
        Retry { policy, failures: 0 }
    }

    /// Counts a failure and returns how long to wait before the next try.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.after(self.failures)
    }

    /// An attempt succeeded: the next failure waits `min` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_min_up_to_max() {
        let waits: Vec<u64> = (0..=7).map(|n| Backoff::BACKGROUND.after(n).as_millis() as u64).collect();
        assert_eq!(waits, [0, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(Backoff::BACKGROUND.after(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn a_success_starts_the_series_again() {
        let mut retry = Retry::new(Backoff::BACKGROUND);
        assert_eq!(retry.failed(), Duration::from_millis(100));
        assert_eq!(retry.failed(), Duration::from_millis(200));
        assert_eq!(retry.failures(), 2);
        retry.succeeded();
        assert_eq!(retry.failed(), Duration::from_millis(100));
    }
}
