//! The snapshot: what the stores hold once the run has healed and drained.
//!
//! The snapshot is the checker's final read, taken directly (not through the
//! fault proxy): every committed order and stock row from Postgres, every
//! record of the topic from its first offset, every cached key of the run,
//! the downstream consumer's view, and what is still waiting to be published.
//! Together with the history it is all the reconciler sees.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::db::{OrderRow, StockRow};
use crate::history::{Millis, OrderId, StockAfter};
use crate::kafka::topic::TopicRecord;

/// What the stores hold after drain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Every committed order (the `orders` table).
    pub orders: Vec<OrderRow>,
    /// Every product's stock row.
    pub stock: Vec<StockRow>,
    /// The whole topic. `None` when the strategy publishes nothing;
    /// `Some(Err)` when it could not be read (the verdict is then unknown).
    pub topic: Option<Result<Vec<TopicRecord>, String>>,
    /// Every cached product. `None` when the strategy has no cache.
    pub cache: Option<Result<Vec<CachedEntry>, String>>,
    /// The downstream consumer's state. `None` when nothing is published.
    pub downstream: Option<DownstreamState>,
    /// What is left to publish. `None` when the strategy has no relay or
    /// connector.
    pub backlog: Option<Backlog>,
    /// How the drain phase ended.
    pub drain: DrainReport,
}

/// One cached product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CachedEntry {
    pub product_id: i32,
    /// The cached value, or the raw text if dualwrite cannot read it.
    pub value: Result<StockAfter, String>,
}

/// The downstream consumer's state: an idempotent projection of the topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DownstreamState {
    /// Per product, the event with the highest version seen (older versions
    /// and duplicates are ignored).
    pub projection: BTreeMap<i32, StockAfter>,
    /// When each order's event was first delivered, on the run's clock.
    #[serde(skip)]
    pub first_seen: HashMap<OrderId, Millis>,
    /// Records delivered in total (duplicates included).
    pub records: u64,
}

/// What a relay or connector has not published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Outbox rows never marked published.
    pub outbox_unpublished: u64,
    /// Outbox rows the relay gave up on (permanent errors).
    pub dead_letters: u64,
    /// Bytes of WAL the replication slot has not confirmed.
    pub slot_lag_bytes: Option<u64>,
}

/// How the drain phase ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// Everything caught up before the drain timeout.
    pub completed: bool,
    pub waited_ms: Millis,
    /// What was still behind, if the drain timed out.
    pub behind: Option<String>,
}
