//! Reorderings, shown: what the version check saved.
//!
//! Kafka keeps a key's records in order, within their partition, and nothing
//! more. Events keyed by their product arrive in the order they were
//! written; keyed by anything else (the `wrong-key` scenario keys them by
//! order), one product's events are spread over every partition and a
//! consumer reads them in whatever order its fetches bring them. A
//! redelivery is out of order too: an old version, again, after newer ones.
//!
//! The downstream consumer checks versions and ignores an old one. Beside
//! it, it keeps what a consumer that applies events in arrival order would
//! hold (last write wins). This compares that view with the database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::StockAfter;
use crate::snapshot::DownstreamState;

/// What arrived out of order, and what it would have cost a consumer that
/// does not check versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalOrder {
    /// Deliveries of a version older than one already delivered for the
    /// same product (redeliveries of old versions included).
    pub arrived_late: u64,
    /// Products the last-write-wins consumer ends up wrong about.
    pub drifted: u64,
    /// Products in the database.
    pub products: u64,
    /// The first product it is wrong about, in words.
    pub example: Option<String>,
}

impl ArrivalOrder {
    /// Compares the last-write-wins view with the database (`truth`). A
    /// product nothing happened to has no events, and agrees.
    pub fn of(downstream: &DownstreamState, truth: &BTreeMap<i32, StockAfter>) -> ArrivalOrder {
        let mut found =
            ArrivalOrder { arrived_late: downstream.arrived_late, products: truth.len() as u64, ..Default::default() };
        for (product_id, db) in truth {
            let held = downstream.last_arrived.get(product_id).copied();
            let agrees = match held {
                Some(held) => held == *db,
                None => db.version == 0,
            };
            if !agrees {
                found.drifted += 1;
                found.example.get_or_insert_with(|| {
                    format!(
                        "product {product_id}: it would hold {}, the database {}",
                        super::show(held),
                        super::show(Some(*db))
                    )
                });
            }
        }
        found
    }

    /// One sentence for the report, e.g. "14 deliveries arrived after a
    /// newer version of their product, and the version check ignored them;
    /// a consumer that applied events in arrival order (last write wins)
    /// would end with 4 of 6 products wrong (product 3: …)".
    pub fn describe(&self) -> String {
        let late = match self.arrived_late {
            1 => "1 delivery arrived after a newer version of its product".to_string(),
            n => format!("{n} deliveries arrived after a newer version of their product"),
        };
        let cost = match self.drifted {
            0 => "a consumer that applied events in arrival order (last write wins) would have gone back to an \
                  older version each time, and still ended equal to the database (each product's last delivery was its \
                  current state)"
                .to_string(),
            n => format!(
                "a consumer that applied events in arrival order (last write wins) would end with {n} of {} \
                 products wrong{}",
                self.products,
                self.example.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        };
        format!("{late}, and the version check ignored them; {cost}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(quantity: i64, version: i64) -> StockAfter {
        StockAfter { quantity, version }
    }

    #[test]
    fn last_write_wins_is_wrong_where_an_old_version_arrived_last() {
        let truth = BTreeMap::from([(1, at(990, 2)), (2, at(995, 1)), (3, at(1000, 0))]);
        // Product 1's version 1 arrived after its version 2.
        let downstream = DownstreamState {
            last_arrived: BTreeMap::from([(1, at(995, 1)), (2, at(995, 1))]),
            arrived_late: 1,
            ..Default::default()
        };
        let found = ArrivalOrder::of(&downstream, &truth);
        assert_eq!(found.drifted, 1);
        assert_eq!(found.products, 3);
        assert_eq!(
            found.describe(),
            "1 delivery arrived after a newer version of its product, and the version check ignored them; a \
             consumer that applied events in arrival order (last write wins) would end with 1 of 3 products \
             wrong (product 1: it would hold 995 (v1), the database 990 (v2))"
        );
    }

    #[test]
    fn in_order_arrivals_leave_last_write_wins_right() {
        let truth = BTreeMap::from([(1, at(990, 2))]);
        let downstream = DownstreamState { last_arrived: BTreeMap::from([(1, at(990, 2))]), ..Default::default() };
        let found = ArrivalOrder::of(&downstream, &truth);
        assert_eq!((found.arrived_late, found.drifted, found.example), (0, 0, None));
    }
}
