//! The reconciler: what went wrong, counted from what the stores really hold.
//!
//! [`reconcile`] is a pure function of the history (what every writer was
//! told) and the snapshot (what the stores hold after drain). It does no I/O
//! and reads no clock, so every anomaly class is tested below with inputs
//! built by hand, and every figure can be checked independently: the
//! committed orders are `SELECT order_id FROM orders`, the topic is what a
//! console consumer prints.
//!
//! | anomaly            | counted as                                                                 |
//! |--------------------|----------------------------------------------------------------------------|
//! | `lost`             | committed orders whose event never reached the topic                      |
//! | `ghost`            | orders on the topic that never committed                                  |
//! | `duplicate`        | records beyond the first for the same order (extra deliveries)            |
//! | `reordered`        | first deliveries whose version is lower than one already on the topic for that product |
//! | `recovered`        | legs the writer was told `Unknown` that did happen                        |
//! | `false_failure`    | legs the writer was told `Fail` that did happen                           |
//! | `stale_cache`      | cached products whose value differs from the database after drain         |
//! | `projection_drift` | products where the downstream consumer's view differs from the database   |
//! | `backlog`          | outbox rows never published (dead letters included)                       |
//!
//! The verdict is *inconsistent* when the stores disagree for good — lost,
//! ghost, stale cache, projection drift, backlog — or a writer was told a
//! failure for something that happened. Duplicates and reorderings are
//! counted but do not make a run inconsistent by themselves: an idempotent
//! consumer absorbs them, and if it could not, projection drift says so.
//!
//! The verdict is *unknown* when the evidence is incomplete: a store could
//! not be read, the topic was not read to its end or the broker deleted
//! records, the drain timed out, the backlog could not be read
//! (`evidence.rs` has the table). A figure that depends on the missing
//! evidence is unknown too — [`Findings::figure`] says so, with the reason,
//! and what was seen of it as "at least" — so that nothing the reconciler
//! did not see is ever printed as if it had been counted.
//!
//! | file          | responsible for |
//! |---------------|-----------------|
//! | `mod.rs`      | the types, and [`reconcile`]: one pass per store, then the verdict |
//! | `evidence.rs` | what the snapshot did not see, and which figures that leaves unknown |
//! | `topic.rs`    | the topic against the orders table; the legs writers were wrong about |
//! | `figures.rs`  | latencies, the pool probe, stale reads |
//! | `in_doubt.rs` | two-phase: orders in doubt, orders blocked behind them |
//! | `arrival.rs`  | what arrived out of order, and what a last-write-wins consumer would hold |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::MAX_IN_FLIGHT_PER_WRITER;
use crate::history::{write_records, Events, IdSet, Leg, Millis, OrderId, Skipped, StockAfter};
use crate::snapshot::Snapshot;
// The hand-built tests (`tests.rs`, `use super::*`) build order rows.
#[cfg(test)]
use crate::snapshot::OrderRow;

mod arrival;
mod evidence;
mod figures;
pub mod in_doubt;
#[cfg(test)]
mod tests;
mod topic;

pub use arrival::ArrivalOrder;
pub use figures::percentile;

/// The anomaly classes, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    Lost,
    Ghost,
    Duplicate,
    Reordered,
    Recovered,
    FalseFailure,
    StaleCache,
    ProjectionDrift,
    Backlog,
}

impl Anomaly {
    pub const ALL: [Anomaly; 9] = [
        Anomaly::Lost,
        Anomaly::Ghost,
        Anomaly::Duplicate,
        Anomaly::Reordered,
        Anomaly::Recovered,
        Anomaly::FalseFailure,
        Anomaly::StaleCache,
        Anomaly::ProjectionDrift,
        Anomaly::Backlog,
    ];

    /// The JSON name (`false_failure`).
    pub fn key(self) -> &'static str {
        match self {
            Anomaly::Lost => "lost",
            Anomaly::Ghost => "ghost",
            Anomaly::Duplicate => "duplicate",
            Anomaly::Reordered => "reordered",
            Anomaly::Recovered => "recovered",
            Anomaly::FalseFailure => "false_failure",
            Anomaly::StaleCache => "stale_cache",
            Anomaly::ProjectionDrift => "projection_drift",
            Anomaly::Backlog => "backlog",
        }
    }

    /// Whether one example proves the anomaly: seen on the topic or in a
    /// store (a ghost record, a second delivery, a stale cached value).
    /// The others — lost, projection drift, backlog — are an *absence*, and
    /// only complete evidence proves one: an event not among the records
    /// read may be among those not read, or still in flight. So over
    /// incomplete evidence those are not counted at all.
    fn proven_by_presence(self) -> bool {
        !matches!(self, Anomaly::Lost | Anomaly::ProjectionDrift | Anomaly::Backlog)
    }

    /// Whether this anomaly makes the stores disagree for good.
    fn breaks_consistency(self) -> bool {
        matches!(
            self,
            Anomaly::Lost
                | Anomaly::Ghost
                | Anomaly::FalseFailure
                | Anomaly::StaleCache
                | Anomaly::ProjectionDrift
                | Anomaly::Backlog
        )
    }
}

/// The verdict on one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Consistent,
    Inconsistent,
    /// A store could not be read, so dualwrite cannot tell.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Consistent => "consistent",
            Verdict::Inconsistent => "inconsistent",
            Verdict::Unknown => "unknown",
        }
    }
}

/// How many examples of each anomaly a report keeps.
pub const EXAMPLES: usize = 5;

/// One example of an anomaly: an order, or a product for cache and
/// projection anomalies, with what the stores hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    pub product_id: i32,
    /// For `recovered` and `false_failure`: which leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leg: Option<Leg>,
    /// A one-line fact: "cached 977 (v12), database 971 (v14)".
    pub detail: String,
}

/// The count and a few examples of one anomaly. Absent from
/// [`Findings::anomalies`] when the anomaly cannot occur for the strategy
/// (a strategy that publishes nothing has no lost events).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// What was counted. When `unknown` is set this is what was *seen*, a
    /// lower bound, and not the figure (0 for an absence, which only
    /// complete evidence can show).
    pub count: u64,
    pub examples: Vec<Example>,
    /// Why the figure is not known: the evidence it is counted from is
    /// incomplete (see `evidence.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

/// One anomaly's figure, as a report may print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// The anomaly cannot occur for this strategy ("–").
    NotApplicable,
    /// Counted over complete evidence.
    Counted(u64),
    /// Not known ("?"): at least `at_least` were seen, and `reason` says
    /// what evidence is missing. For an absence (lost, projection drift,
    /// backlog) nothing can be seen over incomplete evidence: `at_least` is 0.
    Unknown { at_least: u64, reason: String },
}

impl Tally {
    fn add(&mut self, example: Example) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }
}

/// Order counts. (Read back from a run's JSON by the HTML report.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orders {
    /// Orders the writers began.
    pub attempted: u64,
    /// Orders in the database's `orders` table.
    pub committed: u64,
    /// Orders whose writer was told Ok on every leg.
    pub acknowledged: u64,
    /// The beats on which no order was begun, by why: the rate a run
    /// offered is `attempted` plus these, not what its flags asked for.
    /// (Absent from the JSON of a run made before it was counted.)
    #[serde(default)]
    pub skipped: Skipped,
}

/// Latency percentiles in milliseconds (`None` with no samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// A reader's wait for the strategy's read path (cache or database).
    pub read_p50: Option<f64>,
    pub read_p99: Option<f64>,
    /// From the start of a write to its last leg's outcome.
    pub write_p50: Option<f64>,
    pub write_p99: Option<f64>,
    /// From the commit's acknowledgement to the downstream consumer's first
    /// delivery of the order's event. Negative when the event arrives before
    /// the commit is acknowledged (publish-in-tx).
    pub event_lag_p50: Option<f64>,
    pub event_lag_p99: Option<f64>,
}

/// What the "unrelated" pool probe suffered: a product lookup sharing the
/// app's connection pool with the writers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PoolStats {
    pub probes: u64,
    /// Lookups that got no connection within the pool's acquire timeout.
    pub acquire_timeouts: u64,
    pub unrelated_p50_ms: Option<f64>,
    pub unrelated_p99_ms: Option<f64>,
}

/// What readers were served from the cache during the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CacheReads {
    /// Reads served from the cache.
    pub hits: u64,
    /// Cache hits older than the database at the time of the read.
    pub stale_reads: u64,
    /// The largest gap, in versions, between a served value and the truth.
    pub worst_versions: i64,
    /// The longest a served value had already been out of date, in ms.
    pub worst_ms: Option<Millis>,
    /// The staleness window: how long the stale values served had already
    /// been out of date (from the commit of the next version to the read),
    /// p50 and p99, in ms. `None` without a stale read.
    pub stale_p50_ms: Option<f64>,
    pub stale_p99_ms: Option<f64>,
}

/// Effectively-once, shown: the duplicates at-least-once delivery put on
/// the topic, what the idempotent consumer did with them, and what a
/// consumer that applies every delivery would have done instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Redeliveries {
    /// Deliveries of an order already delivered (the duplicate count).
    pub duplicates: u64,
    /// Deliveries the idempotent consumer ignored (it held that version or
    /// a newer one): the duplicates, and versions that arrived late.
    /// `None` when the strategy has no downstream consumer.
    pub discarded_by_consumer: Option<u64>,
    /// Units a consumer that ships every delivery's units would have
    /// shipped more than once: the sum of the duplicates' |delta|.
    pub extra_units: u64,
}

impl Orders {
    /// The beats that placed no order, in one sentence, e.g. "3461 beats
    /// placed no order (35 % of the writers' beats): 3400 passed while their
    /// writer had 16 orders in flight (the strategy and its stores did not
    /// keep up), 61 had passed before their writer woke (a busy machine, or
    /// a beat too short for the timer)"; `None` when none did.
    pub fn describe_skipped(&self) -> Option<String> {
        let skipped = self.skipped;
        if skipped.total() == 0 {
            return None;
        }
        let mut why = Vec::new();
        if skipped.full > 0 {
            why.push(format!(
                "{} passed while their writer had {MAX_IN_FLIGHT_PER_WRITER} orders in flight (the strategy and its \
                 stores did not keep up)",
                skipped.full
            ));
        }
        if skipped.late > 0 {
            why.push(format!(
                "{} had passed before their writer woke (a busy machine, or a beat too short for the timer)",
                skipped.late
            ));
        }
        // One decimal below 10 %: 0.6 % and 1.4 % are not both "1 %".
        let share = 100.0 * skipped.total() as f64 / (self.attempted + skipped.total()) as f64;
        let share = if share < 10.0 { format!("{share:.1}") } else { format!("{share:.0}") };
        Some(format!(
            "{} {} placed no order ({share} % of the writers' beats): {}",
            skipped.total(),
            if skipped.total() == 1 { "beat" } else { "beats" },
            why.join(", ")
        ))
    }
}

impl Redeliveries {
    /// One sentence for the report, e.g. "3 duplicate deliveries arrived; the
    /// idempotent consumer discarded 3 deliveries; a consumer that applies
    /// every delivery would have shipped 7 extra units".
    pub fn describe(&self) -> String {
        let plural = |n: u64, one: &str, many: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {many}") };
        let discarded = match self.discarded_by_consumer {
            Some(n) if n == self.duplicates => {
                format!("; the idempotent consumer discarded {}", plural(n, "delivery", "deliveries"))
            }
            // It discards any version it already holds or has passed, so
            // versions that arrived late are among them too.
            Some(n) => format!(
                "; the idempotent consumer discarded {} (every version it already held or had passed: \
                 the duplicates, and versions that arrived late)",
                plural(n, "delivery", "deliveries")
            ),
            None => String::new(),
        };
        format!(
            "{} arrived{discarded}; a consumer that applied every delivery would have shipped {}",
            plural(self.duplicates, "duplicate delivery", "duplicate deliveries"),
            plural(self.extra_units, "extra unit", "extra units"),
        )
    }
}

#[cfg(test)]
mod redeliveries_tests {
    use super::Redeliveries;

    #[test]
    fn the_cost_of_duplicates_reads_as_a_sentence() {
        let r = Redeliveries { duplicates: 3, discarded_by_consumer: Some(4), extra_units: 7 };
        assert_eq!(
            r.describe(),
            "3 duplicate deliveries arrived; the idempotent consumer discarded 4 deliveries (every version it \
             already held or had passed: the duplicates, and versions that arrived late); a consumer that \
             applied every delivery would have shipped 7 extra units"
        );
        let same = Redeliveries { duplicates: 3, discarded_by_consumer: Some(3), extra_units: 7 };
        assert_eq!(
            same.describe(),
            "3 duplicate deliveries arrived; the idempotent consumer discarded 3 deliveries; a consumer that \
             applied every delivery would have shipped 7 extra units"
        );
        let one = Redeliveries { duplicates: 1, discarded_by_consumer: None, extra_units: 1 };
        assert_eq!(
            one.describe(),
            "1 duplicate delivery arrived; a consumer that applied every delivery would have shipped 1 extra unit"
        );
    }
}

/// Everything the reconciler found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Findings {
    pub verdict: Verdict,
    /// Why the verdict is what it is, in words.
    pub reasons: Vec<String>,
    pub orders: Orders,
    /// Per anomaly that applies to the strategy.
    pub anomalies: BTreeMap<Anomaly, Tally>,
    pub latency: Latency,
    pub pool: PoolStats,
    /// `None` when the strategy has no cache.
    pub cache_reads: Option<CacheReads>,
    pub dead_letters: Option<u64>,
    pub slot_lag_bytes: Option<u64>,
    /// two-phase: the orders in doubt and the orders they blocked.
    pub in_doubt: Option<in_doubt::InDoubtFigure>,
    /// Duplicates and their cost to a consumer that is not idempotent;
    /// `None` when nothing is published or the topic was not read whole.
    pub redeliveries: Option<Redeliveries>,
    /// Versions that arrived out of order, and what a consumer applying
    /// them in arrival order would end with; `None` without a downstream
    /// consumer, or when its projection drift is not known.
    pub arrival_order: Option<ArrivalOrder>,
}

impl Findings {
    /// The count of an anomaly: `None` if it does not apply *or is not
    /// known* ([`Findings::figure`] tells the two apart).
    pub fn count(&self, anomaly: Anomaly) -> Option<u64> {
        self.anomalies.get(&anomaly).filter(|t| t.unknown.is_none()).map(|t| t.count)
    }

    /// An anomaly's figure: not applicable, counted, or unknown with why.
    pub fn figure(&self, anomaly: Anomaly) -> Figure {
        match self.anomalies.get(&anomaly) {
            None => Figure::NotApplicable,
            Some(Tally { count, unknown: None, .. }) => Figure::Counted(*count),
            Some(Tally { count, unknown: Some(reason), .. }) => {
                Figure::Unknown { at_least: *count, reason: reason.clone() }
            }
        }
    }
}

/// Compares the history with the snapshot. Pure.
pub fn reconcile(history: &Events, snapshot: &Snapshot) -> Findings {
    let records = write_records(history);
    // First, what the snapshot did not see: it decides which figures can be
    // known, and whether there can be a verdict at all.
    let evidence = evidence::assess(snapshot);

    // Ground truth: the orders table.
    let committed: IdSet = snapshot.orders.iter().map(|o| o.order_id).collect();
    let truth: BTreeMap<i32, StockAfter> = snapshot
        .stock
        .iter()
        .map(|s| (s.product_id, StockAfter { quantity: s.quantity, version: s.version }))
        .collect();

    let orders = Orders {
        attempted: records.len() as u64,
        committed: committed.len() as u64,
        acknowledged: records.iter().filter(|r| r.acknowledged()).count() as u64,
        skipped: history.skipped(),
    };

    let mut anomalies: BTreeMap<Anomaly, Tally> = BTreeMap::new();

    // What the topic holds, as far as it was read (all of it, or a part:
    // the evidence check says which).
    let read = match &snapshot.topic {
        Some(Ok(read)) => Some(read),
        _ => None,
    };
    let on_topic = read.map(|r| topic::delivered(&r.records));

    // Legs that happened although the writer was told otherwise.
    let (recovered, false_failure) = topic::legs(&records, &committed, on_topic.as_ref(), evidence.topic_incomplete);
    anomalies.insert(Anomaly::Recovered, recovered);
    anomalies.insert(Anomaly::FalseFailure, false_failure);

    // The topic against the orders table. A topic that could not be read
    // at all still has these anomalies — unknown, not "does not apply".
    if snapshot.topic.is_some() {
        let empty = IdSet::default();
        anomalies.insert(Anomaly::Lost, topic::lost(&snapshot.orders, on_topic.as_ref().unwrap_or(&empty)));
        let (ghost, duplicate, reordered) = read.map(|r| topic::walk_topic(&r.records, &committed)).unwrap_or_default();
        anomalies.insert(Anomaly::Ghost, ghost);
        anomalies.insert(Anomaly::Duplicate, duplicate);
        anomalies.insert(Anomaly::Reordered, reordered);
    }

    // The downstream consumer's projection against the stock table.
    if let Some(downstream) = &snapshot.downstream {
        let mut drift = Tally::default();
        for (product_id, db) in &truth {
            let seen = downstream.projection.get(product_id).copied();
            // A product nothing happened to has no events: that is agreement.
            let agrees = match seen {
                Some(seen) => seen == *db,
                None => db.version == 0,
            };
            if !agrees {
                drift.add(Example {
                    order_id: None,
                    product_id: *product_id,
                    leg: None,
                    detail: format!("consumer believes {}, database holds {}", show(seen), show(Some(*db))),
                });
            }
        }
        anomalies.insert(Anomaly::ProjectionDrift, drift);
    }

    // The cache against the stock table.
    match &snapshot.cache {
        None => {}
        Some(Err(_)) => {
            anomalies.insert(Anomaly::StaleCache, Tally::default());
        }
        Some(Ok(entries)) => {
            let mut stale = Tally::default();
            for entry in entries {
                let db = truth.get(&entry.product_id).copied();
                let agrees = matches!((&entry.value, db), (Ok(cached), Some(db)) if *cached == db);
                if !agrees {
                    let cached = match &entry.value {
                        Ok(v) => show(Some(*v)),
                        Err(raw) => format!("unreadable {raw:?}"),
                    };
                    stale.add(Example {
                        order_id: None,
                        product_id: entry.product_id,
                        leg: None,
                        detail: format!("cached {cached}, database holds {}", show(db)),
                    });
                }
            }
            anomalies.insert(Anomaly::StaleCache, stale);
        }
    }
    let cache_reads = snapshot.cache.is_some().then(|| figures::stale_reads(history, &records));

    // What the relay or connector left unpublished.
    let backlog = match &snapshot.backlog {
        Some(Ok(backlog)) => Some(*backlog),
        _ => None,
    };
    if let Some(read) = &snapshot.backlog {
        let mut tally = Tally::default();
        if let Ok(backlog) = read {
            tally.count = backlog.left_behind();
            if tally.count > 0 {
                tally.examples.push(Example {
                    order_id: None,
                    product_id: 0,
                    leg: None,
                    detail: backlog_detail(backlog),
                });
            }
        }
        anomalies.insert(Anomaly::Backlog, tally);
    }

    // Figures counted over incomplete evidence are not the figure: they
    // carry the reason instead. What was seen of an anomaly proven by
    // presence stays, as "at least"; an absence proves nothing, so its
    // count and examples go (a committed order not yet on the topic is not
    // a lost one while the drain was still waiting for it).
    for (anomaly, why) in &evidence.unknown {
        if let Some(tally) = anomalies.get_mut(anomaly) {
            tally.unknown.get_or_insert_with(|| why.to_string());
            if !anomaly.proven_by_presence() {
                tally.count = 0;
                tally.examples.clear();
            }
        }
    }

    // Only over a whole read: a duplicate not read is a duplicate not counted.
    let duplicates_known = anomalies.get(&Anomaly::Duplicate).is_some_and(|t| t.unknown.is_none());
    let redeliveries = read
        .filter(|_| duplicates_known)
        .map(|read| figures::redeliveries(&read.records, snapshot.downstream.as_ref().map(|d| d.discarded)));

    // Over the same evidence as the consumer's own drift.
    let drift_known = anomalies.get(&Anomaly::ProjectionDrift).is_some_and(|t| t.unknown.is_none());
    let arrival_order = snapshot.downstream.as_ref().filter(|_| drift_known).map(|d| ArrivalOrder::of(d, &truth));

    let (verdict, mut reasons) = verdict(&anomalies, evidence.gaps);
    // What the broker said that disagrees with what it served, though the
    // read is whole: a finding about the broker, beside the verdict.
    if let Some(Ok(read)) = &snapshot.topic {
        reasons.extend(read.broker_notes().into_iter().map(|note| format!("note on the broker: {note}")));
    }
    Findings {
        verdict,
        reasons,
        orders,
        anomalies,
        latency: figures::latency(history, &records, snapshot),
        pool: figures::pool_stats(history),
        cache_reads,
        dead_letters: backlog.map(|b| b.dead_letters),
        slot_lag_bytes: backlog.and_then(|b| b.slot_lag_bytes),
        in_doubt: in_doubt::in_doubt(history, snapshot),
        redeliveries,
        arrival_order,
    }
}

/// The verdict, and its reasons in words. Incomplete evidence gives
/// *unknown* whatever was seen — what was seen is said, as "at least" — so
/// a verdict of consistent or inconsistent always rests on a complete read.
fn verdict(anomalies: &BTreeMap<Anomaly, Tally>, gaps: Vec<String>) -> (Verdict, Vec<String>) {
    let broken: Vec<String> = anomalies
        .iter()
        .filter(|(a, t)| a.breaks_consistency() && t.count > 0)
        .map(|(a, t)| match t.unknown {
            Some(_) => format!("at least {} {}", t.count, a.key()),
            None => format!("{} {}", t.count, a.key()),
        })
        .collect();
    if !gaps.is_empty() {
        let mut reasons = gaps;
        if !broken.is_empty() {
            reasons.push(format!("seen nonetheless: {}", broken.join(", ")));
        }
        return (Verdict::Unknown, reasons);
    }
    if broken.is_empty() {
        (Verdict::Consistent, Vec::new())
    } else {
        (Verdict::Inconsistent, vec![format!("the stores disagree: {}", broken.join(", "))])
    }
}

/// `3 outbox rows unpublished, 1 dead-lettered`, or the connector's words.
fn backlog_detail(backlog: &crate::snapshot::Backlog) -> String {
    if let Some(in_doubt) = backlog.in_doubt {
        return format!(
            "{} prepared transactions still in doubt, {} committed orders whose event nobody published",
            in_doubt.left_prepared, backlog.outbox_unpublished
        );
    }
    match backlog.unacknowledged {
        Some(n) => format!("{n} committed orders whose event the broker never acknowledged"),
        None => {
            format!("{} outbox rows unpublished, {} dead-lettered", backlog.outbox_unpublished, backlog.dead_letters)
        }
    }
}

/// `977 (v12)`, or `nothing` for a product with no value.
fn show(value: Option<StockAfter>) -> String {
    match value {
        Some(v) => format!("{} (v{})", v.quantity, v.version),
        None => "nothing".into(),
    }
}
