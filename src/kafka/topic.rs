//! Creating a topic, and reading one back from the beginning to its end.
//!
//! Reading assigns every partition at its first offset instead of joining a
//! consumer group: a group join costs seconds (the embedded broker delays it
//! on purpose), and a checker wants the whole topic, not a share of it.
//!
//! The checker's read ([`read_to_end`]) does not trust one look at the high
//! watermark: a broker may misreport it, and records may have been deleted
//! before the read. It reads until the broker *signals* each partition's end
//! at the read's position, asks the watermarks again, and keeps reading while
//! they say there is more; what it saw of each partition's extent goes into
//! the [`TopicRead`], which names whatever the read did not see.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::quiet::Quiet;
use crate::error::{Error, Result};
use crate::event::StockChanged;
use crate::snapshot::{PartitionRead, TopicRead};
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
    Ok(watermarks(bootstrap, topic).await?.into_iter().map(|(p, (_low, high))| (p, high)).collect())
}

/// Both watermarks of every partition: (low, high) — the first offset the
/// broker still holds, and the offset the next record will get.
pub async fn watermarks(bootstrap: &str, topic: &str) -> std::result::Result<BTreeMap<i32, (i64, i64)>, String> {
    let topic = topic.to_string();
    // One client for the metadata and the watermarks: the drain phase asks
    // this every 100 ms.
    with_client(bootstrap, "dualwrite-watermarks", move |consumer| {
        let mut marks = BTreeMap::new();
        for p in partitions_of(consumer, &topic)? {
            let marks_of_p = consumer.fetch_watermarks(&topic, p, ADMIN_TIMEOUT).map_err(|e| e.to_string())?;
            marks.insert(p, marks_of_p);
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

/// Reads the whole topic, or fails naming what it did not see: the
/// records of [`read_to_end`], only when [`TopicRead::missing`] finds
/// nothing missing. For tests and tools that need every record or none.
pub async fn read_all(bootstrap: &str, topic: &str, limit: Duration) -> std::result::Result<Vec<TopicRecord>, String> {
    let read = read_to_end(bootstrap, topic, limit).await?;
    let missing = read.missing();
    if missing.is_empty() {
        Ok(read.records)
    } else {
        Err(format!("the topic was not read completely: {}", missing.join("; ")))
    }
}

/// Where the read of one partition is.
#[derive(Debug)]
struct Position {
    /// The offset after the highest record read (the log start before any).
    next: i64,
    /// Where the read was when the broker last signalled the partition's
    /// end; cleared by any record that arrives after it.
    end_at: Option<i64>,
}

/// The checker's final read of `topic`: every partition from its first
/// offset until the broker signals its end, within `limit`.
///
/// The end is evidence, not an assumption: librdkafka's
/// `enable.partition.eof` reports a partition's end when a fetch at the
/// read's position is answered with a high watermark equal to it. Once every
/// partition is there, the watermarks are asked again (ListOffsets); if they
/// say more records exist, the read goes on until they arrive or the time
/// limit passes. Nothing here decides whether the read is complete: the
/// [`TopicRead`] carries what the broker said, and
/// [`TopicRead::missing`] names what was not seen (deleted records,
/// skipped offsets, a watermark the read never reached, records beyond a
/// watermark). `Err` only when the read could not begin at all.
pub async fn read_to_end(bootstrap: &str, topic: &str, limit: Duration) -> std::result::Result<TopicRead, String> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + limit);
    let bounded = |what: &'static str| move |_| format!("no answer to {what} within {limit:?}");
    let first = tokio::time::timeout_at(deadline, watermarks(bootstrap, topic))
        .await
        .map_err(bounded("the first watermark request"))??;
    let mut config = consumer_config(bootstrap, "dualwrite-checker");
    config.set("enable.partition.eof", "true");
    let consumer = tokio::time::timeout_at(deadline, assign(config, bootstrap, topic))
        .await
        .map_err(bounded("the partition metadata request"))??;

    let mut at: BTreeMap<i32, Position> =
        first.iter().map(|(p, (low, _))| (*p, Position { next: *low, end_at: None })).collect();
    let mut seen: HashSet<(i32, i64)> = HashSet::new();
    let mut records = Vec::new();
    let mut last_error = None;
    // The watermarks asked once every partition was at its end, and whether
    // anything arrived since they were asked.
    let mut rechecked: Option<BTreeMap<i32, (i64, i64)>> = None;
    let mut news_since_recheck = true;
    let mut timed_out = false;
    loop {
        let all_at_end = at.values().all(|pos| pos.end_at == Some(pos.next));
        if all_at_end && news_since_recheck {
            match tokio::time::timeout_at(deadline, watermarks(bootstrap, topic)).await {
                Ok(Ok(marks)) => {
                    news_since_recheck = false;
                    let reached = marks.iter().all(|(p, (_, high))| at.get(p).is_some_and(|pos| *high <= pos.next));
                    rechecked = Some(marks);
                    if reached {
                        break;
                    }
                    // The broker says there is more: keep fetching.
                }
                Ok(Err(e)) => {
                    // Asked again on the next pass, after a pause that keeps
                    // a failing broker from being asked in a tight loop.
                    last_error = Some(format!("asking the watermarks again: {e}"));
                    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(200)))
                        .await;
                }
                Err(_) => {
                    timed_out = true;
                    break;
                }
            }
        }
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => {
                let (p, offset) = (message.partition(), message.offset());
                // A record fetched twice (after an offset reset) counts once.
                if seen.insert((p, offset)) {
                    records.push(decode(&message));
                }
                let pos = at.entry(p).or_insert(Position { next: 0, end_at: None });
                pos.next = pos.next.max(offset + 1);
                pos.end_at = None;
                news_since_recheck = true;
            }
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(pos) = at.get_mut(&p) {
                    pos.end_at = Some(pos.next);
                }
                news_since_recheck = true;
            }
            // librdkafka retries by itself; the error is kept for the report.
            Ok(Err(e)) => last_error = Some(e.to_string()),
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    // A read that ran out of time still says what the broker holds now
    // (briefly: the time limit has already passed).
    let final_marks = match rechecked {
        Some(marks) if !timed_out => Some(marks),
        _ => tokio::time::timeout(Duration::from_secs(2), watermarks(bootstrap, topic)).await.ok().and_then(|r| r.ok()),
    };
    // Dropping librdkafka's consumer joins its threads: off the async workers.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;

    records.sort_by_key(|r: &TopicRecord| (r.partition, r.offset));
    let partitions = first
        .iter()
        .map(|(p, (low, high))| {
            let pos = &at[p];
            PartitionRead {
                partition: *p,
                low: *low,
                high: *high,
                final_watermarks: final_marks.as_ref().and_then(|m| m.get(p).copied()),
                next: pos.next,
                end_signalled: pos.end_at == Some(pos.next),
            }
        })
        .collect();
    Ok(TopicRead {
        records,
        partitions,
        timed_out_after_ms: timed_out.then(|| started.elapsed().as_millis() as u64),
        last_error,
    })
}
