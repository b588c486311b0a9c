//! The downstream consumer: a service that believes what the topic says.
//!
//! It reads every partition of the run's topic from the beginning and keeps a
//! *projection*: each product's stock as the events describe it. It is
//! idempotent by version — an event whose version is not newer than what it
//! already holds is ignored — so duplicates and reorderings do not corrupt
//! it. What it cannot fix is an event that never arrives (a lost event) or
//! one that should not exist (a ghost); projection drift measures that.
//!
//! Readers sample its projection during the run ("db: 977 vs topic: 981"),
//! the drain phase waits for it to catch up, and the reconciler compares its
//! final state with the database.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use tokio::task::JoinHandle;

use crate::history::{Clock, StockAfter};
use crate::kafka::topic;
use crate::snapshot::DownstreamState;

#[derive(Debug, Default)]
struct Shared {
    state: DownstreamState,
    /// Per partition, the offset of the next record to read.
    next_offsets: BTreeMap<i32, i64>,
    /// Per partition, where the broker last signalled its end (a fetch
    /// answered with a high watermark equal to the fetch position), until a
    /// record arrives after it.
    end_at: BTreeMap<i32, i64>,
    /// The last error while consuming, for the drain report.
    last_error: Option<String>,
}

/// A downstream consumer that is fetching, not yet recording on a clock.
pub struct ReadyConsumer {
    consumer: StreamConsumer<crate::kafka::quiet::Quiet>,
    shared: Arc<Mutex<Shared>>,
}

impl ReadyConsumer {
    /// Starts recording what arrives, on the run's clock.
    pub fn start(self, clock: Clock) -> Downstream {
        let task = tokio::spawn(consume(self.consumer, self.shared.clone(), clock));
        Downstream { shared: self.shared, task }
    }
}

/// A running downstream consumer.
#[derive(Debug)]
pub struct Downstream {
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Downstream {
    /// Connects a consumer of `topic` from the beginning. It reaches the
    /// broker the same way every client does (through the `kafka` link), so
    /// during a Kafka fault it falls behind like any real consumer would.
    ///
    /// It returns once the consumer has fetched every partition to its end
    /// (or after a bound): the time a new consumer takes to find its
    /// partitions' leaders and start fetching would otherwise be charged to
    /// the first events' lag, as if the strategy were slow.
    pub async fn connect(bootstrap: &str, topic_name: &str) -> Result<ReadyConsumer, String> {
        // Nothing is published before the run's clock starts; should a
        // record arrive anyway, it is stamped on a clock of its own.
        let clock = Clock::start();
        let consumer = topic::assign_from_beginning_with_eof(bootstrap, topic_name, "dualwrite-downstream").await?;
        let partitions = consumer.assignment().map_err(|e| e.to_string())?.count();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut at_end = std::collections::BTreeSet::new();
        let ready = async {
            while at_end.len() < partitions {
                match consumer.recv().await {
                    Ok(message) => record(&shared, &message, clock),
                    Err(KafkaError::PartitionEOF(p)) => {
                        at_end.insert(p);
                        reached_end(&shared, p);
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(5), ready).await.is_err() {
            tracing::warn!("the downstream consumer was not fetching every partition after 5 s; starting anyway");
        }
        Ok(ReadyConsumer { consumer, shared })
    }

    /// What the consumer believes about one product right now.
    pub fn projection(&self, product_id: i32) -> Option<StockAfter> {
        self.shared.lock().expect("consumer mutex poisoned").state.projection.get(&product_id).copied()
    }

    /// Removes from `pending` the orders whose event the consumer has
    /// received, leaving those it has not: the live display's "not yet
    /// delivered". One lock for the whole set.
    pub fn retain_undelivered(&self, pending: &mut std::collections::HashSet<crate::history::OrderId>) {
        let shared = self.shared.lock().expect("consumer mutex poisoned");
        pending.retain(|id| !shared.state.first_seen.contains_key(id));
    }

    /// True when, for every partition in `high_watermarks`, the consumer has
    /// read up to the watermark *and* the broker's fetch has signalled the
    /// partition's end where the consumer is. Both: the watermark a broker
    /// answers to ListOffsets can be below what it holds (tansu 0.6.0, see
    /// the README), and the end signal alone may be an old one.
    pub fn caught_up(&self, high_watermarks: &BTreeMap<i32, i64>) -> bool {
        let shared = self.shared.lock().expect("consumer mutex poisoned");
        high_watermarks.iter().all(|(p, high)| {
            let next = shared.next_offsets.get(p).copied().unwrap_or(0);
            next >= *high && shared.end_at.get(p) == Some(&next)
        })
    }

    /// How far behind the consumer is, in records, for the drain report.
    pub fn behind(&self, high_watermarks: &BTreeMap<i32, i64>) -> i64 {
        let shared = self.shared.lock().expect("consumer mutex poisoned");
        high_watermarks.iter().map(|(p, high)| (high - shared.next_offsets.get(p).copied().unwrap_or(0)).max(0)).sum()
    }

    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().expect("consumer mutex poisoned").last_error.clone()
    }

    /// The consumer's state now.
    pub fn state(&self) -> DownstreamState {
        self.shared.lock().expect("consumer mutex poisoned").state.clone()
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Takes one record into the projection.
fn record(shared: &Mutex<Shared>, message: &impl Message, clock: Clock) {
    let at = clock.now();
    let record = topic::decode(message);
    let mut shared = shared.lock().expect("consumer mutex poisoned");
    shared.next_offsets.insert(message.partition(), message.offset() + 1);
    shared.end_at.remove(&message.partition());
    shared.state.records += 1;
    let Ok(event) = record.event else { return };
    shared.state.first_seen.entry(event.order_id).or_insert(at);
    // Idempotent by version: only a newer version changes the view.
    let newer = shared.state.projection.get(&event.product_id).is_none_or(|held| event.version > held.version);
    if newer {
        shared.state.projection.insert(event.product_id, event.after());
    } else {
        // A redelivery, or an old version after a newer one: applying it
        // would count the order twice or move the stock backwards.
        shared.state.discarded += 1;
    }
}

/// Notes that the broker signalled the end of partition `p` where the
/// consumer is now.
fn reached_end(shared: &Mutex<Shared>, p: i32) {
    let mut shared = shared.lock().expect("consumer mutex poisoned");
    let next = shared.next_offsets.get(&p).copied().unwrap_or(0);
    shared.end_at.insert(p, next);
}

async fn consume(consumer: StreamConsumer<crate::kafka::quiet::Quiet>, shared: Arc<Mutex<Shared>>, clock: Clock) {
    loop {
        match consumer.recv().await {
            Ok(message) => record(&shared, &message, clock),
            // The broker says the consumer is at the partition's end: what
            // the drain waits for (see `caught_up`).
            Err(KafkaError::PartitionEOF(p)) => reached_end(&shared, p),
            Err(e) => {
                // librdkafka reconnects by itself; remember the error for the report.
                shared.lock().expect("consumer mutex poisoned").last_error = Some(crate::error::chain(&e));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
