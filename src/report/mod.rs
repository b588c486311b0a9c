//! The report: what a run (or a comparison) found, as text laid out for the
//! terminal ([`text`]), as JSON in a stable schema (`--json FILE`, documented
//! in the README) and as a picture (`--html FILE`, [`html`]).
//!
//! Every figure here comes from [`crate::reconcile::Findings`], which counts
//! from what the stores hold. Anomalies that cannot occur for a strategy
//! (stale cache for one without a cache) are `null` in JSON and "–" in the
//! table, never 0.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use serde::Serialize;

use crate::faults::Applied;
use crate::names::Expectation;
use crate::reconcile::{Anomaly, ArrivalOrder, CacheReads, Figure, Redeliveries, Verdict};
use crate::runner::RunResult;
use crate::scenario::schedule::Schedule;
use crate::snapshot::{Backlog, DrainReport};

pub mod html;
pub mod story;
pub mod text;
pub mod timeline;

pub use story::Story;
pub use timeline::Timeline;

/// The whole report: one entry in `runs` per strategy.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub scenario: String,
    pub duration_ms: u64,
    /// Where the scenario came from: `built-in` or a file path.
    pub scenario_source: String,
    /// A command that runs the same run again: every flag given (passwords
    /// as `***`), the scenario by name or absolute path, the seed.
    pub reproduce: String,
    /// The fault schedule every strategy ran under.
    pub schedule: Schedule,
    /// The services, one line each.
    pub services: Vec<String>,
    pub runs: Vec<RunReport>,
}

/// One strategy's result.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub strategy: String,
    pub verdict: Verdict,
    pub expected: Expectation,
    /// Whether the verdict is what the scenario expects.
    pub as_expected: bool,
    /// Why the verdict is what it is.
    pub reasons: Vec<String>,
    pub orders: crate::reconcile::Orders,
    /// Per anomaly: a count, or `null` where it cannot occur or is not
    /// known (then it is in `unknown`).
    pub anomalies: BTreeMap<&'static str, Option<u64>>,
    /// Anomalies whose figure is not known because evidence is missing:
    /// why, and how many were seen all the same. Empty when all are known.
    pub unknown: BTreeMap<&'static str, UnknownFigure>,
    /// Per anomaly: up to five examples (order ids, or product facts).
    pub examples: BTreeMap<&'static str, Vec<String>>,
    pub latency_ms: LatencyMs,
    pub pool: PoolReport,
    /// cache-aside's reads during the run; `null` for strategies without a cache.
    pub cache: Option<CacheReads>,
    /// Duplicates on the topic, how many the idempotent consumer discarded,
    /// and the units a consumer applying every delivery would have shipped
    /// again; `null` when nothing is published or the topic was not read whole.
    pub redeliveries: Option<Redeliveries>,
    /// Deliveries older than a version already delivered for their product,
    /// and how many products a consumer applying events in arrival order
    /// (last write wins) would end wrong about; `null` without a downstream
    /// consumer, or when its drift is not known.
    pub arrival_order: Option<ArrivalOrder>,
    /// What a relay or connector left unpublished; `null` when there is none.
    pub backlog_detail: Option<Backlog>,
    /// two-phase: the orders in doubt, the orders blocked behind their
    /// locks, and the story of the longest lock; absent for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_doubt: Option<crate::reconcile::in_doubt::InDoubtFigure>,
    pub drain: DrainReport,
    /// The faults as they were applied, on the run's clock.
    pub faults: Vec<Applied>,
    /// Stores that did not answer dualwrite's direct check for a while,
    /// though no fault was injected on them (the run went on: each came back).
    pub outages: Vec<crate::runner::watch::Outage>,
    /// The story of one example per anomaly.
    pub stories: Vec<Story>,
    /// Every order and every product on the run's clock, for the picture.
    pub timeline: Timeline,
    #[serde(rename = "where")]
    pub location: Where,
}

/// A figure that could not be counted (printed as `?`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UnknownFigure {
    /// What evidence is missing.
    pub reason: String,
    /// How many were seen nonetheless: the figure is at least this.
    pub at_least: u64,
}

/// Latency percentiles in milliseconds; `null` without samples.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyMs {
    /// A reader's wait for the strategy's read path (cache or database).
    pub read_p50: Option<f64>,
    pub read_p99: Option<f64>,
    pub write_p50: Option<f64>,
    pub write_p99: Option<f64>,
    pub event_lag_p50: Option<f64>,
    pub event_lag_p99: Option<f64>,
}

/// The unrelated pool probe's figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PoolReport {
    pub acquire_timeouts: u64,
    pub unrelated_p50_ms: Option<f64>,
    pub unrelated_p99_ms: Option<f64>,
    pub probes: u64,
}

/// Where the run's data is (kept with `--keep`).
#[derive(Debug, Clone, Serialize)]
pub struct Where {
    pub database_url: String,
    /// The database the run's schema lives in (a CDC run has its own).
    pub database: String,
    pub schema: String,
    pub brokers: String,
    pub topic: String,
    pub redis_prefix: String,
    /// Whether the namespace was left in place.
    pub kept: bool,
}

impl Report {
    /// Writes the report as pretty JSON.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    /// True when every verdict is what the scenario expects.
    pub fn all_as_expected(&self) -> bool {
        self.runs.iter().all(|r| r.as_expected)
    }
}

/// Whether `verdict` satisfies `expected`. An unknown verdict satisfies only
/// "any": dualwrite could not check, so it cannot claim the expectation held.
pub fn satisfies(verdict: Verdict, expected: Expectation) -> bool {
    match expected {
        Expectation::Any => true,
        Expectation::Consistent => verdict == Verdict::Consistent,
        Expectation::Inconsistent => verdict == Verdict::Inconsistent,
    }
}

/// Where a run's data lives, for the report.
pub struct Location<'a> {
    pub database_url: &'a str,
    /// The database --database-url names.
    pub database: &'a str,
    pub brokers: &'a str,
    pub kept: bool,
}

impl RunReport {
    /// Builds a strategy's report from its run.
    pub fn new(result: &RunResult, schedule: &Schedule, location: Location<'_>) -> RunReport {
        let f = &result.findings;
        let anomalies = Anomaly::ALL.iter().map(|a| (a.key(), f.count(*a))).collect();
        let unknown = Anomaly::ALL
            .iter()
            .filter_map(|a| match f.figure(*a) {
                Figure::Unknown { at_least, reason } => Some((a.key(), UnknownFigure { reason, at_least })),
                Figure::NotApplicable | Figure::Counted(_) => None,
            })
            .collect();
        let examples = f
            .anomalies
            .iter()
            .filter(|(_, t)| !t.examples.is_empty())
            .map(|(a, t)| {
                let list = t
                    .examples
                    .iter()
                    .map(|e| match e.order_id {
                        Some(id) => id.to_string(),
                        None if *a == Anomaly::Backlog => e.detail.clone(),
                        None => format!("product {}: {}", e.product_id, e.detail),
                    })
                    .collect();
                (a.key(), list)
            })
            .collect();
        RunReport {
            strategy: result.strategy.name().to_string(),
            verdict: f.verdict,
            expected: result.expected,
            as_expected: satisfies(f.verdict, result.expected),
            reasons: f.reasons.clone(),
            orders: f.orders,
            anomalies,
            unknown,
            examples,
            latency_ms: LatencyMs {
                read_p50: f.latency.read_p50,
                read_p99: f.latency.read_p99,
                write_p50: f.latency.write_p50,
                write_p99: f.latency.write_p99,
                event_lag_p50: f.latency.event_lag_p50,
                event_lag_p99: f.latency.event_lag_p99,
            },
            pool: PoolReport {
                acquire_timeouts: f.pool.acquire_timeouts,
                unrelated_p50_ms: f.pool.unrelated_p50_ms,
                unrelated_p99_ms: f.pool.unrelated_p99_ms,
                probes: f.pool.probes,
            },
            cache: f.cache_reads,
            redeliveries: f.redeliveries,
            arrival_order: f.arrival_order.clone(),
            backlog_detail: result.snapshot.backlog.as_ref().and_then(|b| b.as_ref().ok().copied()),
            in_doubt: f.in_doubt.clone(),
            drain: result.snapshot.drain.clone(),
            faults: result.faults.clone(),
            outages: result.outages.clone(),
            stories: story::stories(&result.history, &result.snapshot, f, schedule),
            timeline: timeline::timeline(&result.history, &result.snapshot, result.strategy),
            location: Where {
                database_url: crate::redact::redact_url(location.database_url),
                database: result.namespace.database.clone().unwrap_or_else(|| location.database.to_string()),
                schema: result.namespace.schema.clone(),
                brokers: location.brokers.to_string(),
                topic: result.namespace.topic.clone(),
                redis_prefix: result.namespace.redis_prefix.clone(),
                kept: location.kept,
            },
        }
    }
}

/// Formats milliseconds for humans: `0.8`, `12`, `1.2k`.
pub fn ms(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if v.abs() >= 10_000.0 => format!("{:.1}k", v / 1000.0),
        Some(v) if v.abs() >= 10.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// `12.4 s`
pub fn seconds(ms: u64) -> String {
    format!("{:.1} s", Duration::from_millis(ms).as_secs_f64())
}
