//! Creating a topic, and reading one back from the beginning.
//!
//! Reading assigns every partition at its first offset instead of joining a
//! consumer group: a group join costs seconds (the embedded broker delays it
//! on purpose), and a checker wants the whole topic, not a share of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::quiet::Quiet;
use crate::error::{Error, Result};
use crate::event::StockChanged;

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
        Ok(Err(e)) => tracing::warn!("could not delete topic {topic}: {e}"),
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
        work(&consumer)
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

/// The high watermark (next offset to be written) of every partition.
pub async fn high_watermarks(bootstrap: &str, topic: &str) -> std::result::Result<BTreeMap<i32, i64>, String> {
    let topic = topic.to_string();
    // One client for the metadata and the watermarks: the drain phase asks
    // this every 100 ms.
    with_client(bootstrap, "dualwrite-watermarks", move |consumer| {
        let mut marks = BTreeMap::new();
        for p in partitions_of(consumer, &topic)? {
            let (_low, high) = consumer.fetch_watermarks(&topic, p, ADMIN_TIMEOUT).map_err(|e| e.to_string())?;
            marks.insert(p, high);
        }
        Ok(marks)
    })
    .await
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

async fn assign(
    config: ClientConfig,
    bootstrap: &str,
    topic: &str,
) -> std::result::Result<StreamConsumer<Quiet>, String> {
    let parts = partitions(bootstrap, topic).await?;
    let consumer: StreamConsumer<Quiet> = config.create_with_context(Quiet).map_err(|e| e.to_string())?;
    let mut assignment = TopicPartitionList::new();
    for p in parts {
        assignment.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    Ok(consumer)
}

/// One record of the topic, as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The decoded value, or why it could not be decoded.
    pub event: std::result::Result<StockChanged, String>,
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

/// Reads the whole topic: every record of every partition, from offset 0
/// until the broker reports the partition's end (`PartitionEOF`: the fetch
/// position reached the high watermark of a Fetch response), in partition
/// and offset order. Gives up after `limit`.
///
/// Not up to a watermark asked for beforehand: tansu 0.6.0 answers
/// ListOffsets with the base offset of the batch written last in time, which
/// can be far below the partition's end (see the README, "dualwrite found
/// it"), and a reader that stopped there reported events that were on the
/// topic as lost. Offset 0 rather than "beginning" for the same reason
/// (ListOffsets(earliest)); if the broker deleted records, the consumer
/// falls back to the earliest it still has (`auto.offset.reset`).
pub async fn read_all(bootstrap: &str, topic: &str, limit: Duration) -> std::result::Result<Vec<TopicRecord>, String> {
    let deadline = Instant::now() + limit;
    let parts = partitions(bootstrap, topic).await?;
    let mut config = consumer_config(bootstrap, "dualwrite-checker");
    config.set("enable.partition.eof", "true").set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer<Quiet> = config.create_with_context(Quiet).map_err(|e| e.to_string())?;
    let mut assignment = TopicPartitionList::new();
    for p in &parts {
        assignment.add_partition_offset(topic, *p, Offset::Offset(0)).map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let mut ended = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    while ended.len() < parts.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let open: Vec<_> = parts.iter().filter(|p| !ended.contains(*p)).collect();
            return Err(format!(
                "read {} records; partitions {open:?} did not report their end within {limit:?}",
                records.len()
            ));
        }
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(message)) => records.push(decode(&message)),
            Ok(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Ok(Err(e)) => tracing::debug!("while reading the topic back: {e}"),
            Err(_) => {}
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}
