//! The event every strategy announces: `StockChanged`, keyed by product
//! (unless a scenario chooses the wrong key on purpose: [`EventKey`]).
//!
//! The value is JSON and carries the order id, so that anyone can count the
//! topic with a console consumer (`tansu cat consume <topic> | jq '.[].value.order_id'`,
//! or `kcat`/`rpk` against Redpanda) and
//! get the same figures as the reconciler.

use serde::{Deserialize, Serialize};

use crate::history::{Order, OrderId, StockAfter};

/// What an event's record key is, and so which events share a partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKey {
    /// The product: the entity whose state the event changes. The right key.
    #[default]
    Product,
    /// The order: a key of its own for every event, so one product's events
    /// land in several partitions (the `wrong-key` scenario's mistake).
    Order,
}

impl EventKey {
    pub const ALL: [EventKey; 2] = [EventKey::Product, EventKey::Order];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKey::Product => "product",
            EventKey::Order => "order",
        }
    }
}

/// A product's stock changed because of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChanged {
    pub order_id: OrderId,
    pub product_id: i32,
    /// Change in stock (negative for an order).
    pub delta: i32,
    /// The product's quantity after the change.
    pub quantity: i64,
    /// The product's version after the change; grows by one per change, so a
    /// consumer can ignore duplicates and stale reorderings.
    pub version: i64,
}

impl StockChanged {
    pub fn new(order: &Order, after: StockAfter) -> StockChanged {
        StockChanged {
            order_id: order.order_id,
            product_id: order.product_id,
            delta: order.delta,
            quantity: after.quantity,
            version: after.version,
        }
    }

    /// The record key. Kafka keeps order only within a partition, and a
    /// record's key decides its partition: keyed by the product id (the
    /// entity the event changes), one product's events share a partition and
    /// arrive in the order they were written. Keyed by the order id, they
    /// spread over every partition and nothing keeps their order.
    pub fn key(&self, by: EventKey) -> String {
        match by {
            EventKey::Product => self.product_id.to_string(),
            EventKey::Order => self.order_id.to_string(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("StockChanged always serialises")
    }

    pub fn from_json(bytes: &[u8]) -> Result<StockChanged, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn after(&self) -> StockAfter {
        StockAfter { quantity: self.quantity, version: self.version }
    }
}
