//! Publishing to Kafka, and what a publish's outcome means ([`classify_delivery`]).
//!
//! The producer is idempotent (`enable.idempotence=true`): librdkafka retries
//! a failed request itself without creating duplicates, up to the delivery
//! timeout (`message.timeout.ms`). What it reports after that is decided by
//! librdkafka's own bookkeeping of whether the message reached the broker,
//! which this module turns into Ok / Fail / Unknown.
//!
//! An idempotent producer sends nothing until the broker has given it a
//! producer id, and librdkafka asks for one on a 500 ms timer from its
//! creation, or sooner when a metadata reply arrives while a broker is
//! connected. [`Publisher::warm_up`] waits for that id, so that a publish
//! right after start-up is not held for half a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::ClientContext;
use rdkafka_sys as rdsys;
use tokio::sync::oneshot;

use super::let_go;
use crate::error::{Chain, Error, Result};
use crate::history::Told;

/// Routes each delivery report to the task waiting for it, and keeps
/// whether the producer has its producer id (from librdkafka's statistics).
#[derive(Default)]
pub struct DeliveryContext {
    has_producer_id: AtomicBool,
}

/// How often librdkafka reports its statistics: how late, at most,
/// [`Publisher::warm_up`] learns that the producer id came.
const STATISTICS_INTERVAL_MS: &str = "20";

/// The part of librdkafka's statistics that [`DeliveryContext`] reads.
#[derive(serde::Deserialize)]
struct Statistics {
    eos: Option<Eos>,
}

#[derive(serde::Deserialize)]
struct Eos {
    /// "Assigned" once the broker has given the producer its id.
    idemp_state: String,
}

impl ClientContext for DeliveryContext {
    // Connection errors during a fault are expected; see `kafka::quiet`.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        super::quiet::Quiet.log(level, facility, message)
    }
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::quiet::Quiet.error(error, reason)
    }
    fn stats_raw(&self, statistics: &[u8]) {
        if let Ok(Statistics { eos: Some(eos) }) = serde_json::from_slice::<Statistics>(statistics) {
            self.has_producer_id.store(eos.idemp_state == "Assigned", Ordering::Relaxed);
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<oneshot::Sender<Report>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Self::DeliveryOpaque) {
        let (permanent, rejects_producer) = match result {
            Ok(_) => (false, None),
            Err((error, _)) => (is_permanent(error), rejects_the_producer(error).then(|| error.to_string())),
        };
        let delivery = Delivery { told: classify_delivery(result), permanent };
        // The waiter may be gone (its writer crashed); nothing to tell then.
        let _ = waiter.send(Report { delivery, rejects_producer });
    }
}

/// What the delivery callback hands to the waiting publish.
pub struct Report {
    delivery: Delivery,
    /// The broker refused the producer itself, not the message (see
    /// [`rejects_the_producer`]): the error, for the rebuild's log.
    rejects_producer: Option<String>,
}

/// A publish's outcome, and whether retrying it could ever succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub told: Told,
    /// The broker (or librdkafka) refused this message for what it is — too
    /// large, invalid — so a retry would fail the same way. A relay moves such
    /// a row to its dead-letter table instead of retrying it forever.
    pub permanent: bool,
}

/// Broker errors that refuse the *producer* — its id and epoch — rather
/// than the message, so that every later message from it fails the same way.
///
/// librdkafka raises these as fatal only for a transactional producer. For
/// an idempotent one it fails the batch (`NOT_PERSISTED`) and bumps its own
/// epoch (KIP-360: after message timeouts and sequence gaps it increments the
/// epoch locally, without asking the broker, and resets its sequences). A
/// Kafka broker accepts the higher epoch; a broker that does not (tansu
/// 0.6.0: `ProducerFenced` from its memory engine, `InvalidProducerEpoch` from
/// its SQL engines) refuses every later batch, librdkafka bumps again, and
/// the producer never delivers anything more — without ever reporting a
/// fatal error. Either way the identity is dead and a new producer (a new
/// InitProducerId) is the way out.
fn rejects_the_producer(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(error.rdkafka_error_code(), Some(Code::ProducerFenced | Code::InvalidProducerEpoch))
}

/// Errors that no retry can fix.
fn is_permanent(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessage
                | Code::InvalidMessageSize
                | Code::InvalidRecord
                | Code::TopicAuthorizationFailed
                | Code::InvalidTopic
        )
    )
}

/// What a delivery report means: the one place that decides.
///
/// | report                                   | outcome   | why |
/// |------------------------------------------|-----------|-----|
/// | delivered                                | `Ok`      | the broker acknowledged it |
/// | error, status `NOT_PERSISTED`            | `Fail`    | librdkafka knows it never reached the broker (e.g. timed out in the local queue, connection refused) |
/// | error, status `POSSIBLY_PERSISTED`       | `Unknown` | the request was sent, the reply never came (timeout, reset): the broker may have written it |
/// | error, status `PERSISTED`                | `Ok`      | the broker has it, whatever the error says |
///
/// A message refused before it was queued is `Fail` (see [`Publisher::publish`]).
pub fn classify_delivery(result: &DeliveryResult<'_>) -> Told {
    match result {
        Ok(_) => Told::ok(),
        Err((error, message)) => {
            // SAFETY: `message` is a valid borrowed librdkafka message for the
            // duration of this callback.
            let status = unsafe { rdsys::rd_kafka_message_status(message.ptr()) };
            match status {
                rdsys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => Told::fail(Chain(error)),
                rdsys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_PERSISTED => Told::ok(),
                _ => Told::unknown(format!("{} (the broker may have written it)", Chain(error))),
            }
        }
    }
}

/// Producer settings for one client.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub bootstrap: String,
    pub topic: String,
    /// librdkafka's `message.timeout.ms`: the delivery timeout.
    pub publish_timeout: Duration,
    pub client_id: String,
}

/// An idempotent producer for one topic, replaced when it dies.
///
/// A producer can die in two ways, and in both every later publish would
/// fail for ever:
///
/// - librdkafka raises a *fatal error* ([`Client::fatal_error`]), e.g. a
///   sequence desynchronisation it cannot repair: it then refuses every new
///   message and purges its queue (`__PURGE_QUEUE`, classified `Fail`);
/// - the broker refuses the producer's id or epoch on every batch (see
///   [`rejects_the_producer`]) while librdkafka, which does not consider that
///   fatal, keeps trying.
///
/// Either way each publish still gets its own outcome in the history — what
/// librdkafka reported for *that* message — and the next publish goes to a
/// new producer, built as an application would restart its client. The old
/// one lives on only until the publishes still waiting on it have their
/// reports.
///
/// Dropping a publisher is what a process's exit does to its producer:
/// the messages still queued are purged, unsent, at once; the rest of
/// librdkafka's close (its thread's join, a flush of up to 500 ms) is
/// not waited for (see [`super::let_go`]).
///
/// [`Client::fatal_error`]: rdkafka::client::Client::fatal_error
pub struct Publisher {
    config: PublisherConfig,
    /// The producer publishes go to; `None` only once the publisher is dropped.
    producer: Mutex<Option<Arc<ThreadedProducer<DeliveryContext>>>>,
    /// Producers replaced so far, and why the last one was.
    rebuilds: Mutex<(u64, Option<String>)>,
    /// Replaced producers that publishes may still be waiting on. Dropping
    /// librdkafka's producer blocks (it purges, flushes for up to 500 ms and
    /// joins its thread), so the last handle is dropped here, off the async
    /// threads, rather than by whichever publish happens to finish last.
    retired: Mutex<Vec<Arc<ThreadedProducer<DeliveryContext>>>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("config", &self.config).finish()
    }
}

fn build(config: &PublisherConfig) -> Result<ThreadedProducer<DeliveryContext>> {
    let timeout_ms = config.publish_timeout.as_millis().max(100);
    ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap)
        .set("client.id", &config.client_id)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", timeout_ms.to_string())
        // A request waits for its reply as long as the message may: a slow
        // broker makes publishes slow, not retried. (A shorter request
        // timeout makes librdkafka retry in-flight requests; after a retry
        // the idempotent producer may bump its epoch, and the broker can no
        // longer tell the retry from the original: duplicates.)
        .set("request.timeout.ms", timeout_ms.to_string())
        // Long enough for a slow broker's handshake (a latency toxic delays
        // it too); a refused or reset connection fails at once anyway.
        .set("socket.connection.setup.timeout.ms", "10000")
        // Reconnect quickly once a fault heals.
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        .set("linger.ms", "2")
        // Only for the producer id's state (see `DeliveryContext`).
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .set("log_level", "3")
        .create_with_context(DeliveryContext::default())
        .map_err(|e| Error::refused("Kafka", config.bootstrap.clone(), "create a producer", e))
}

impl Publisher {
    pub fn new(config: PublisherConfig) -> Result<Publisher> {
        let producer = build(&config)?;
        Ok(Publisher {
            config,
            producer: Mutex::new(Some(Arc::new(producer))),
            rebuilds: Mutex::new((0, None)),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// How many times the producer was replaced, and why the last time.
    pub fn rebuilds(&self) -> (u64, Option<String>) {
        self.rebuilds.lock().expect("rebuilds mutex poisoned").clone()
    }

    /// `error`, followed by the producer's replacements, if there were any:
    /// what a drain report says about a component that did not catch up.
    pub fn with_rebuilds(&self, error: String) -> String {
        match self.rebuilds() {
            (0, _) => error,
            (n, why) => {
                format!(
                    "{error}; its Kafka producer was replaced {n} time(s), last because {}",
                    why.unwrap_or_default()
                )
            }
        }
    }

    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    fn current(&self) -> Arc<ThreadedProducer<DeliveryContext>> {
        let current = self.producer.lock().expect("producer mutex poisoned");
        current.clone().expect("a publisher has its producer until it is dropped")
    }

    /// Publishes one record and waits for the broker's acknowledgement.
    /// Never an `Err`: every failure is an outcome for the history.
    pub async fn publish(&self, key: &str, payload: &[u8]) -> Told {
        self.publish_detailed(key, payload).await.told
    }

    /// [`Publisher::publish`], also saying whether a failure is permanent.
    pub async fn publish_detailed(&self, key: &str, payload: &[u8]) -> Delivery {
        self.enqueue(key, payload).await
    }

    /// Hands the record to the producer now, and returns what waits for its
    /// outcome. Records enqueued one after another for the same key reach
    /// its partition in that order: the producer is idempotent, so its own
    /// retries keep them in order too. (An `async fn` would enqueue only
    /// when first polled, and futures polled together may start in any order.)
    pub fn enqueue(&self, key: &str, payload: &[u8]) -> impl std::future::Future<Output = Delivery> + Send + '_ {
        let producer = self.current();
        let (waiter, report) = oneshot::channel::<Report>();
        let record = BaseRecord::with_opaque_to(&self.config.topic, Box::new(waiter)).key(key).payload(payload);
        let refused = producer.send(record).err().map(|(error, _record)| error);
        async move {
            if let Some(error) = refused {
                // Refused before it was queued (too large, queue full, fatal
                // producer state): nothing left this process.
                self.replace_if_dead(&producer, None);
                let permanent = is_permanent(&error);
                return Delivery { told: Told::fail(Chain(&error)), permanent };
            }
            // librdkafka reports every message within message.timeout.ms; the
            // margin covers a report that is itself slow to arrive.
            let bound = self.config.publish_timeout + Duration::from_secs(5);
            let (delivery, rejects_producer) = match tokio::time::timeout(bound, report).await {
                Ok(Ok(Report { delivery, rejects_producer })) => (delivery, rejects_producer),
                Ok(Err(_)) => (
                    Delivery {
                        told: Told::unknown("the producer was closed before it reported the delivery"),
                        permanent: false,
                    },
                    None,
                ),
                Err(_) => (
                    Delivery { told: Told::unknown(format!("no delivery report within {bound:?}")), permanent: false },
                    None,
                ),
            };
            if delivery.told.outcome != crate::history::Outcome::Ok {
                self.replace_if_dead(&producer, rejects_producer);
            }
            delivery
        }
    }

    /// Builds a new producer if `producer` is dead: librdkafka says it hit a
    /// fatal error, or the broker refused it as a producer (`rejected`).
    /// Only the first publish to notice replaces it; the others find it
    /// replaced already.
    fn replace_if_dead(&self, producer: &Arc<ThreadedProducer<DeliveryContext>>, rejected: Option<String>) {
        let why = match producer.client().fatal_error() {
            Some((code, reason)) => format!("librdkafka raised a fatal error ({code:?}: {reason})"),
            None => match rejected {
                Some(error) => format!("the broker refused the producer's id or epoch ({error})"),
                None => return,
            },
        };
        let mut current = self.producer.lock().expect("producer mutex poisoned");
        if !current.as_ref().is_some_and(|current| Arc::ptr_eq(current, producer)) {
            return;
        }
        tracing::warn!(client = %self.config.client_id, "the Kafka producer is dead: {why}; building a new one");
        match build(&self.config) {
            Ok(fresh) => {
                let old = current.replace(Arc::new(fresh)).expect("checked above");
                drop(current);
                let mut rebuilds = self.rebuilds.lock().expect("rebuilds mutex poisoned");
                rebuilds.0 += 1;
                rebuilds.1 = Some(why);
                drop(rebuilds);
                self.retire(old);
            }
            // The next failed publish tries again.
            Err(e) => tracing::error!("cannot build a new Kafka producer: {}", Chain(&e)),
        }
    }

    /// Keeps `old` until no publish holds it; drops those nobody holds any more.
    fn retire(&self, old: Arc<ThreadedProducer<DeliveryContext>>) {
        let mut retired = self.retired.lock().expect("retired mutex poisoned");
        retired.push(old);
        let (idle, busy): (Vec<_>, Vec<_>) = retired.drain(..).partition(|p| Arc::strong_count(p) == 1);
        *retired = busy;
        drop(retired);
        if !idle.is_empty() {
            let_go(idle);
        }
    }

    /// Connects, fetches the topic's metadata and waits for the producer id,
    /// so that the first publish does not wait for the producer to start.
    /// Best effort, bounded by `limit`.
    ///
    /// The metadata is asked for again until the id has come: librdkafka
    /// asks for an id when a metadata reply arrives and a broker is
    /// connected, and otherwise only on a 500 ms timer from the producer's
    /// creation. The first reply usually comes through the bootstrap
    /// connection, before the connection to the broker it names is up, so
    /// without the second ask a publish made right after start-up (a relay
    /// started with the workload) waited out that timer.
    pub async fn warm_up(&self, limit: Duration) {
        let producer = self.current();
        let topic = self.config.topic.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + limit;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = producer.client().fetch_metadata(Some(&topic), left);
                if producer.context().has_producer_id.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10).min(deadline.saturating_duration_since(Instant::now())));
            }
        })
        .await;
    }

    /// Waits up to `limit` for queued messages to be delivered.
    pub fn flush(&self, limit: Duration) {
        let _ = self.current().flush(limit);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let current = self.producer.get_mut().expect("producer mutex poisoned").take();
        let retired = std::mem::take(self.retired.get_mut().expect("retired mutex poisoned"));
        // What a dying process loses: the messages not yet sent. Those in
        // flight may still reach the broker, as they would.
        for producer in current.iter().chain(&retired) {
            producer.purge(PurgeConfig::default().queue());
        }
        let_go((current, retired));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode as Code;

    /// A dying process's queue dies with it: the drop purges what the
    /// producer still holds before it returns, although librdkafka's own
    /// close is left to finish in the background.
    #[tokio::test]
    async fn dropping_a_publisher_purges_its_queue_at_once() {
        let publisher = Publisher::new(PublisherConfig {
            // Nothing listens here: the messages stay queued.
            bootstrap: "127.0.0.1:1".into(),
            topic: "never-reached".into(),
            publish_timeout: Duration::from_secs(30),
            client_id: "drop-test".into(),
        })
        .unwrap();
        // librdkafka's count of what it holds also counts the events its
        // thread has not served yet (statistics every 20 ms, connection
        // errors): a few at most. A thousand messages stand well above them.
        const QUEUED: i32 = 1000;
        let sends: Vec<_> = (0..QUEUED).map(|n| publisher.enqueue("k", format!("{n}").as_bytes())).collect();
        let producer = publisher.current();
        assert!(producer.in_flight_count() >= QUEUED, "queued, waiting for a broker");
        drop(sends);
        drop(publisher);
        // The purged messages' reports are served by the producer's own
        // thread (this handle keeps it alive); unpurged, the messages would
        // stay for the 30 s delivery timeout.
        let deadline = Instant::now() + Duration::from_secs(5);
        while producer.in_flight_count() >= QUEUED / 10 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = producer.in_flight_count();
        assert!(left < QUEUED / 10, "the queue was purged: {left} left");
    }

    #[test]
    fn the_statistics_say_when_the_producer_has_its_id() {
        // librdkafka 2.12's statistics, cut down to what is read.
        let stats = |state: &str| {
            format!(
                r#"{{"name": "p#producer-1", "eos": {{ "idemp_state": "{state}", "idemp_stateage": 25 }}, "brokers": {{}}}}"#
            )
        };
        let context = DeliveryContext::default();
        context.stats_raw(stats("RequestPID").as_bytes());
        assert!(!context.has_producer_id.load(Ordering::Relaxed));
        context.stats_raw(stats("Assigned").as_bytes());
        assert!(context.has_producer_id.load(Ordering::Relaxed));
        // An epoch bump takes the id away until the broker answers again.
        context.stats_raw(stats("DrainBump").as_bytes());
        assert!(!context.has_producer_id.load(Ordering::Relaxed));
        // Statistics that cannot be read change nothing.
        context.stats_raw(stats("Assigned").as_bytes());
        context.stats_raw(b"not json");
        assert!(context.has_producer_id.load(Ordering::Relaxed));
    }

    #[test]
    fn a_refused_producer_id_or_epoch_kills_the_producer_and_nothing_else_does() {
        let error = |code| KafkaError::MessageProduction(code);
        assert!(rejects_the_producer(&error(Code::ProducerFenced)));
        assert!(rejects_the_producer(&error(Code::InvalidProducerEpoch)));
        // Faults of the link or of one message: the producer lives on.
        for code in [
            Code::MessageTimedOut,
            Code::BrokerTransportFailure,
            Code::MessageSizeTooLarge,
            Code::NotLeaderForPartition,
        ] {
            assert!(!rejects_the_producer(&error(code)), "{code:?}");
        }
        assert!(is_permanent(&error(Code::MessageSizeTooLarge)) && !is_permanent(&error(Code::ProducerFenced)));
    }
}
