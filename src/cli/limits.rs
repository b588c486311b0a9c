//! The range of every duration and count a user can give, and why.
//!
//! dualwrite is a teaching tool: runs last seconds to minutes, on a laptop,
//! against services shared by a class. A value outside these ranges is not a
//! bigger experiment but a broken one — a run of 500 billion years overflows
//! the clock, `1ns` between orders is not a workload, a delivery timeout of
//! 99999 hours reaches librdkafka as a negative number. Every range is
//! checked when the flags are parsed (before anything is started), shown in
//! `--help`, and listed in the README; a test keeps the three in step.

use std::ffi::OsStr;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

/// A duration flag's range, inclusive at both ends.
#[derive(Debug, Clone, Copy)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
    /// Why the range is what it is, for the error message.
    pub why: &'static str,
}

/// A count flag's range, inclusive at both ends.
#[derive(Debug, Clone, Copy)]
pub struct CountRange {
    pub min: u32,
    pub max: u32,
    pub why: &'static str,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// `--duration` (run, compare, `scenarios show`): the main phase.
pub const DURATION: DurationRange = DurationRange {
    min: ms(SECOND),
    max: ms(HOUR),
    why: "a shorter run places almost no orders; the history of a longer one is held in memory",
};

/// `--readers`: the interval between reads.
pub const READERS: DurationRange = DurationRange {
    min: ms(1),
    max: ms(MINUTE),
    why: "the timers tick in milliseconds; reads further apart than a minute show no drift",
};

/// `--writers`: the interval between one writer task's orders.
pub const WRITERS: DurationRange = DurationRange {
    min: ms(1),
    max: ms(MINUTE),
    why: "the timers tick in milliseconds; with orders further apart than a minute nothing happens",
};

/// `--acquire-timeout`: how long a query waits for a pooled connection.
pub const ACQUIRE_TIMEOUT: DurationRange = DurationRange {
    min: ms(10),
    max: ms(MINUTE),
    why: "below 10 ms even a healthy pool times out; a minute outlasts every built-in fault",
};

/// `--publish-timeout`: librdkafka's delivery timeout.
pub const PUBLISH_TIMEOUT: DurationRange = DurationRange {
    min: ms(100),
    max: ms(5 * MINUTE),
    why: "librdkafka needs time to send; 5 minutes is its own default and hides every outage in a short run",
};

/// `--drain-timeout`: how long the drain phase waits.
pub const DRAIN_TIMEOUT: DurationRange = DurationRange {
    min: ms(SECOND),
    max: ms(10 * MINUTE),
    why: "a relay or connector needs a moment to catch up; after 10 minutes it is not going to",
};

/// `--cache-ttl`: cache-aside's expiry.
pub const CACHE_TTL: DurationRange = DurationRange {
    min: ms(1),
    max: ms(24 * HOUR),
    why: "Redis expires in milliseconds; a day is longer than any run, i.e. no expiry",
};

/// `--writer-tasks`.
pub const WRITER_TASKS: CountRange =
    CountRange { min: 1, max: 256, why: "each task holds up to 16 orders in flight; 256 of them saturate a laptop" };

/// `--products`.
pub const PRODUCTS: CountRange =
    CountRange { min: 1, max: 10_000, why: "each product is a row, a cache key and a line in the snapshot" };

/// `--pool-size`.
pub const POOL_SIZE: CountRange =
    CountRange { min: 1, max: 100, why: "PostgreSQL accepts 100 connections by default, for every run on the server" };

/// `--relays`.
pub const RELAYS: CountRange =
    CountRange { min: 1, max: 16, why: "more relays than a handful only contend for the same rows" };

/// At most this many orders may be planned for one run (writer tasks ×
/// duration ÷ interval): every order's legs are kept in the in-memory
/// history, and counted one by one by the reconciler.
pub const MAX_PLANNED_ORDERS: u64 = 1_000_000;

/// At most this many reads may be planned for one run (duration ÷ readers
/// interval), for the same reason.
pub const MAX_PLANNED_READS: u64 = 1_000_000;

/// `1s`, `250ms`, `5m`, `24h`: the largest unit that is exact, as humantime
/// (and so every duration flag) reads it back.
pub fn show(d: Duration) -> String {
    let n = d.as_millis();
    let unit = |size: u64| n.is_multiple_of(u128::from(size)) && n >= u128::from(size);
    if unit(HOUR) {
        format!("{}h", n / u128::from(HOUR))
    } else if unit(MINUTE) {
        format!("{}m", n / u128::from(MINUTE))
    } else if unit(SECOND) {
        format!("{}s", n / u128::from(SECOND))
    } else {
        format!("{n}ms")
    }
}

impl DurationRange {
    /// `from 1s to 1h`
    pub fn describe(&self) -> String {
        format!("from {} to {}", show(self.min), show(self.max))
    }

    /// Parses a humantime duration (`100ms`, `1s`, `2m`) and checks the
    /// range. The error names the value, the range and why.
    pub fn parse(&self, text: &str) -> Result<Duration, String> {
        let trimmed = text.trim();
        let duration = humantime::parse_duration(trimmed).map_err(|e| {
            format!("{text:?} is not a duration ({e}); write it like 100ms, 1s or 2m, {}", self.describe())
        })?;
        if duration < self.min || duration > self.max {
            return Err(format!("{text} is out of range: use {} ({})", self.describe(), self.why));
        }
        Ok(duration)
    }
}

impl CountRange {
    /// `from 1 to 256`
    pub fn describe(&self) -> String {
        format!("from {} to {}", self.min, self.max)
    }

    /// Parses a whole number and checks the range.
    pub fn parse(&self, text: &str) -> Result<u32, String> {
        let out_of_range = || format!("{text} is out of range: use {} ({})", self.describe(), self.why);
        let trimmed = text.trim();
        let n: i128 = trimmed.parse().map_err(|_| {
            if trimmed.parse::<f64>().is_ok() {
                out_of_range()
            } else {
                format!("{text:?} is not a whole number; use {}", self.describe())
            }
        })?;
        if n < i128::from(self.min) || n > i128::from(self.max) {
            return Err(out_of_range());
        }
        Ok(n as u32)
    }
}

/// clap's error for a value a range refused: `invalid value for --flag:
/// message`, without clap's usage lines (see `cli::parse`).
fn refused(arg: Option<&clap::Arg>, message: String) -> clap::Error {
    let flag = arg.and_then(|a| a.get_long()).map(|l| format!("--{l}")).unwrap_or_else(|| "a value".into());
    clap::Error::raw(ErrorKind::ValueValidation, format!("{flag} {message}\n"))
}

fn text(value: &OsStr) -> Result<&str, clap::Error> {
    value.to_str().ok_or_else(|| clap::Error::raw(ErrorKind::InvalidUtf8, "a value is not valid UTF-8\n"))
}

impl TypedValueParser for DurationRange {
    type Value = Duration;

    fn parse_ref(&self, _: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<Duration, clap::Error> {
        self.parse(text(value)?).map_err(|m| refused(arg, m))
    }
}

impl TypedValueParser for CountRange {
    type Value = u32;

    fn parse_ref(&self, _: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<u32, clap::Error> {
        self.parse(text(value)?).map_err(|m| refused(arg, m))
    }
}

/// Every range with its flag, for `--help`'s and the README's tables (and the
/// test that keeps them in step).
pub const DURATIONS: [(&str, DurationRange); 7] = [
    ("--duration", DURATION),
    ("--readers", READERS),
    ("--writers", WRITERS),
    ("--acquire-timeout", ACQUIRE_TIMEOUT),
    ("--publish-timeout", PUBLISH_TIMEOUT),
    ("--drain-timeout", DRAIN_TIMEOUT),
    ("--cache-ttl", CACHE_TTL),
];

/// Every count range with its flag.
pub const COUNTS: [(&str, CountRange); 4] =
    [("--writer-tasks", WRITER_TASKS), ("--products", PRODUCTS), ("--pool-size", POOL_SIZE), ("--relays", RELAYS)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_humantime_form_within_their_range() {
        assert_eq!(READERS.parse("100ms"), Ok(ms(100)));
        assert_eq!(DURATION.parse("2m"), Ok(ms(120_000)));
        assert_eq!(DURATION.parse(" 1h "), Ok(ms(HOUR)));
        assert!(DURATION.parse("banana").unwrap_err().contains("not a duration"));
        for bad in ["0s", "1ns", "999ms", "61m", "99999h", "500000000000y"] {
            let e = DURATION.parse(bad).unwrap_err();
            assert!(e.contains("out of range: use from 1s to 1h"), "{bad}: {e}");
        }
        // humantime refuses numbers that overflow it rather than wrapping.
        assert!(DURATION.parse("99999999999999999999999y").is_err());
    }

    #[test]
    fn counts_parse_within_their_range() {
        assert_eq!(WRITER_TASKS.parse("4"), Ok(4));
        for bad in ["0", "-1", "257", "99999999999999999999999", "1.5"] {
            let e = WRITER_TASKS.parse(bad).unwrap_err();
            assert!(e.contains("out of range: use from 1 to 256"), "{bad}: {e}");
        }
        assert!(WRITER_TASKS.parse("four").unwrap_err().contains("not a whole number"));
    }

    #[test]
    fn ranges_read_as_written() {
        assert_eq!(DURATION.describe(), "from 1s to 1h");
        assert_eq!(PUBLISH_TIMEOUT.describe(), "from 100ms to 5m");
        assert_eq!(CACHE_TTL.describe(), "from 1ms to 24h");
        assert_eq!(show(ms(1500)), "1500ms");
        for (_, range) in DURATIONS {
            assert!(range.min <= range.max);
            // librdkafka and Redis take milliseconds as 32-bit numbers.
            assert!(range.max.as_millis() < i32::MAX as u128);
        }
    }
}
