//! The history and the reconciler at scale: a generated run of N orders
//! (every one committed, published once and consumed, as a calm outbox run
//! has them), appended through the same [`History`] calls the writers
//! make, and a snapshot that matches it. Time and memory come from the
//! counting allocator (`alloc.rs`) and the wall clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dualwrite::event::{EventKey, StockChanged};
use dualwrite::history::{Clock, History, IdMap, Leg, Order, ReadSample, StockAfter, Told};
use dualwrite::reconcile::{reconcile, Verdict};
use dualwrite::snapshot::{DownstreamState, DrainReport, OrderRow, Snapshot, StockRow, TopicRead, TopicRecord};
use uuid::Uuid;

use crate::alloc;

const PRODUCTS: i32 = 6;

/// What one size measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub orders: u64,
    /// Heap the history holds once every order is in it.
    pub history_bytes: usize,
    /// Heap the snapshot holds (orders table, topic records, projection).
    pub snapshot_bytes: usize,
    /// `reconcile` as the runner calls it (taking the events included).
    pub reconcile: Duration,
    /// The most heap the process held during the reconcile, and how much of
    /// it the reconcile itself added on top of the history and snapshot.
    pub peak_bytes: usize,
    pub reconcile_extra_bytes: usize,
    /// How long the reconcile ran on a CPU (Linux's schedstat; `None`
    /// elsewhere): on a machine whose cores are shared, the wall time also
    /// counts the time it waited for one.
    pub reconcile_on_cpu: Option<Duration>,
}

impl Measured {
    pub fn history_per_order(&self) -> f64 {
        self.history_bytes as f64 / self.orders as f64
    }
    pub fn peak_per_order(&self) -> f64 {
        self.peak_bytes as f64 / self.orders as f64
    }
}

/// A well-mixed id for order `n` (splitmix64, twice), as random ids are.
fn id(n: u64) -> Uuid {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    Uuid::from_u64_pair(mix(2 * n), mix(2 * n + 1))
}

/// Nanoseconds this thread has run on a CPU (the first field of
/// `/proc/thread-self/schedstat`), where Linux says.
fn on_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
}

/// Generates `orders` orders, reconciles them, and says what it took.
pub fn measure(orders: u64) -> Measured {
    let base = alloc::current();
    // The history, as four writer tasks would append it (a read every 100
    // orders: ten reads a second at 1,000 orders a second).
    let history = History::new(Clock::start());
    let mut version = [0i64; PRODUCTS as usize];
    let mut quantity = [1_000_000i64; PRODUCTS as usize];
    let mut placed = Vec::with_capacity(orders as usize);
    for n in 0..orders {
        let product_id = (n % PRODUCTS as u64) as i32 + 1;
        let p = (product_id - 1) as usize;
        let order =
            Order { order_id: id(n), product_id, delta: -1 - (n % 5) as i32, writer: (n % 4) as u32, seq: n / 4 };
        version[p] += 1;
        quantity[p] += i64::from(order.delta);
        let after = StockAfter { quantity: quantity[p], version: version[p] };
        history.begin(&order);
        history.invoke(order.order_id, Leg::Db);
        history.wrote(order.order_id, after);
        history.complete(order.order_id, Leg::Db, Told::ok());
        history.invoke(order.order_id, Leg::Topic);
        history.complete(order.order_id, Leg::Topic, Told::ok());
        if n % 100 == 0 {
            history.read(ReadSample {
                at: history.clock().now(),
                product_id,
                served: Some(after),
                from_cache: false,
                filled_cache: false,
                truth: Some(after),
                projection: Some(after),
                read_ms: Some(1.0),
            });
        }
        placed.push((order, after));
    }
    // The generator's own list of what it placed is not the history's: it
    // is counted out here, and dropped before the snapshot is measured.
    let placed_bytes = placed.capacity() * std::mem::size_of::<(Order, StockAfter)>();
    let history_bytes = alloc::current() - base - placed_bytes;

    // The snapshot that matches it: every order committed, on the topic
    // once, in its product's partition, and seen by the consumer.
    let before_snapshot = alloc::current();
    let mut rows = Vec::with_capacity(placed.len());
    let mut records = Vec::with_capacity(placed.len());
    let mut next_offset = [0i64; PRODUCTS as usize];
    let mut first_seen = IdMap::with_capacity_and_hasher(placed.len(), Default::default());
    for (order, after) in &placed {
        let p = (order.product_id - 1) as usize;
        rows.push(OrderRow {
            order_id: order.order_id,
            product_id: order.product_id,
            delta: order.delta,
            quantity: after.quantity,
            version: after.version,
        });
        let event = StockChanged::new(order, *after);
        records.push(TopicRecord {
            partition: p as i32,
            offset: next_offset[p],
            key: Some(event.key(EventKey::Product)),
            event: Ok(event),
        });
        next_offset[p] += 1;
        first_seen.insert(order.order_id, history.clock().now() + 5);
    }
    drop(placed);
    let stock: Vec<StockRow> = (0..PRODUCTS as usize)
        .map(|p| StockRow { product_id: p as i32 + 1, quantity: quantity[p], version: version[p] })
        .collect();
    let projection: BTreeMap<i32, StockAfter> =
        stock.iter().map(|s| (s.product_id, StockAfter { quantity: s.quantity, version: s.version })).collect();
    let snapshot = Snapshot {
        orders: rows,
        stock,
        topic: Some(Ok(TopicRead::assumed_complete(records, PRODUCTS))),
        cache: None,
        downstream: Some(DownstreamState {
            last_arrived: projection.clone(),
            projection,
            first_seen,
            records: orders,
            discarded: 0,
            arrived_late: 0,
        }),
        backlog: None,
        drain: DrainReport::complete(0),
    };
    let snapshot_bytes = (alloc::current() + placed_bytes).saturating_sub(before_snapshot);

    // The reconcile, as `Run::reconcile` does it: the events taken from
    // the history, then the pure function over them.
    let held = alloc::current();
    alloc::reset_peak();
    let started = Instant::now();
    let cpu_before = on_cpu();
    let events = history.take();
    let findings = reconcile(&events, &snapshot);
    let took = started.elapsed();
    let reconcile_on_cpu = on_cpu().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let peak = alloc::peak();
    // Not a timing assertion: the generated run is consistent by
    // construction, so anything else means the generator is wrong and the
    // figures above are not about a real reconcile.
    assert_eq!(findings.verdict, Verdict::Consistent, "the generated run reconciles cleanly: {:?}", findings.reasons);
    assert_eq!(findings.orders.committed, orders);
    drop(events);
    Measured {
        orders,
        history_bytes,
        snapshot_bytes,
        reconcile: took,
        peak_bytes: peak - base,
        reconcile_extra_bytes: peak - held,
        reconcile_on_cpu,
    }
}
