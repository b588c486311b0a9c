//! The downstream consumer: a service that believes what the topic says.
//!
//! It reads every partition of the run's topic from the beginning and keeps a
//! *projection*: each product's stock as the events describe it. It is
//! idempotent by version — an event whose version is not newer than what it
//! already holds is ignored — so duplicates and reorderings do not corrupt
//! it. What it cannot fix is an event that never arrives (a lost event) or
//! one that should not exist (a ghost); projection drift measures that.
//!
//! Beside it, the consumer keeps what a naive one would hold: the last event
//! to arrive for each product, whatever its version (last write wins). The
//! two agree as long as each product's events arrive in order, which Kafka
//! promises within a partition only: keyed by the wrong id, or redelivered,
//! they don't, and the reconciler shows what the version check saved.
//!
//! Readers sample its projection during the run ("db: 977 vs topic: 981"),
//! the drain phase waits for it to catch up, and the reconciler compares its
//! final state with the database.
//!
//! A scenario can crash it (`component = "consumer"`): it stops fetching, and
//! its restart resumes at the offsets it had reached, with its projection
//! intact, as a service that stores both in one transaction does. What it
//! then reads is a backlog: a real broker serves each fetch a partition's
//! whole share (up to 1 MiB), the embedded one a batch per partition.

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
    bootstrap: String,
    topic: String,
}

impl ReadyConsumer {
    /// Starts recording what arrives, on the run's clock.
    pub fn start(self, clock: Clock) -> Downstream {
        let task = tokio::spawn(consume(self.consumer, self.shared.clone(), clock));
        Downstream {
            shared: self.shared,
            task: Mutex::new(Some(task)),
            bootstrap: self.bootstrap,
            topic: self.topic,
            clock,
        }
    }
}

/// A running downstream consumer.
#[derive(Debug)]
pub struct Downstream {
    shared: Arc<Mutex<Shared>>,
    /// The fetching task; `None` while a scenario has the consumer crashed.
    task: Mutex<Option<JoinHandle<()>>>,
    /// Where a restart connects again.
    bootstrap: String,
    topic: String,
    clock: Clock,
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
        Ok(ReadyConsumer { consumer, shared, bootstrap: bootstrap.to_string(), topic: topic_name.to_string() })
    }

    /// A scenario's consumer crash: it stops fetching at once. What it
    /// holds (its projection, and how far it has read) stays, as it would in
    /// the consumer's own database.
    pub fn crash(&self) {
        if let Some(task) = self.task.lock().expect("consumer task mutex poisoned").take() {
            task.abort();
        }
    }

    /// Restarts a crashed consumer where it left off: a new client, assigned
    /// each partition at the offset after the last record it took in. Its
    /// first fetches bring the backlog, partition by partition.
    pub async fn restart(&self) -> Result<(), String> {
        let from = {
            let mut shared = self.shared.lock().expect("consumer mutex poisoned");
            // An end signalled to the old client says nothing of the new one.
            shared.end_at.clear();
            shared.next_offsets.clone()
        };
        let consumer = topic::assign_at_with_eof(&self.bootstrap, &self.topic, "dualwrite-downstream", &from).await?;
        let task = tokio::spawn(consume(consumer, self.shared.clone(), self.clock));
        if let Some(old) = self.task.lock().expect("consumer task mutex poisoned").replace(task) {
            old.abort();
        }
        Ok(())
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
        self.crash();
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
    let held = shared.state.projection.get(&event.product_id).copied();
    // The naive consumer beside this one believes whatever came last; an
    // older version than one already delivered takes it back in time.
    if held.is_some_and(|held| event.version < held.version) {
        shared.state.arrived_late += 1;
    }
    shared.state.last_arrived.insert(event.product_id, event.after());
    // Idempotent by version: only a newer version changes the view.
    let newer = held.is_none_or(|held| event.version > held.version);
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
