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
//! consumer absorbs them, and if it could not, projection drift says so. The
//! verdict is *unknown* when a store could not be read.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::history::{write_records, Event, Leg, Millis, OrderId, Outcome, StockAfter, WriteRecord};
use crate::snapshot::Snapshot;

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
    pub count: u64,
    pub examples: Vec<Example>,
}

impl Tally {
    fn add(&mut self, example: Example) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }
}

/// Order counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Orders {
    /// Orders the writers began.
    pub attempted: u64,
    /// Orders in the database's `orders` table.
    pub committed: u64,
    /// Orders whose writer was told Ok on every leg.
    pub acknowledged: u64,
}

/// Latency percentiles in milliseconds (`None` with no samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
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
}

impl Findings {
    /// The count of an anomaly, `None` if it does not apply.
    pub fn count(&self, anomaly: Anomaly) -> Option<u64> {
        self.anomalies.get(&anomaly).map(|t| t.count)
    }
}

/// Compares the history with the snapshot. Pure.
pub fn reconcile(history: &[Event], snapshot: &Snapshot) -> Findings {
    let records = write_records(history);
    let mut reasons = Vec::new();
    let mut unknown = false;

    // Ground truth: the orders table.
    let committed: HashMap<OrderId, &crate::db::OrderRow> = snapshot.orders.iter().map(|o| (o.order_id, o)).collect();
    let truth: BTreeMap<i32, StockAfter> = snapshot
        .stock
        .iter()
        .map(|s| (s.product_id, StockAfter { quantity: s.quantity, version: s.version }))
        .collect();

    let orders = Orders {
        attempted: records.len() as u64,
        committed: committed.len() as u64,
        acknowledged: records.iter().filter(|r| r.acknowledged()).count() as u64,
    };

    let mut anomalies: BTreeMap<Anomaly, Tally> = BTreeMap::new();

    // Legs that happened although the writer was told otherwise. The
    // database leg is decided by the orders table; the topic leg by the topic.
    let on_topic: Option<HashMap<OrderId, u64>> = match &snapshot.topic {
        Some(Ok(topic)) => {
            let mut counts = HashMap::new();
            for record in topic {
                if let Ok(event) = &record.event {
                    *counts.entry(event.order_id).or_insert(0) += 1;
                }
            }
            Some(counts)
        }
        _ => None,
    };
    let mut recovered = Tally::default();
    let mut false_failure = Tally::default();
    for record in &records {
        for (leg, leg_record) in &record.legs {
            let happened = match leg {
                Leg::Db => Some(committed.contains_key(&record.order.order_id)),
                Leg::Topic => on_topic.as_ref().map(|t| t.contains_key(&record.order.order_id)),
                // A delete leaves no trace to check it by.
                Leg::Cache => None,
            };
            let example = || Example {
                order_id: Some(record.order.order_id),
                product_id: record.order.product_id,
                leg: Some(*leg),
                detail: format!(
                    "{} leg told {}{}, but it happened",
                    leg.as_str(),
                    leg_record.told.outcome.as_str(),
                    leg_record.told.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                ),
            };
            match (leg_record.told.outcome, happened) {
                (Outcome::Unknown, Some(true)) => recovered.add(example()),
                (Outcome::Fail, Some(true)) => false_failure.add(example()),
                _ => {}
            }
        }
    }
    anomalies.insert(Anomaly::Recovered, recovered);
    anomalies.insert(Anomaly::FalseFailure, false_failure);

    // The topic against the orders table.
    match &snapshot.topic {
        None => {}
        Some(Err(e)) => {
            unknown = true;
            reasons.push(format!("the topic could not be read: {e}"));
        }
        Some(Ok(topic)) => {
            let undecodable = topic.iter().filter(|r| r.event.is_err()).count();
            if undecodable > 0 {
                unknown = true;
                reasons.push(format!("{undecodable} topic records could not be decoded"));
            }
            let counts = on_topic.as_ref().expect("set when the topic was read");
            anomalies.insert(Anomaly::Lost, lost(&snapshot.orders, counts));
            let (ghost, duplicate, reordered) = walk_topic(topic, &committed);
            anomalies.insert(Anomaly::Ghost, ghost);
            anomalies.insert(Anomaly::Duplicate, duplicate);
            anomalies.insert(Anomaly::Reordered, reordered);
        }
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
    let mut cache_reads = None;
    match &snapshot.cache {
        None => {}
        Some(Err(e)) => {
            unknown = true;
            reasons.push(format!("the cache could not be read: {e}"));
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
    if snapshot.cache.is_some() {
        cache_reads = Some(stale_reads(history, &records));
    }

    if let Some(backlog) = &snapshot.backlog {
        let count = backlog.outbox_unpublished + backlog.dead_letters;
        let mut tally = Tally { count, examples: Vec::new() };
        if count > 0 {
            tally.examples.push(Example {
                order_id: None,
                product_id: 0,
                leg: None,
                detail: format!(
                    "{} outbox rows unpublished, {} dead-lettered",
                    backlog.outbox_unpublished, backlog.dead_letters
                ),
            });
        }
        anomalies.insert(Anomaly::Backlog, tally);
    }

    if !snapshot.drain.completed {
        reasons.push(format!(
            "the drain phase timed out after {} ms{}",
            snapshot.drain.waited_ms,
            snapshot.drain.behind.as_deref().map(|b| format!(": {b}")).unwrap_or_default()
        ));
    }

    let broken: Vec<String> = anomalies
        .iter()
        .filter(|(a, t)| a.breaks_consistency() && t.count > 0)
        .map(|(a, t)| format!("{} {}", t.count, a.key()))
        .collect();
    let verdict = if unknown {
        Verdict::Unknown
    } else if !broken.is_empty() {
        reasons.insert(0, format!("the stores disagree: {}", broken.join(", ")));
        Verdict::Inconsistent
    } else {
        Verdict::Consistent
    };

    Findings {
        verdict,
        reasons,
        orders,
        anomalies,
        latency: latency(&records, snapshot),
        pool: pool_stats(history),
        cache_reads,
        dead_letters: snapshot.backlog.map(|b| b.dead_letters),
        slot_lag_bytes: snapshot.backlog.and_then(|b| b.slot_lag_bytes),
    }
}

/// `977 (v12)`, or `nothing` for a product with no value.
fn show(value: Option<StockAfter>) -> String {
    match value {
        Some(v) => format!("{} (v{})", v.quantity, v.version),
        None => "nothing".into(),
    }
}

/// Committed orders that never reached the topic.
fn lost(orders: &[crate::db::OrderRow], on_topic: &HashMap<OrderId, u64>) -> Tally {
    let mut tally = Tally::default();
    for order in orders {
        if !on_topic.contains_key(&order.order_id) {
            tally.add(Example {
                order_id: Some(order.order_id),
                product_id: order.product_id,
                leg: None,
                detail: format!("committed as version {}, never on the topic", order.version),
            });
        }
    }
    tally
}

/// One pass over the topic in partition and offset order: ghosts (orders
/// that never committed), duplicates (extra deliveries of an order) and
/// reorderings (a product's version going backwards).
fn walk_topic(
    topic: &[crate::kafka::topic::TopicRecord],
    committed: &HashMap<OrderId, &crate::db::OrderRow>,
) -> (Tally, Tally, Tally) {
    let mut ghost = Tally::default();
    let mut duplicate = Tally::default();
    let mut reordered = Tally::default();
    let mut seen: HashSet<OrderId> = HashSet::new();
    let mut highest: HashMap<i32, i64> = HashMap::new();
    for record in topic {
        let Ok(event) = &record.event else { continue };
        let first = seen.insert(event.order_id);
        let at = format!("partition {} offset {}", record.partition, record.offset);
        if !first {
            duplicate.add(Example {
                order_id: Some(event.order_id),
                product_id: event.product_id,
                leg: None,
                detail: format!("delivered again at {at}"),
            });
            continue;
        }
        if !committed.contains_key(&event.order_id) {
            ghost.add(Example {
                order_id: Some(event.order_id),
                product_id: event.product_id,
                leg: None,
                detail: format!("on the topic at {at} as version {}, never committed", event.version),
            });
        }
        let top = highest.entry(event.product_id).or_insert(i64::MIN);
        if event.version < *top {
            reordered.add(Example {
                order_id: Some(event.order_id),
                product_id: event.product_id,
                leg: None,
                detail: format!("version {} arrived after version {} ({at})", event.version, *top),
            });
        } else {
            *top = event.version;
        }
    }
    (ghost, duplicate, reordered)
}

/// Write latency and commit → event lag.
fn latency(records: &[WriteRecord], snapshot: &Snapshot) -> Latency {
    let mut writes: Vec<f64> = records
        .iter()
        .filter_map(|r| {
            let done = r.legs.values().map(|l| l.completed_at).collect::<Option<Vec<_>>>()?;
            let last = done.into_iter().max()?;
            Some(last.saturating_sub(r.begun_at) as f64)
        })
        .collect();
    let mut lags: Vec<f64> = Vec::new();
    if let Some(downstream) = &snapshot.downstream {
        for r in records {
            let Some(db) = r.legs.get(&Leg::Db) else { continue };
            if db.told.outcome != Outcome::Ok {
                continue;
            }
            let (Some(committed_at), Some(seen)) = (db.completed_at, downstream.first_seen.get(&r.order.order_id))
            else {
                continue;
            };
            lags.push(*seen as f64 - committed_at as f64);
        }
    }
    Latency {
        write_p50: percentile(&mut writes, 50.0),
        write_p99: percentile(&mut writes, 99.0),
        event_lag_p50: percentile(&mut lags, 50.0),
        event_lag_p99: percentile(&mut lags, 99.0),
    }
}

/// The pool probe's figures.
fn pool_stats(history: &[Event]) -> PoolStats {
    let mut times = Vec::new();
    let mut stats = PoolStats::default();
    for event in history {
        if let Event::Probe(p) = event {
            stats.probes += 1;
            if p.acquire_timeout {
                stats.acquire_timeouts += 1;
            }
            times.push(p.elapsed_ms);
        }
    }
    stats.unrelated_p50_ms = percentile(&mut times, 50.0);
    stats.unrelated_p99_ms = percentile(&mut times, 99.0);
    stats
}

/// Staleness of what readers were served from the cache. A read is stale
/// when the database already held a newer version *before* the cache was
/// asked (readers read the truth first, so a write landing between the two
/// reads is never mistaken for staleness).
fn stale_reads(history: &[Event], records: &[WriteRecord]) -> CacheReads {
    // When each (product, version) was committed, as its writer learned it.
    let mut committed_at: HashMap<(i32, i64), Millis> = HashMap::new();
    for r in records {
        if let (Some(after), Some(db)) = (r.after, r.legs.get(&Leg::Db)) {
            if db.told.outcome == Outcome::Ok {
                if let Some(at) = db.completed_at {
                    committed_at.insert((r.order.product_id, after.version), at);
                }
            }
        }
    }
    let mut reads = CacheReads::default();
    for event in history {
        let Event::Read(sample) = event else { continue };
        if !sample.from_cache {
            continue;
        }
        reads.hits += 1;
        let (Some(served), Some(truth)) = (sample.served, sample.truth) else { continue };
        if served.version < truth.version {
            reads.stale_reads += 1;
            reads.worst_versions = reads.worst_versions.max(truth.version - served.version);
            // Out of date since the next version committed.
            if let Some(newer) = committed_at.get(&(sample.product_id, served.version + 1)) {
                let age = sample.at.saturating_sub(*newer);
                reads.worst_ms = Some(reads.worst_ms.map_or(age, |w| w.max(age)));
            }
        }
    }
    reads
}

/// Nearest-rank percentile; sorts `values`. `None` when empty.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{OrderRow, StockRow};
    use crate::event::StockChanged;
    use crate::history::{Order, ProbeSample, ReadSample, Told};
    use crate::kafka::topic::TopicRecord;
    use crate::snapshot::{Backlog, CachedEntry, DownstreamState, DrainReport};
    use uuid::Uuid;

    /// A hand-built run: orders placed, and what the stores hold.
    struct Run {
        history: Vec<Event>,
        snapshot: Snapshot,
        clock: Millis,
    }

    fn id(n: u128) -> OrderId {
        Uuid::from_u128(n)
    }

    impl Run {
        /// A strategy that publishes (a topic and a downstream consumer), one
        /// product at version 0.
        fn publishing() -> Run {
            Run {
                history: Vec::new(),
                snapshot: Snapshot {
                    stock: vec![StockRow { product_id: 1, quantity: 1000, version: 0 }],
                    topic: Some(Ok(Vec::new())),
                    downstream: Some(DownstreamState::default()),
                    drain: DrainReport { completed: true, waited_ms: 0, behind: None },
                    ..Snapshot::default()
                },
                clock: 0,
            }
        }

        fn tick(&mut self) -> Millis {
            self.clock += 10;
            self.clock
        }

        /// A writer places order `n` (2 units of product 1) and is told
        /// `db` and then `topic` (None: the leg was never invoked).
        fn write(&mut self, n: u128, db: Option<Told>, topic: Option<Told>) {
            let order = Order { order_id: id(n), product_id: 1, delta: -2, writer: 0, seq: n as u64 };
            let at = self.tick();
            self.history.push(Event::Begin { at, order });
            for (leg, told) in [(Leg::Db, db), (Leg::Topic, topic)] {
                if let Some(told) = told {
                    let at = self.tick();
                    self.history.push(Event::Invoke { at, order_id: id(n), leg });
                    let at = self.tick();
                    self.history.push(Event::Complete { at, order_id: id(n), leg, told });
                }
            }
        }

        /// The database holds order `n` at `version`, and stock follows it.
        fn commit(&mut self, n: u128, version: i64) {
            let quantity = 1000 - 2 * version;
            self.snapshot.orders.push(OrderRow { order_id: id(n), product_id: 1, delta: -2, quantity, version });
            self.snapshot.stock[0] = StockRow { product_id: 1, quantity, version };
        }

        /// The topic holds order `n`'s event at `version`.
        fn publish(&mut self, n: u128, version: i64) {
            let Some(Ok(topic)) = &mut self.snapshot.topic else { unreachable!() };
            let event =
                StockChanged { order_id: id(n), product_id: 1, delta: -2, quantity: 1000 - 2 * version, version };
            topic.push(TopicRecord {
                partition: 0,
                offset: topic.len() as i64,
                key: Some("1".into()),
                event: Ok(event.clone()),
            });
            let downstream = self.snapshot.downstream.as_mut().unwrap();
            downstream.records += 1;
            let at = self.clock + 5;
            downstream.first_seen.entry(id(n)).or_insert(at);
            let current = downstream.projection.entry(1).or_insert(event.after());
            if event.version > current.version {
                *current = event.after();
            }
        }

        fn findings(&self) -> Findings {
            reconcile(&self.history, &self.snapshot)
        }
    }

    #[test]
    fn a_clean_run_is_consistent_with_nothing_to_report() {
        let mut run = Run::publishing();
        for n in 1..=3 {
            run.write(n, Some(Told::ok()), Some(Told::ok()));
            run.commit(n, n as i64);
            run.publish(n, n as i64);
        }
        let f = run.findings();
        assert_eq!(f.verdict, Verdict::Consistent, "{:?}", f.reasons);
        assert_eq!(f.orders, Orders { attempted: 3, committed: 3, acknowledged: 3 });
        for anomaly in [Anomaly::Lost, Anomaly::Ghost, Anomaly::Duplicate, Anomaly::Reordered, Anomaly::ProjectionDrift]
        {
            assert_eq!(f.count(anomaly), Some(0), "{anomaly:?}");
        }
        // No cache, no relay: those anomalies do not apply at all.
        assert_eq!(f.count(Anomaly::StaleCache), None);
        assert_eq!(f.count(Anomaly::Backlog), None);
    }

    #[test]
    fn lost_a_commit_whose_event_never_reached_the_topic() {
        let mut run = Run::publishing();
        run.write(1, Some(Told::ok()), Some(Told::ok()));
        run.commit(1, 1);
        run.publish(1, 1);
        // Committed, then the publish failed: the classic black hole.
        run.write(2, Some(Told::ok()), Some(Told::fail("connection reset")));
        run.commit(2, 2);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Lost), Some(1));
        assert_eq!(f.anomalies[&Anomaly::Lost].examples[0].order_id, Some(id(2)));
        // The consumer's last event is version 1; the database holds 2.
        assert_eq!(f.count(Anomaly::ProjectionDrift), Some(1));
        assert_eq!(f.verdict, Verdict::Inconsistent);
        assert!(f.reasons[0].contains("1 lost"), "{:?}", f.reasons);
    }

    #[test]
    fn ghost_an_event_for_an_order_that_never_committed() {
        let mut run = Run::publishing();
        // Published inside the transaction, then the commit was lost.
        run.write(1, Some(Told::fail("connection reset before COMMIT")), Some(Told::ok()));
        run.publish(1, 1);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Ghost), Some(1));
        assert_eq!(f.anomalies[&Anomaly::Ghost].examples[0].order_id, Some(id(1)));
        assert_eq!(f.orders.committed, 0);
        assert_eq!(f.verdict, Verdict::Inconsistent);
    }

    #[test]
    fn duplicate_counts_extra_deliveries_and_does_not_break_consistency() {
        let mut run = Run::publishing();
        run.write(1, Some(Told::ok()), Some(Told::ok()));
        run.commit(1, 1);
        run.publish(1, 1);
        run.publish(1, 1);
        run.publish(1, 1);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Duplicate), Some(2));
        assert_eq!(f.count(Anomaly::Lost), Some(0));
        // The idempotent consumer absorbed them: no drift, consistent.
        assert_eq!(f.count(Anomaly::ProjectionDrift), Some(0));
        assert_eq!(f.verdict, Verdict::Consistent);
    }

    #[test]
    fn reordered_a_version_arriving_after_a_newer_one() {
        let mut run = Run::publishing();
        for n in 1..=3 {
            run.write(n, Some(Told::ok()), Some(Told::ok()));
            run.commit(n, n as i64);
        }
        run.publish(1, 1);
        run.publish(3, 3);
        run.publish(2, 2);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Reordered), Some(1));
        assert_eq!(f.anomalies[&Anomaly::Reordered].examples[0].order_id, Some(id(2)));
        // Ignoring older versions keeps the projection right.
        assert_eq!(f.count(Anomaly::ProjectionDrift), Some(0));
        assert_eq!(f.verdict, Verdict::Consistent);
    }

    #[test]
    fn a_redelivered_old_record_is_a_duplicate_not_a_reordering() {
        let mut run = Run::publishing();
        for n in 1..=2 {
            run.write(n, Some(Told::ok()), Some(Told::ok()));
            run.commit(n, n as i64);
        }
        run.publish(1, 1);
        run.publish(2, 2);
        run.publish(1, 1);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Duplicate), Some(1));
        assert_eq!(f.count(Anomaly::Reordered), Some(0));
    }

    #[test]
    fn recovered_an_unknown_commit_that_happened() {
        let mut run = Run::publishing();
        run.write(1, Some(Told::unknown("reset while COMMIT was in flight")), None);
        run.commit(1, 1);
        // An Unknown commit that did not happen is not recovered.
        run.write(2, Some(Told::unknown("reset while COMMIT was in flight")), None);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Recovered), Some(1));
        let example = &f.anomalies[&Anomaly::Recovered].examples[0];
        assert_eq!((example.order_id, example.leg), (Some(id(1)), Some(Leg::Db)));
        assert_eq!(f.count(Anomaly::FalseFailure), Some(0));
        // The writer never published order 1: lost as well.
        assert_eq!(f.count(Anomaly::Lost), Some(1));
    }

    #[test]
    fn recovered_an_unknown_publish_that_landed() {
        let mut run = Run::publishing();
        run.write(1, Some(Told::ok()), Some(Told::unknown("message timed out")));
        run.commit(1, 1);
        run.publish(1, 1);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Recovered), Some(1));
        assert_eq!(f.anomalies[&Anomaly::Recovered].examples[0].leg, Some(Leg::Topic));
        assert_eq!(f.verdict, Verdict::Consistent);
    }

    #[test]
    fn false_failure_a_failure_that_happened() {
        let mut run = Run::publishing();
        run.write(1, Some(Told::fail("the writer believed it failed")), None);
        run.commit(1, 1);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::FalseFailure), Some(1));
        assert_eq!(f.verdict, Verdict::Inconsistent);
    }

    #[test]
    fn a_crash_mid_leg_reads_as_unknown() {
        let mut run = Run::publishing();
        let order = Order { order_id: id(1), product_id: 1, delta: -2, writer: 0, seq: 1 };
        run.history.push(Event::Begin { at: 1, order });
        run.history.push(Event::Invoke { at: 2, order_id: id(1), leg: Leg::Db });
        run.commit(1, 1);
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Recovered), Some(1));
        assert_eq!(f.orders.acknowledged, 0);
    }

    #[test]
    fn projection_drift_when_the_consumer_missed_the_last_change() {
        let mut run = Run::publishing();
        run.write(1, Some(Told::ok()), Some(Told::ok()));
        run.commit(1, 1);
        run.publish(1, 1);
        run.write(2, Some(Told::ok()), Some(Told::ok()));
        run.commit(2, 2);
        run.publish(2, 2);
        // The consumer stopped before the last event.
        run.snapshot.downstream.as_mut().unwrap().projection.insert(1, StockAfter { quantity: 998, version: 1 });
        let f = run.findings();
        assert_eq!(f.count(Anomaly::ProjectionDrift), Some(1));
        assert!(f.anomalies[&Anomaly::ProjectionDrift].examples[0].detail.contains("998 (v1)"));
    }

    #[test]
    fn stale_cache_entries_differ_from_the_database() {
        let mut run = Run::publishing();
        run.snapshot.topic = None;
        run.snapshot.downstream = None;
        run.snapshot.stock = vec![
            StockRow { product_id: 1, quantity: 990, version: 5 },
            StockRow { product_id: 2, quantity: 1000, version: 0 },
        ];
        run.snapshot.cache = Some(Ok(vec![
            CachedEntry { product_id: 1, value: Ok(StockAfter { quantity: 994, version: 3 }) },
            CachedEntry { product_id: 2, value: Ok(StockAfter { quantity: 1000, version: 0 }) },
        ]));
        let f = run.findings();
        assert_eq!(f.count(Anomaly::StaleCache), Some(1));
        assert!(f.anomalies[&Anomaly::StaleCache].examples[0].detail.contains("cached 994 (v3)"));
        assert_eq!(f.count(Anomaly::Lost), None, "nothing is published");
        assert_eq!(f.verdict, Verdict::Inconsistent);
    }

    #[test]
    fn stale_reads_are_measured_in_versions_and_time() {
        let mut run = Run::publishing();
        run.snapshot.cache = Some(Ok(Vec::new()));
        // Versions 1 and 2 commit at known times.
        run.write(1, Some(Told::ok()), None);
        run.history.push(Event::Wrote { at: 0, order_id: id(1), after: StockAfter { quantity: 998, version: 1 } });
        run.write(2, Some(Told::ok()), None);
        run.history.push(Event::Wrote { at: 0, order_id: id(2), after: StockAfter { quantity: 996, version: 2 } });
        let v1_committed = 30; // see Run::write: begin 10, invoke 20, complete 30
        let sample = |at, served: i64, truth: i64| {
            Event::Read(ReadSample {
                at,
                product_id: 1,
                served: Some(StockAfter { quantity: 1000 - 2 * served, version: served }),
                from_cache: true,
                filled_cache: false,
                truth: Some(StockAfter { quantity: 1000 - 2 * truth, version: truth }),
                projection: None,
            })
        };
        run.history.push(sample(100, 0, 2));
        run.history.push(sample(110, 2, 2));
        let f = run.findings();
        let reads = f.cache_reads.unwrap();
        assert_eq!((reads.hits, reads.stale_reads, reads.worst_versions), (2, 1, 2));
        assert_eq!(reads.worst_ms, Some(100 - v1_committed));
    }

    #[test]
    fn backlog_rows_left_unpublished() {
        let mut run = Run::publishing();
        run.snapshot.backlog = Some(Backlog { outbox_unpublished: 2, dead_letters: 1, slot_lag_bytes: None });
        let f = run.findings();
        assert_eq!(f.count(Anomaly::Backlog), Some(3));
        assert_eq!(f.dead_letters, Some(1));
        assert_eq!(f.verdict, Verdict::Inconsistent);
    }

    #[test]
    fn an_unreadable_topic_makes_the_verdict_unknown() {
        let mut run = Run::publishing();
        run.snapshot.topic = Some(Err("broker unreachable".into()));
        let f = run.findings();
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.reasons[0].contains("broker unreachable"));
        assert_eq!(f.count(Anomaly::Lost), None);
    }

    #[test]
    fn pool_probe_figures() {
        let mut run = Run::publishing();
        for (i, (ms, timeout)) in [(1.0, false), (2.0, false), (1000.0, true)].into_iter().enumerate() {
            run.history.push(Event::Probe(ProbeSample {
                at: i as u64,
                elapsed_ms: ms,
                acquire_timeout: timeout,
                failed: timeout,
            }));
        }
        let f = run.findings();
        assert_eq!((f.pool.probes, f.pool.acquire_timeouts), (3, 1));
        assert_eq!(f.pool.unrelated_p50_ms, Some(2.0));
        assert_eq!(f.pool.unrelated_p99_ms, Some(1000.0));
    }

    #[test]
    fn event_lag_runs_from_commit_to_first_delivery() {
        let mut run = Run::publishing();
        run.write(1, Some(Told::ok()), Some(Told::ok()));
        run.commit(1, 1);
        run.publish(1, 1);
        run.publish(1, 1);
        let f = run.findings();
        // Commit acknowledged at 30, first delivery at clock (50) + 5.
        assert_eq!(f.latency.event_lag_p50, Some(25.0));
        // Begin at 10, last leg at 50.
        assert_eq!(f.latency.write_p99, Some(40.0));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile(&mut [], 50.0), None);
        assert_eq!(percentile(&mut [7.0], 99.0), Some(7.0));
    }
}
