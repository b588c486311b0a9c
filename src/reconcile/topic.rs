//! The topic against the orders table: lost, ghost, duplicate, reordered,
//! and which legs the writers were wrong about.

use std::collections::HashMap;

use super::{Example, Tally};
use crate::history::{IdSet, Leg, Outcome, WriteRecord};
use crate::snapshot::{OrderRow, TopicRecord};

/// The orders the topic holds a record of (a decodable one).
pub(super) fn delivered(topic: &[TopicRecord]) -> IdSet {
    topic.iter().filter_map(|record| record.event.as_ref().ok()).map(|event| event.order_id).collect()
}

/// Legs that happened although the writer was told otherwise: `recovered`
/// (told Unknown) and `false_failure` (told Fail). The database leg is
/// decided by the orders table; the topic leg by the topic, when it was read
/// (`on_topic`). A cache delete leaves no trace to check it by.
///
/// With `topic_incomplete` (the read may have missed records), a topic leg
/// seen on the topic still happened, but one not seen may have: then the
/// tally is marked unknown, its count what was seen.
pub(super) fn legs(
    records: &[WriteRecord],
    committed: &IdSet,
    on_topic: Option<&IdSet>,
    topic_incomplete: Option<&str>,
) -> (Tally, Tally) {
    let mut recovered = Tally::default();
    let mut false_failure = Tally::default();
    for record in records {
        for (leg, leg_record) in &record.legs {
            let happened = match leg {
                Leg::Db => Some(committed.contains(&record.order.order_id)),
                Leg::Topic => on_topic.map(|t| t.contains(&record.order.order_id)),
                Leg::Cache => None,
            };
            let tally = match leg_record.told.outcome {
                Outcome::Unknown => &mut recovered,
                Outcome::Fail => &mut false_failure,
                Outcome::Ok => continue,
            };
            if happened == Some(true) {
                tally.add(Example {
                    order_id: Some(record.order.order_id),
                    product_id: record.order.product_id,
                    leg: Some(*leg),
                    detail: format!(
                        "{} leg told {}{}, but it happened",
                        leg.as_str(),
                        leg_record.told.outcome.as_str(),
                        leg_record.told.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                });
            } else if *leg == Leg::Topic {
                // Not seen on a topic that may be incomplete: undecided.
                if let Some(why) = topic_incomplete {
                    tally.unknown.get_or_insert_with(|| why.to_string());
                }
            }
        }
    }
    (recovered, false_failure)
}

/// Committed orders that never reached the topic.
pub(super) fn lost(orders: &[OrderRow], on_topic: &IdSet) -> Tally {
    let mut tally = Tally::default();
    for order in orders {
        if !on_topic.contains(&order.order_id) {
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
pub(super) fn walk_topic(topic: &[TopicRecord], committed: &IdSet) -> (Tally, Tally, Tally) {
    let mut ghost = Tally::default();
    let mut duplicate = Tally::default();
    let mut reordered = Tally::default();
    let mut seen = IdSet::default();
    let mut highest: HashMap<i32, i64> = HashMap::new();
    for record in topic {
        let Ok(event) = &record.event else { continue };
        let first = seen.insert(event.order_id);
        // Where the record is, in words: written only for an example (a
        // million records would be a million strings).
        let at = || format!("partition {} offset {}", record.partition, record.offset);
        if !first {
            duplicate.add(Example {
                order_id: Some(event.order_id),
                product_id: event.product_id,
                leg: None,
                detail: format!("delivered again at {}", at()),
            });
            continue;
        }
        if !committed.contains(&event.order_id) {
            ghost.add(Example {
                order_id: Some(event.order_id),
                product_id: event.product_id,
                leg: None,
                detail: format!("on the topic at {} as version {}, never committed", at(), event.version),
            });
        }
        let top = highest.entry(event.product_id).or_insert(i64::MIN);
        if event.version < *top {
            reordered.add(Example {
                order_id: Some(event.order_id),
                product_id: event.product_id,
                leg: None,
                detail: format!("version {} arrived after version {} ({})", event.version, *top, at()),
            });
        } else {
            *top = event.version;
        }
    }
    (ghost, duplicate, reordered)
}
