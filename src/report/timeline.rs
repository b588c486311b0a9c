//! The run on its clock, for the picture (`--html`) and the JSON: every
//! order with what its writer was told and what became of it, and per
//! product how the database's version moved and what the downstream
//! consumer and the cache believed meanwhile.
//!
//! Pure: built from the history and the snapshot, with the reconciler's own
//! rules (an order is *lost* when it is committed and never on the topic,
//! a *ghost* when it is on the topic and never committed, …), so that the
//! marks of a picture add up to the counts of its table —
//! `tests/html.rs` checks that they do.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::history::{write_records, Event, Events, Leg, Millis, OrderId, Outcome};
use crate::names::Strategy;
use crate::snapshot::Snapshot;

/// Everything that happened during one run, on the run's clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Whether the strategy puts events on a topic (the consumer's view and
    /// the orders' deliveries apply).
    pub publishes: bool,
    /// Whether the strategy has a cache (the cache's view applies).
    pub caches: bool,
    /// Every order the writers began, in the order they began.
    pub orders: Vec<OrderMark>,
    /// Per product, the database's versions and what others believed.
    pub products: Vec<ProductTimeline>,
    /// Crashes and restarts, as they happened.
    pub crashes: Vec<CrashMark>,
}

/// What became of an order: the colour of its mark. When an order is an
/// example of several anomalies, the one that matters most for the lesson
/// wins (lost or ghost first); [`OrderMark::anomalies`] lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Committed and on the topic once: everything worked.
    Delivered,
    /// Committed, for a strategy that publishes nothing (cache-aside).
    Committed,
    /// Never committed, never published: a clean failure.
    RolledBack,
    /// Committed, never on the topic.
    Lost,
    /// On the topic, never committed.
    Ghost,
    /// On the topic more than once.
    Duplicate,
    /// The writer was told a leg was unknown, and it happened.
    Recovered,
    /// The writer was told a leg failed, and it happened.
    FalseFailure,
    /// The topic could not be read, so what became of it is not known.
    Unknown,
}

impl Fate {
    /// Every fate, in legend order.
    pub const ALL: [Fate; 9] = [
        Fate::Delivered,
        Fate::Committed,
        Fate::RolledBack,
        Fate::Lost,
        Fate::Ghost,
        Fate::Duplicate,
        Fate::Recovered,
        Fate::FalseFailure,
        Fate::Unknown,
    ];

    /// The JSON name (`false_failure`).
    pub fn key(self) -> &'static str {
        match self {
            Fate::Delivered => "delivered",
            Fate::Committed => "committed",
            Fate::RolledBack => "rolled_back",
            Fate::Lost => "lost",
            Fate::Ghost => "ghost",
            Fate::Duplicate => "duplicate",
            Fate::Recovered => "recovered",
            Fate::FalseFailure => "false_failure",
            Fate::Unknown => "unknown",
        }
    }

    /// Words for a legend.
    pub fn describe(self) -> &'static str {
        match self {
            Fate::Delivered => "delivered: committed, on the topic once",
            Fate::Committed => "committed: nothing is published",
            Fate::RolledBack => "rolled back: never committed, never published",
            Fate::Lost => "lost: committed, never on the topic",
            Fate::Ghost => "ghost: on the topic, never committed",
            Fate::Duplicate => "duplicate: on the topic more than once",
            Fate::Recovered => "recovered: told unknown, and it happened",
            Fate::FalseFailure => "false failure: told fail, and it happened",
            Fate::Unknown => "unknown: the topic could not be read",
        }
    }
}

/// One leg of an order as its writer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegMark {
    pub outcome: Outcome,
    /// When the writer learned it; `None` if it never did (a crash).
    pub at: Option<Millis>,
}

/// One order: a mark on the picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderMark {
    pub order_id: OrderId,
    pub product_id: i32,
    pub delta: i32,
    pub writer: u32,
    pub begun_at: Millis,
    /// When the writer learned its last leg's outcome; `None` if it never
    /// learned one of them (it crashed first).
    pub ended_at: Option<Millis>,
    /// What the writer was told, per leg.
    pub legs: BTreeMap<Leg, LegMark>,
    /// The version the database gave the order; `None`: not committed.
    pub version: Option<i64>,
    /// When the downstream consumer first received its event.
    pub delivered_at: Option<Millis>,
    /// How many times its event is on the topic; `None` where nothing is
    /// published or the topic could not be read.
    pub on_topic: Option<u64>,
    pub fate: Fate,
    /// Every anomaly this order counts toward, by its JSON name.
    pub anomalies: Vec<String>,
}

/// A value of a product at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub at: Millis,
    pub version: i64,
    pub quantity: i64,
}

/// One product over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductTimeline {
    pub product_id: i32,
    /// The database's versions, each from the moment its writer learned of
    /// the commit (for a commit told unknown: when the writer gave up),
    /// starting with version 0 at 0 ms.
    pub database: Vec<Point>,
    /// What the downstream consumer believed: a point each time its view of
    /// the product changed. Empty where nothing is published.
    pub consumer: Vec<Point>,
    /// What readers were served from the cache (cache hits).
    pub cache: Vec<Point>,
    /// What readers put into the cache after a miss (cache fills).
    pub cache_fills: Vec<Point>,
}

/// A crash or a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashMark {
    pub at: Millis,
    pub component: String,
    pub restarted: bool,
}

/// Builds the timeline of a run of `strategy`.
pub fn timeline(history: &Events, snapshot: &Snapshot, strategy: Strategy) -> Timeline {
    let publishes = strategy.publishes();
    let records = write_records(history);
    let committed: HashMap<OrderId, i64> = snapshot.orders.iter().map(|o| (o.order_id, o.version)).collect();
    // Per order, how many times it is on the topic; `None`: not known.
    // A topic not read whole proves no absence: then no fate rests on it.
    let on_topic: Option<HashMap<OrderId, u64>> = match &snapshot.topic {
        Some(Ok(read)) if read.missing().is_empty() => {
            let mut counts = HashMap::new();
            for r in &read.records {
                if let Ok(e) = &r.event {
                    *counts.entry(e.order_id).or_insert(0) += 1;
                }
            }
            Some(counts)
        }
        _ => None,
    };
    let reordered = reordered_orders(snapshot);
    let first_seen = snapshot.downstream.as_ref().map(|d| &d.first_seen);

    let orders = records
        .iter()
        .map(|r| {
            let id = r.order.order_id;
            let version = committed.get(&id).copied();
            let topic = if publishes { on_topic.as_ref().map(|t| t.get(&id).copied().unwrap_or(0)) } else { None };
            let legs: BTreeMap<Leg, LegMark> =
                r.legs.iter().map(|(leg, l)| (*leg, LegMark { outcome: l.told.outcome, at: l.completed_at })).collect();
            let ended_at =
                r.legs.values().map(|l| l.completed_at).collect::<Option<Vec<_>>>().and_then(|v| v.into_iter().max());
            // Which legs happened, as the reconciler decides it: the database
            // leg by the orders table, the topic leg by the topic.
            let happened = |leg: Leg| match leg {
                Leg::Db => Some(version.is_some()),
                Leg::Topic => on_topic.as_ref().map(|t| t.contains_key(&id)),
                Leg::Cache => None,
            };
            let told_but_happened = |outcome: Outcome| {
                r.legs.iter().any(|(leg, l)| l.told.outcome == outcome && happened(*leg) == Some(true))
            };
            let mut anomalies = Vec::new();
            let lost = version.is_some() && topic == Some(0);
            let ghost = version.is_none() && topic.is_some_and(|n| n > 0);
            let duplicate = topic.is_some_and(|n| n > 1);
            let recovered = told_but_happened(Outcome::Unknown);
            let false_failure = told_but_happened(Outcome::Fail);
            for (is, key) in [
                (lost, "lost"),
                (ghost, "ghost"),
                (duplicate, "duplicate"),
                (reordered.contains(&id), "reordered"),
                (recovered, "recovered"),
                (false_failure, "false_failure"),
            ] {
                if is {
                    anomalies.push(key.to_string());
                }
            }
            let fate = if publishes && topic.is_none() {
                Fate::Unknown
            } else if lost {
                Fate::Lost
            } else if ghost {
                Fate::Ghost
            } else if false_failure {
                Fate::FalseFailure
            } else if duplicate {
                Fate::Duplicate
            } else if recovered {
                Fate::Recovered
            } else if version.is_some() {
                if publishes {
                    Fate::Delivered
                } else {
                    Fate::Committed
                }
            } else {
                Fate::RolledBack
            };
            OrderMark {
                order_id: id,
                product_id: r.order.product_id,
                delta: r.order.delta,
                writer: r.order.writer,
                begun_at: r.begun_at,
                ended_at,
                legs,
                version,
                delivered_at: first_seen.and_then(|f| f.get(&id).copied()),
                on_topic: topic,
                fate,
                anomalies,
            }
        })
        .collect::<Vec<_>>();

    let crashes = history
        .whole()
        .filter_map(|e| match e {
            Event::Crash { at, component, restarted } => {
                Some(CrashMark { at: *at, component: component.clone(), restarted: *restarted })
            }
            _ => None,
        })
        .collect();

    Timeline { publishes, caches: strategy.caches(), products: products(history, snapshot, &orders), orders, crashes }
}

/// Orders whose first delivery carried a lower version than one already on
/// the topic for the product: the reconciler's `reordered`.
fn reordered_orders(snapshot: &Snapshot) -> HashSet<OrderId> {
    let mut found = HashSet::new();
    let Some(Ok(read)) = &snapshot.topic else { return found };
    let mut seen = HashSet::new();
    let mut highest: HashMap<i32, i64> = HashMap::new();
    for r in &read.records {
        let Ok(e) = &r.event else { continue };
        if !seen.insert(e.order_id) {
            continue;
        }
        let top = highest.entry(e.product_id).or_insert(i64::MIN);
        if e.version < *top {
            found.insert(e.order_id);
        } else {
            *top = e.version;
        }
    }
    found
}

/// Per product: the database's steps, the consumer's and the cache's.
fn products(history: &Events, snapshot: &Snapshot, orders: &[OrderMark]) -> Vec<ProductTimeline> {
    let mut by_product: BTreeMap<i32, ProductTimeline> = snapshot
        .stock
        .iter()
        .map(|s| (s.product_id, ProductTimeline { product_id: s.product_id, ..Default::default() }))
        .collect();

    // The database: each committed order's version, when its writer learned
    // of the commit. Version 0 is the seeded stock, before the first order.
    let mut commits: BTreeMap<i32, Vec<(Point, i32)>> = BTreeMap::new();
    let quantities: HashMap<OrderId, i64> = snapshot.orders.iter().map(|o| (o.order_id, o.quantity)).collect();
    for o in orders {
        let (Some(version), Some(quantity)) = (o.version, quantities.get(&o.order_id)) else { continue };
        let at = o.legs.get(&Leg::Db).and_then(|l| l.at).or(o.ended_at).unwrap_or(o.begun_at);
        commits.entry(o.product_id).or_default().push((Point { at, version, quantity: *quantity }, o.delta));
    }
    for (product_id, timeline) in by_product.iter_mut() {
        let mut points = commits.remove(product_id).unwrap_or_default();
        points.sort_by_key(|(p, _)| p.version);
        // The seeded quantity: before the first order's change, or, if no
        // order committed, what the stock row still holds.
        let initial = match points.first() {
            Some((first, delta)) => first.quantity - i64::from(*delta),
            None => snapshot.stock.iter().find(|s| s.product_id == *product_id).map_or(0, |s| s.quantity),
        };
        timeline.database.push(Point { at: 0, version: 0, quantity: initial });
        timeline.database.extend(points.into_iter().map(|(p, _)| p));
    }

    // The consumer: it keeps the highest version it has received, so its
    // view changes when an event newer than all before it arrives.
    if let (Some(Ok(read)), Some(downstream)) = (&snapshot.topic, &snapshot.downstream) {
        let mut arrivals: BTreeMap<i32, Vec<Point>> = BTreeMap::new();
        let mut counted = HashSet::new();
        for r in &read.records {
            let Ok(e) = &r.event else { continue };
            let Some(at) = downstream.first_seen.get(&e.order_id) else { continue };
            if counted.insert(e.order_id) {
                arrivals.entry(e.product_id).or_default().push(Point {
                    at: *at,
                    version: e.version,
                    quantity: e.quantity,
                });
            }
        }
        for (product_id, mut points) in arrivals {
            points.sort_by_key(|p| p.at);
            let timeline =
                by_product.entry(product_id).or_insert_with(|| ProductTimeline { product_id, ..Default::default() });
            let mut highest = i64::MIN;
            for p in points {
                if p.version > highest {
                    highest = p.version;
                    timeline.consumer.push(p);
                }
            }
        }
    }

    // The cache, as readers found it and filled it.
    for event in history.whole() {
        let Event::Read(r) = event else { continue };
        let Some(served) = r.served else { continue };
        let point = Point { at: r.at, version: served.version, quantity: served.quantity };
        if let Some(timeline) = by_product.get_mut(&r.product_id) {
            if r.from_cache {
                timeline.cache.push(point);
            } else if r.filled_cache {
                timeline.cache_fills.push(point);
            }
        }
    }
    by_product.into_values().collect()
}
