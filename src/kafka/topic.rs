//! Creating a topic, asking its watermarks, and the consumers that read it.
//!
//! Reading assigns every partition at its first offset instead of joining a
//! consumer group: a group join costs seconds (the embedded broker delays it
//! on purpose), and a checker wants the whole topic, not a share of it. The
//! checker's read itself is `read.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::quiet::Quiet;
use crate::error::{Error, Result};
use crate::event::StockChanged;
// The record type lives with the snapshot (a leaf type); named here too, where
// clients of the reader have always found it.
pub use crate::snapshot::TopicRecord;

/// Partitions of every run's topic. More than one, so that per-product
/// ordering (by key) is what keeps events in order, as in production.
pub const PARTITIONS: i32 = 3;

/// How long a metadata or admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates `topic` on a real broker (brokers such as tansu do not auto-create).
/// An existing topic is not an error.
pub async fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<Quiet> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create_with_context(Quiet)
        .map_err(|e| Error::refused("Kafka", bootstrap, "create an admin client", e))?;
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT));
    let results = tokio::time::timeout(ADMIN_TIMEOUT + Duration::from_secs(2), admin.create_topics([&new], &options))
        .await
        .map_err(|_| {
            Error::unreachable(
                "Kafka",
                bootstrap,
                "is the broker running and advertising a reachable address? check --brokers / KAFKA_BROKERS",
                format!("no answer to CreateTopics within {ADMIN_TIMEOUT:?}"),
            )
        })?
        .map_err(|e| Error::unreachable("Kafka", bootstrap, "check --brokers / KAFKA_BROKERS", e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::refused("Kafka", bootstrap, format!("create topic {name}"), code));
            }
        }
    }
    Ok(())
}

/// Deletes `topic`; failures are logged, not fatal (cleanup is best effort).
pub async fn delete_topic(bootstrap: &str, topic: &str) {
    let admin: std::result::Result<AdminClient<Quiet>, _> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("log_level", "3").create_with_context(Quiet);
    let Ok(admin) = admin else { return };
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    match tokio::time::timeout(ADMIN_TIMEOUT, admin.delete_topics(&[topic], &options)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("could not delete topic {topic}: {}", crate::error::Chain(&e)),
        Err(_) => tracing::warn!("could not delete topic {topic}: no answer within {ADMIN_TIMEOUT:?}"),
    }
}

/// Consumer settings shared by the downstream consumer and the checker.
pub fn consumer_config(bootstrap: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        // Required by librdkafka for a consumer; no group is ever joined
        // (partitions are assigned) and no offset is ever committed.
        .set("group.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // A position the broker no longer holds (its oldest records were
        // deleted) resumes at the oldest record it does hold, never at the
        // end (librdkafka's default, `largest`, would skip every record
        // still there). The skipped offsets then show as a gap.
        .set("auto.offset.reset", "earliest")
        // Deliver records as soon as they arrive: the event lag measured
        // downstream should be the strategy's, not the consumer's batching.
        .set("fetch.wait.max.ms", "10")
        .set("socket.connection.setup.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("log_level", "3");
    config
}

/// The partitions of `topic`, from the broker's metadata.
pub async fn partitions(bootstrap: &str, topic: &str) -> std::result::Result<Vec<i32>, String> {
    let topic = topic.to_string();
    with_client(bootstrap, "dualwrite-metadata", move |consumer| partitions_of(consumer, &topic)).await
}

/// Runs `work` with a short-lived metadata client, off the async threads
/// (librdkafka's metadata calls block).
async fn with_client<T: Send + 'static>(
    bootstrap: &str,
    client_id: &str,
    work: impl FnOnce(&BaseConsumer<Quiet>) -> std::result::Result<T, String> + Send + 'static,
) -> std::result::Result<T, String> {
    let config = consumer_config(bootstrap, client_id);
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<Quiet> = config.create_with_context(Quiet).map_err(|e| e.to_string())?;
        let answer = work(&consumer);
        // Nobody needs to wait for the consumer's close once the answer is here.
        super::let_go(consumer);
        answer
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The partitions of `topic`, asked through `consumer`.
fn partitions_of(consumer: &BaseConsumer<Quiet>, topic: &str) -> std::result::Result<Vec<i32>, String> {
    let metadata = consumer.fetch_metadata(Some(topic), ADMIN_TIMEOUT).map_err(|e| e.to_string())?;
    let t = metadata.topics().iter().find(|t| t.name() == topic).ok_or("topic missing from metadata")?;
    if let Some(err) = t.error() {
        return Err(format!("{:?}", RDKafkaErrorCode::from(err)));
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// The addresses the broker(s) behind `bootstrap` advertise (`host:port`):
/// where clients go after bootstrapping.
pub async fn advertised_brokers(bootstrap: &str) -> std::result::Result<Vec<String>, String> {
    with_client(bootstrap, "dualwrite-metadata", |consumer| {
        let metadata = consumer.fetch_metadata(None, ADMIN_TIMEOUT).map_err(|e| e.to_string())?;
        Ok(metadata.brokers().iter().map(|b| format!("{}:{}", b.host(), b.port())).collect())
    })
    .await
}

/// A client kept for asking one topic's watermarks again and again (the
/// drain asks every few milliseconds, the checker's read at its start and
/// end, over the same client). A new client first bootstraps, about 100 ms
/// on the embedded broker; a kept one asks over the connections it already
/// has. Each answer is the broker's own
/// at the time: metadata and ListOffsets are requested every time. A clone
/// asks over the same client: the checker's read and the drain share one.
#[derive(Clone)]
pub struct WatermarkClient {
    /// `None` only while being dropped (off the async workers).
    consumer: Option<std::sync::Arc<BaseConsumer<Quiet>>>,
    topic: String,
}

impl WatermarkClient {
    pub fn new(bootstrap: &str, topic: &str) -> std::result::Result<WatermarkClient, String> {
        let consumer: BaseConsumer<Quiet> =
            consumer_config(bootstrap, "dualwrite-watermarks").create_with_context(Quiet).map_err(|e| e.to_string())?;
        Ok(WatermarkClient { consumer: Some(std::sync::Arc::new(consumer)), topic: topic.to_string() })
    }

    /// Both watermarks of every partition: (low, high) — the first offset
    /// the broker still holds, and the offset the next record will get.
    pub async fn watermarks(&self) -> std::result::Result<BTreeMap<i32, (i64, i64)>, String> {
        let consumer = self.consumer.clone().expect("present until dropped");
        let topic = self.topic.clone();
        // librdkafka's metadata and offset calls block: off the async threads.
        tokio::task::spawn_blocking(move || {
            let mut marks = BTreeMap::new();
            for p in partitions_of(&consumer, &topic)? {
                let marks_of_p = consumer.fetch_watermarks(&topic, p, ADMIN_TIMEOUT).map_err(|e| e.to_string())?;
                marks.insert(p, marks_of_p);
            }
            Ok(marks)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The high watermark (next offset to be written) of every partition.
    pub async fn high_watermarks(&self) -> std::result::Result<BTreeMap<i32, i64>, String> {
        Ok(self.watermarks().await?.into_iter().map(|(p, (_low, high))| (p, high)).collect())
    }
}

impl Drop for WatermarkClient {
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            super::let_go(consumer);
        }
    }
}

/// Both watermarks of every partition, asked by a client of its own.
pub async fn watermarks(bootstrap: &str, topic: &str) -> std::result::Result<BTreeMap<i32, (i64, i64)>, String> {
    WatermarkClient::new(bootstrap, topic)?.watermarks().await
}

/// A consumer assigned to every partition of `topic` from its first offset.
pub async fn assign_from_beginning(
    bootstrap: &str,
    topic: &str,
    client_id: &str,
) -> std::result::Result<StreamConsumer<Quiet>, String> {
    assign(consumer_config(bootstrap, client_id), bootstrap, topic).await
}

/// Like [`assign_from_beginning`], reporting each partition's end as a
/// `PartitionEOF` error (librdkafka's `enable.partition.eof`): the sign that
/// the consumer has really fetched it.
pub async fn assign_from_beginning_with_eof(
    bootstrap: &str,
    topic: &str,
    client_id: &str,
) -> std::result::Result<StreamConsumer<Quiet>, String> {
    let mut config = consumer_config(bootstrap, client_id);
    config.set("enable.partition.eof", "true");
    assign(config, bootstrap, topic).await
}

/// Like [`assign_from_beginning_with_eof`], but each partition from the
/// offset `from` gives (0 for one it does not name): a consumer that
/// resumes where it left off.
pub async fn assign_at_with_eof(
    bootstrap: &str,
    topic: &str,
    client_id: &str,
    from: &BTreeMap<i32, i64>,
) -> std::result::Result<StreamConsumer<Quiet>, String> {
    let mut config = consumer_config(bootstrap, client_id);
    config.set("enable.partition.eof", "true");
    assign_at(config, bootstrap, topic, from).await
}

async fn assign(
    config: ClientConfig,
    bootstrap: &str,
    topic: &str,
) -> std::result::Result<StreamConsumer<Quiet>, String> {
    assign_at(config, bootstrap, topic, &BTreeMap::new()).await
}

async fn assign_at(
    config: ClientConfig,
    bootstrap: &str,
    topic: &str,
    from: &BTreeMap<i32, i64>,
) -> std::result::Result<StreamConsumer<Quiet>, String> {
    let parts = partitions(bootstrap, topic).await?;
    assign_partitions(config, topic, parts, from)
}

/// A consumer assigned to `parts` of `topic`, each at the offset `from`
/// gives (0 for one it does not name).
pub(super) fn assign_partitions(
    config: ClientConfig,
    topic: &str,
    parts: impl IntoIterator<Item = i32>,
    from: &BTreeMap<i32, i64>,
) -> std::result::Result<StreamConsumer<Quiet>, String> {
    let consumer: StreamConsumer<Quiet> = config.create_with_context(Quiet).map_err(|e| e.to_string())?;
    let mut assignment = TopicPartitionList::new();
    // Offset 0, not "the beginning": a run's topic is new, so its log starts
    // at 0, and "beginning" is whatever the broker answers to
    // ListOffsets(earliest) — which tansu 0.6.0 gets wrong (README, "dualwrite
    // found it"). If the broker did delete the first records, the consumer
    // falls back to the earliest it still has (`auto.offset.reset`), and the
    // snapshot names the deletion from the first offset it was served.
    for p in parts {
        let offset = from.get(&p).copied().unwrap_or(0);
        assignment.add_partition_offset(topic, p, Offset::Offset(offset)).map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    Ok(consumer)
}

/// Decodes a consumed message.
pub fn decode(message: &impl Message) -> TopicRecord {
    TopicRecord {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        event: match message.payload() {
            Some(bytes) => StockChanged::from_json(bytes).map_err(|e| e.to_string()),
            None => Err("empty value".into()),
        },
    }
}
