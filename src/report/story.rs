//! The story of an example: one anomaly told from the history's point of
//! view and the stores', so that a number in the table becomes something that
//! happened to one order.
//!
//! > order 3f2a9c1e (product 4, −2 units) began at 12.3 s · db: ok at 12.4 s ·
//! > topic: fail at 17.4 s — Local: Message timed out (during kafka
//! > reset_peer 12.0–15.0 s) · now: committed as version 57, never on the
//! > topic → lost
//!
//! Pure: built from the history, the snapshot, the findings and the schedule.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::history::{write_records, Event, Events, Leg, Millis, OrderId, WriteRecord};
use crate::reconcile::{Anomaly, Findings};
use crate::scenario::schedule::Schedule;
use crate::snapshot::Snapshot;

use super::seconds;

/// One example told in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Story {
    pub anomaly: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    pub product_id: i32,
    pub text: String,
}

/// The story of the first example of every anomaly found.
pub fn stories(history: &Events, snapshot: &Snapshot, findings: &Findings, schedule: &Schedule) -> Vec<Story> {
    let records = write_records(history);
    let by_id: HashMap<OrderId, &WriteRecord> = records.iter().map(|r| (r.order.order_id, r)).collect();
    let teller = Teller { history, records: &records, by_id, snapshot, schedule };
    let mut stories = Vec::new();
    for (anomaly, tally) in &findings.anomalies {
        let Some(example) = tally.examples.first() else { continue };
        let text = match (anomaly, example.order_id) {
            (Anomaly::Backlog, _) => format!("{} → backlog", example.detail),
            (_, Some(order_id)) => teller.order(*anomaly, order_id, &example.detail),
            (_, None) => teller.product(*anomaly, example.product_id, &example.detail),
        };
        stories.push(Story {
            anomaly: anomaly.key(),
            order_id: example.order_id,
            product_id: example.product_id,
            text,
        });
    }
    stories
}

struct Teller<'a> {
    history: &'a Events,
    records: &'a [WriteRecord],
    by_id: HashMap<OrderId, &'a WriteRecord>,
    snapshot: &'a Snapshot,
    schedule: &'a Schedule,
}

/// `3f2a9c1e`: enough of an order id to find it with `grep`.
fn short(id: OrderId) -> String {
    id.simple().to_string()[..8].to_string()
}

fn arrow(anomaly: Anomaly) -> &'static str {
    match anomaly {
        Anomaly::Lost => "→ lost",
        Anomaly::Ghost => "→ ghost",
        Anomaly::Duplicate => "→ duplicate",
        Anomaly::Reordered => "→ reordered",
        Anomaly::Recovered => "→ recovered (the writer could not know it succeeded)",
        Anomaly::FalseFailure => "→ false failure",
        Anomaly::StaleCache => "→ stale cache",
        Anomaly::ProjectionDrift => "→ projection drift",
        Anomaly::Backlog => "→ backlog",
    }
}

impl Teller<'_> {
    /// Fault windows on `link` and crashes overlapping `[from, until]` on the
    /// run's clock.
    fn circumstances(&self, link: &str, from: Millis, until: Millis) -> Vec<String> {
        let (a, b) = (Duration::from_millis(from), Duration::from_millis(until.max(from)));
        let mut found: Vec<String> = self
            .schedule
            .windows
            .iter()
            .filter(|w| w.link == link && w.from <= b && a < w.until)
            .map(|w| w.describe())
            .collect();
        for event in self.history.whole() {
            if let Event::Crash { at, component, restarted: false } = event {
                if *at >= from && *at <= until.max(from) {
                    found.push(format!("{component} crashed at {}", seconds(*at)));
                }
            }
        }
        found
    }

    /// Crashes and restarts of the relay or connector, for duplicates.
    fn background_crashes(&self) -> Vec<String> {
        self.history
            .whole()
            .filter_map(|e| match e {
                Event::Crash { at, component, restarted } if component != "writer" => Some(format!(
                    "the {component} {} at {}",
                    if *restarted { "restarted" } else { "crashed" },
                    seconds(*at)
                )),
                _ => None,
            })
            .collect()
    }

    /// What each leg of `record` was told, with the faults around it.
    fn legs(&self, record: &WriteRecord) -> Vec<String> {
        let mut parts = Vec::new();
        for (leg, l) in &record.legs {
            let when = match l.completed_at {
                Some(at) => format!("at {}", seconds(at)),
                None => "never answered".to_string(),
            };
            let error = l.told.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default();
            // The link this leg crossed: the app's own.
            let link = match leg {
                Leg::Db => crate::links::POSTGRES,
                Leg::Topic => crate::links::KAFKA,
                Leg::Cache => crate::links::REDIS,
            };
            let during = self.circumstances(link, l.invoked_at, l.completed_at.unwrap_or(l.invoked_at));
            let during = if during.is_empty() { String::new() } else { format!(" (during {})", during.join(", ")) };
            parts.push(format!("{}: {} {when}{error}{during}", leg.as_str(), l.told.outcome.as_str()));
        }
        // Where the app publishes after committing (naive), an order without
        // a topic leg was never published: say why. Where it never publishes
        // (the relay or connector does), a missing topic leg means nothing.
        let app_publishes = self.records.iter().any(|r| r.legs.contains_key(&Leg::Topic));
        let db_not_ok = record.legs.get(&Leg::Db).is_some_and(|db| db.told.outcome != crate::history::Outcome::Ok);
        if app_publishes && !record.legs.contains_key(&Leg::Topic) && db_not_ok {
            parts.push("topic: not attempted (the database leg did not succeed)".into());
        }
        parts
    }

    /// What the stores hold for an order now.
    fn now(&self, order_id: OrderId) -> String {
        let db = match self.snapshot.orders.iter().find(|o| o.order_id == order_id) {
            Some(row) => format!("committed as version {}", row.version),
            None => "not in the database".to_string(),
        };
        let topic = match &self.snapshot.topic {
            Some(Ok(read)) => {
                let places: Vec<String> = read
                    .records
                    .iter()
                    .filter(|r| r.event.as_ref().is_ok_and(|e| e.order_id == order_id))
                    .map(|r| format!("p{}@{}", r.partition, r.offset))
                    .collect();
                match places.len() {
                    // Absence proves nothing on a topic not read whole.
                    0 if !read.missing().is_empty() => ", not among the records read".to_string(),
                    0 => ", never on the topic".to_string(),
                    1 => format!(", on the topic once ({})", places[0]),
                    n => format!(", on the topic {n} times ({})", places.join(", ")),
                }
            }
            _ => String::new(),
        };
        format!("{db}{topic}")
    }

    fn order(&self, anomaly: Anomaly, order_id: OrderId, detail: &str) -> String {
        let mut parts = Vec::new();
        match self.by_id.get(&order_id) {
            Some(record) => {
                parts.push(format!(
                    "order {} (product {}, {} units) began at {}",
                    short(order_id),
                    record.order.product_id,
                    record.order.delta,
                    seconds(record.begun_at)
                ));
                parts.extend(self.legs(record));
            }
            None => parts.push(format!("order {} appears in no writer's history", short(order_id))),
        }
        if matches!(anomaly, Anomaly::Duplicate) {
            parts.extend(self.background_crashes());
        }
        if matches!(anomaly, Anomaly::Reordered) {
            parts.push(detail.to_string());
        }
        parts.push(format!("now: {}", self.now(order_id)));
        format!("{} {}", parts.join(" · "), arrow(anomaly))
    }

    fn product(&self, anomaly: Anomaly, product_id: i32, detail: &str) -> String {
        let mut parts = vec![format!("product {product_id}: {detail}")];
        // The order that made the database's current version: its legs say
        // why the cache or the consumer did not follow.
        let db_version = self.snapshot.stock.iter().find(|s| s.product_id == product_id).map(|s| s.version);
        let last = self.records.iter().rev().find(|r| {
            r.order.product_id == product_id && r.after.map(|a| Some(a.version) == db_version).unwrap_or(false)
        });
        if let Some(record) = last {
            parts.push(format!(
                "its last order {} began at {}",
                short(record.order.order_id),
                seconds(record.begun_at)
            ));
            parts.extend(self.legs(record));
            if anomaly == Anomaly::StaleCache {
                if let Some(fill) = self.late_fill(product_id, record) {
                    parts.push(fill);
                }
            }
            if anomaly == Anomaly::ProjectionDrift {
                if let Some(ghost) = self.ghost_with_version(product_id, db_version) {
                    parts.push(ghost);
                }
            }
        }
        format!("{} {}", parts.join(" · "), arrow(anomaly))
    }

    /// A ghost event that carried the version the database later gave to a
    /// real change: the idempotent consumer, which keeps the highest version,
    /// took the ghost and ignored the real event as "not newer".
    fn ghost_with_version(&self, product_id: i32, version: Option<i64>) -> Option<String> {
        let Some(Ok(read)) = &self.snapshot.topic else { return None };
        let version = version?;
        read.records.iter().find_map(|r| {
            let event = r.event.as_ref().ok()?;
            let committed = self.snapshot.orders.iter().any(|o| o.order_id == event.order_id);
            (event.product_id == product_id && event.version == version && !committed).then(|| {
                format!(
                    "a ghost event (order {}, never committed) had already announced version {version} as {}, so \
                     the consumer, keeping the highest version, ignored the real one",
                    short(event.order_id),
                    event.quantity
                )
            })
        })
    }

    /// cache-aside's race: a reader that filled the cache with an older
    /// version after the last order's delete.
    fn late_fill(&self, product_id: i32, record: &WriteRecord) -> Option<String> {
        let deleted_at = record.legs.get(&Leg::Cache)?.completed_at?;
        let version = record.after?.version;
        self.history.whole().find_map(|e| match e {
            Event::Read(r)
                if r.product_id == product_id
                    && r.filled_cache
                    && r.at >= deleted_at
                    && r.served.is_some_and(|s| s.version < version) =>
            {
                let served = r.served.expect("checked");
                Some(format!(
                    "then a reader that had read version {} from the database filled the cache at {}, after the delete",
                    served.version,
                    seconds(r.at)
                ))
            }
            _ => None,
        })
    }
}
