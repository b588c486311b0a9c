//! Publishing to Kafka, and what a publish's outcome means ([`classify_delivery`]).
//!
//! The producer is idempotent (`enable.idempotence=true`): librdkafka retries
//! a failed request itself without creating duplicates, up to the delivery
//! timeout (`message.timeout.ms`). What it reports after that is decided by
//! librdkafka's own bookkeeping of whether the message reached the broker,
//! which this module turns into Ok / Fail / Unknown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use rdkafka_sys as rdsys;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::history::Told;

/// Routes each delivery report to the task waiting for it.
pub struct DeliveryContext;

impl ClientContext for DeliveryContext {
    // Connection errors during a fault are expected; see `kafka::quiet`.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        super::quiet::Quiet.log(level, facility, message)
    }
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::quiet::Quiet.error(error, reason)
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<oneshot::Sender<Delivery>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Self::DeliveryOpaque) {
        let permanent = match result {
            Ok(_) => false,
            Err((error, _)) => is_permanent(error),
        };
        // The waiter may be gone (its writer crashed); nothing to tell then.
        let _ = waiter.send(Delivery { told: classify_delivery(result), permanent });
    }
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
                rdsys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => Told::fail(error),
                rdsys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_PERSISTED => Told::ok(),
                _ => Told::unknown(format!("{error} (the broker may have written it)")),
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

/// An idempotent producer for one topic.
///
/// If librdkafka reports a fatal error (an idempotent producer can, after
/// some broker errors), every later publish would fail; the producer is then
/// rebuilt, as an application would restart its client.
pub struct Publisher {
    config: PublisherConfig,
    producer: Mutex<Arc<ThreadedProducer<DeliveryContext>>>,
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
        .set("log_level", "3")
        .create_with_context(DeliveryContext)
        .map_err(|e| Error::refused("Kafka", config.bootstrap.clone(), "create a producer", e))
}

impl Publisher {
    pub fn new(config: PublisherConfig) -> Result<Publisher> {
        let producer = build(&config)?;
        Ok(Publisher { config, producer: Mutex::new(Arc::new(producer)) })
    }

    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    fn current(&self) -> Arc<ThreadedProducer<DeliveryContext>> {
        self.producer.lock().expect("producer mutex poisoned").clone()
    }

    /// Publishes one record and waits for the broker's acknowledgement.
    /// Never an `Err`: every failure is an outcome for the history.
    pub async fn publish(&self, key: &str, payload: &[u8]) -> Told {
        self.publish_detailed(key, payload).await.told
    }

    /// [`Publisher::publish`], also saying whether a failure is permanent.
    pub async fn publish_detailed(&self, key: &str, payload: &[u8]) -> Delivery {
        let producer = self.current();
        let (waiter, report) = oneshot::channel();
        let record = BaseRecord::with_opaque_to(&self.config.topic, Box::new(waiter)).key(key).payload(payload);
        if let Err((error, _record)) = producer.send(record) {
            // Refused before it was queued (too large, queue full, fatal
            // producer state): nothing left this process.
            self.rebuild_if_fatal(&producer);
            let permanent = is_permanent(&error);
            return Delivery { told: Told::fail(error), permanent };
        }
        // librdkafka reports every message within message.timeout.ms; the
        // margin covers a report that is itself slow to arrive.
        let bound = self.config.publish_timeout + Duration::from_secs(5);
        let delivery = match tokio::time::timeout(bound, report).await {
            Ok(Ok(delivery)) => delivery,
            Ok(Err(_)) => Delivery {
                told: Told::unknown("the producer was closed before it reported the delivery"),
                permanent: false,
            },
            Err(_) => {
                Delivery { told: Told::unknown(format!("no delivery report within {bound:?}")), permanent: false }
            }
        };
        if delivery.told.outcome != crate::history::Outcome::Ok {
            self.rebuild_if_fatal(&producer);
        }
        delivery
    }

    fn rebuild_if_fatal(&self, producer: &Arc<ThreadedProducer<DeliveryContext>>) {
        if let Some((code, reason)) = producer.client().fatal_error() {
            tracing::warn!(?code, %reason, "the Kafka producer hit a fatal error; rebuilding it");
            let mut current = self.producer.lock().expect("producer mutex poisoned");
            if Arc::ptr_eq(&current, producer) {
                match build(&self.config) {
                    Ok(fresh) => *current = Arc::new(fresh),
                    Err(e) => tracing::error!("cannot rebuild the Kafka producer: {e:#}"),
                }
            }
        }
    }

    /// Connects and fetches the topic's metadata, so that the first publish
    /// does not wait for the producer to start. Best effort, bounded.
    pub async fn warm_up(&self, limit: Duration) {
        let producer = self.current();
        let topic = self.config.topic.clone();
        let _ = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(Some(&topic), limit)).await;
    }

    /// Waits up to `limit` for queued messages to be delivered.
    pub fn flush(&self, limit: Duration) {
        let _ = self.current().flush(limit);
    }
}
