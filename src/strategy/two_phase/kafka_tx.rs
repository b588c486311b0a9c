//! The coordinator's Kafka side: a few transactional producers, each with a
//! `transactional.id` of its own, lent to one order at a time.
//!
//! A transactional producer runs one transaction at a time, and the workload
//! has several orders in flight, so the coordinator keeps one producer per
//! database connection (`--pool-size`) and an order borrows one for its
//! transaction. The ids are the run's topic and the producer's number: a
//! restarted coordinator claims the *same* ids, and claiming an id
//! (`init_transactions`) is what makes the broker abort whatever the
//! previous holder left open — Kafka's only recovery for a transaction whose
//! producer died.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use tokio::sync::{Mutex, Semaphore};

use crate::error::Error;
use crate::history::Told;
use crate::kafka::let_go;
use crate::kafka::quiet::Quiet;

/// How long the broker lets a transaction stay open before it aborts it by
/// itself (`transaction.timeout.ms`). Kafka's default is a minute; a
/// transaction its coordinator abandoned holds back the partition's last
/// stable offset — what a `read_committed` consumer may read up to — for
/// that long, unless a new producer claims the id first.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A context that keeps librdkafka quiet and ignores delivery reports: a
/// transaction's outcome is `commit_transaction`'s, not each message's.
pub struct TxContext;

impl ClientContext for TxContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        Quiet.log(level, facility, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        Quiet.error(error, reason)
    }
}

impl ProducerContext for TxContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

type TxProducer = ThreadedProducer<TxContext>;

/// One `transactional.id`, and the producer holding it (if one was built
/// and is still healthy).
struct Slot {
    id: String,
    producer: Option<Arc<TxProducer>>,
}

/// The coordinator's transactional producers.
pub struct TxProducers {
    bootstrap: String,
    topic: String,
    publish_timeout: Duration,
    slots: Vec<Mutex<Slot>>,
    free: Semaphore,
}

/// The transactional ids of a run's coordinator: `<topic>-coordinator-<n>`.
pub fn transactional_ids(topic: &str, count: u32) -> Vec<String> {
    (0..count).map(|n| format!("{topic}-coordinator-{n}")).collect()
}

impl TxProducers {
    /// `count` producers, none built yet (building one reaches the broker).
    pub fn new(bootstrap: &str, topic: &str, publish_timeout: Duration, count: u32) -> TxProducers {
        let slots = transactional_ids(topic, count).into_iter().map(|id| Mutex::new(Slot { id, producer: None }));
        TxProducers {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            publish_timeout,
            slots: slots.collect(),
            free: Semaphore::new(count as usize),
        }
    }

    /// Claims every id at once: a restarted coordinator's first act, so that
    /// the broker aborts every transaction its previous life left open (not
    /// only those of the ids this life happens to use). Best effort: an id
    /// that cannot be claimed now is claimed when an order first needs it.
    pub async fn claim_all(&self) {
        for slot in &self.slots {
            // A permit like any order's, so that an order with a permit
            // always finds a slot this is not holding.
            let Ok(_permit) = self.free.acquire().await else { return };
            let mut slot = slot.lock().await;
            if slot.producer.is_none() {
                slot.producer = self.build(&slot.id).await.ok();
            }
        }
    }

    /// Builds a producer for `id` and claims the id (`init_transactions`):
    /// the broker fences any older producer with this id and aborts its
    /// open transaction.
    async fn build(&self, id: &str) -> std::result::Result<Arc<TxProducer>, String> {
        let timeout_ms = self.publish_timeout.as_millis().max(100);
        let producer: TxProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", id)
            .set("transactional.id", id)
            .set("transaction.timeout.ms", TRANSACTION_TIMEOUT.as_millis().to_string())
            .set("message.timeout.ms", timeout_ms.to_string())
            .set("request.timeout.ms", timeout_ms.to_string())
            .set("socket.connection.setup.timeout.ms", "10000")
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "500")
            .set("linger.ms", "0")
            .set("log_level", "3")
            .create_with_context(TxContext)
            .map_err(|e| format!("{}", Error::refused("Kafka", self.bootstrap.clone(), "create a producer", e)))?;
        let producer = Arc::new(producer);
        let claimer = producer.clone();
        let limit = self.publish_timeout * 2;
        // init_transactions blocks (it asks the broker for the id's
        // coordinator and a new epoch): off the async workers.
        match tokio::task::spawn_blocking(move || claimer.init_transactions(limit)).await {
            Ok(Ok(())) => Ok(producer),
            Ok(Err(e)) => {
                let_go(producer);
                Err(format!("claiming transactional id {id}: {e}"))
            }
            Err(e) => Err(format!("claiming transactional id {id}: {e}")),
        }
    }

    /// Publishes one event in a transaction of its own and commits it.
    ///
    /// | what happened                                  | told      |
    /// |-----------------------------------------------|-----------|
    /// | no producer could claim an id, or `begin` failed | `Fail`: nothing was sent |
    /// | the record was refused before it was queued   | `Fail`    |
    /// | `commit_transaction` succeeded                | `Ok`      |
    /// | `commit_transaction` failed (then aborted)    | `Unknown`: the record may be in the log; on a real broker the abort hides it, on the embedded one it does not |
    pub async fn publish_in_transaction(&self, key: &str, payload: &[u8]) -> Told {
        // At most one order per producer: wait for a free one.
        let Ok(_permit) = self.free.acquire().await else { return Told::fail("the coordinator is closing") };
        // A permit means a slot is free, or about to be: one whose holder
        // has just given its permit back but not yet its lock.
        let mut slot = loop {
            if let Some(slot) = self.slots.iter().find_map(|slot| slot.try_lock().ok()) {
                break slot;
            }
            tokio::task::yield_now().await;
        };
        let producer = match slot.producer.clone() {
            Some(p) => p,
            None => match self.build(&slot.id).await {
                Ok(p) => {
                    slot.producer = Some(p.clone());
                    p
                }
                Err(e) => return Told::fail(e),
            },
        };
        let (topic, key, payload) = (self.topic.clone(), key.to_string(), payload.to_vec());
        let limit = self.publish_timeout;
        // begin, send and commit block on librdkafka: one blocking call. A
        // crash of the app while it runs cannot stop it — like a process
        // whose EndTxn request had already left when it died.
        let work = producer.clone();
        let result = tokio::task::spawn_blocking(move || run_transaction(&work, &topic, &key, &payload, limit)).await;
        let (told, healthy) = match result {
            Ok(done) => done,
            Err(e) => (Told::unknown(format!("the Kafka transaction's thread failed: {e}")), false),
        };
        if !healthy {
            // A producer whose transaction could not even be aborted is
            // replaced: the next order's producer claims the id again,
            // which aborts whatever this one left open.
            if let Some(dead) = slot.producer.take() {
                let_go(dead);
            }
        }
        told
    }

    /// Drops every producer, off the async workers (librdkafka joins its
    /// threads). An open transaction is left to the broker's timeout or
    /// the next claim of its id, as after a process death.
    pub fn close(&self) {
        for slot in &self.slots {
            if let Ok(mut slot) = slot.try_lock() {
                if let Some(p) = slot.producer.take() {
                    let_go(p);
                }
            }
        }
    }
}

/// One transaction: begin, send, commit; abort if the commit failed.
/// Returns what the writer is told and whether the producer is still usable.
fn run_transaction(producer: &TxProducer, topic: &str, key: &str, payload: &[u8], limit: Duration) -> (Told, bool) {
    if let Err(e) = producer.begin_transaction() {
        return (Told::fail(format!("begin_transaction: {e}")), !is_fatal(&e));
    }
    if let Err((e, _)) = producer.send(BaseRecord::<str, [u8], ()>::to(topic).key(key).payload(payload)) {
        // Nothing was queued: abort the empty transaction.
        let healthy = producer.abort_transaction(limit).is_ok();
        return (Told::fail(format!("the record was refused: {e}")), healthy);
    }
    // commit_transaction first flushes (waits for the broker to acknowledge
    // the record), then asks the transaction coordinator to write the
    // commit markers.
    match producer.commit_transaction(limit) {
        Ok(()) => (Told::ok(), true),
        Err(e) => {
            if unsupported(&e) {
                // Said once per process: every commit will fail the same way.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    tracing::warn!(
                        "the broker does not support Kafka transactions ({e}): two-phase's events reach the topic \
                         only through recovery, and the topic cannot be read whole"
                    )
                });
            }
            // An abortable error, a timeout, a fenced producer: abort. The
            // record may already be in the partition's log; the abort marker
            // is what keeps it from read_committed consumers.
            let healthy = !is_fatal(&e) && producer.abort_transaction(limit).is_ok();
            (Told::unknown(format!("commit_transaction: {e} (the record may be in the log)")), healthy)
        }
    }
}

/// The broker does not offer the transaction API (tansu 0.6.0 has no EndTxn).
fn unsupported(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.code() == rdkafka::types::RDKafkaErrorCode::UnsupportedFeature)
}

fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => e.is_fatal(),
        _ => false,
    }
}
