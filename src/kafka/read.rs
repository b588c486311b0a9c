//! The checker's read of a topic: every partition from its first offset to
//! the end the broker signals.
//!
//! The read does not trust one look at the high watermark: a broker may
//! misreport it, and records may have been deleted before they were read.
//! It reads until the broker *signals* each partition's end at the read's
//! position, asks the watermarks again, and keeps reading while they say
//! there is more; what it saw of each partition's extent goes into the
//! [`TopicRead`], which names whatever the read did not see.
//!
//! A run's read begins with the run ([`TopicTail::start`]) and ends after
//! the drain ([`TopicTail::finish`]). A record's offset and contents never
//! change once the broker has it, so a record read while the writers are
//! still at work is the record that offset holds at the end (a run is far
//! shorter than any retention, and the embedded broker's cap is checked
//! before a run starts); and reading as
//! the records arrive leaves only the last few to read once the drain is
//! over, instead of the whole topic. The end is still the broker's signal,
//! asked for after the drain: nothing published before then is missed,
//! and a record the broker lost or deleted before it was read shows as a
//! gap, as it would in a read begun at the end.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::let_go;
use super::quiet::Quiet;
use super::topic::{assign_partitions, consumer_config, decode, WatermarkClient};
use crate::snapshot::{PartitionRead, TopicRead, TopicRecord};

/// Reads the whole topic, or fails naming what it did not see: the
/// records of [`read_to_end`], only when [`TopicRead::missing`] finds
/// nothing missing. For tests and tools that need every record or none.
pub async fn read_all(bootstrap: &str, topic: &str, limit: Duration) -> Result<Vec<TopicRecord>, String> {
    let read = read_to_end(bootstrap, topic, limit).await?;
    let missing = read.missing();
    if missing.is_empty() {
        Ok(read.records)
    } else {
        Err(format!("the topic was not read completely: {}", missing.join("; ")))
    }
}

/// The checker's read of `topic`, begun now: every partition from its
/// first offset until the broker signals its end, within `limit`.
/// `Err` only when the read could not begin at all; everything else it
/// did not see, [`TopicRead::missing`] names.
pub async fn read_to_end(bootstrap: &str, topic: &str, limit: Duration) -> Result<TopicRead, String> {
    let started = Instant::now();
    let tail = tokio::time::timeout(limit, TopicTail::start(bootstrap, topic))
        .await
        .map_err(|_| format!("no answer to the first watermark request within {limit:?}"))??;
    tail.finish(limit.saturating_sub(started.elapsed())).await
}

/// A read of the topic that follows it as records arrive, until
/// [`TopicTail::finish`] reads it to its end. Dropped unfinished, it stops
/// and lets its consumer go.
pub struct TopicTail {
    finish: Option<oneshot::Sender<Duration>>,
    task: Option<JoinHandle<TopicRead>>,
    /// The read's client for the topic's watermarks, connected by the
    /// start: the drain asks over it too.
    marks: WatermarkClient,
}

impl TopicTail {
    /// Asks the watermarks (which also names the partitions) and starts
    /// following every partition from its log's start.
    pub async fn start(bootstrap: &str, topic: &str) -> Result<TopicTail, String> {
        // One client for every watermark request of the read, and the
        // partitions it names for the consumer: two clients, not four.
        let marks = WatermarkClient::new(bootstrap, topic)?;
        let first = marks.watermarks().await?;
        let mut config = consumer_config(bootstrap, "dualwrite-checker");
        // The broker's end-of-partition signal, which the read ends on.
        config.set("enable.partition.eof", "true");
        let consumer = assign_partitions(config, topic, first.keys().copied(), &BTreeMap::new())?;
        let (finish, asked) = oneshot::channel();
        let reading = Reading::new(first);
        let task = tokio::spawn(reading.run(consumer, marks.clone(), asked));
        Ok(TopicTail { finish: Some(finish), task: Some(task), marks })
    }

    /// The read's watermark client, already connected: for anyone else
    /// who needs to ask the topic's watermarks during the run.
    pub fn watermarks(&self) -> &WatermarkClient {
        &self.marks
    }

    /// Reads on until the broker signals every partition's end and its
    /// watermarks agree, within `limit` from now.
    pub async fn finish(mut self, limit: Duration) -> Result<TopicRead, String> {
        let task = self.task.take().expect("present until finished");
        if let Some(finish) = self.finish.take() {
            let _ = finish.send(limit);
        }
        task.await.map_err(|e| format!("the topic's read failed: {e}"))
    }
}

impl Drop for TopicTail {
    fn drop(&mut self) {
        // The task sees its channel close, stops, and lets its consumer go
        // off the async threads; nobody waits for it.
        self.finish.take();
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

/// What the read has seen so far.
struct Reading {
    /// The watermarks when the read began: where each log started.
    first: BTreeMap<i32, (i64, i64)>,
    at: BTreeMap<i32, Position>,
    seen: HashSet<(i32, i64)>,
    records: Vec<TopicRecord>,
    last_error: Option<String>,
    /// Whether anything arrived since the watermarks were last asked.
    news: bool,
}

impl Reading {
    fn new(first: BTreeMap<i32, (i64, i64)>) -> Reading {
        let at = first.iter().map(|(p, (low, _))| (*p, Position { next: *low, end_at: None })).collect();
        Reading { first, at, seen: HashSet::new(), records: Vec::new(), last_error: None, news: true }
    }

    /// Follows the topic until asked to finish, then reads it to its end.
    async fn run(
        mut self,
        consumer: StreamConsumer<Quiet>,
        marks: WatermarkClient,
        mut asked: oneshot::Receiver<Duration>,
    ) -> TopicRead {
        let limit = loop {
            tokio::select! {
                asked = &mut asked => match asked {
                    Ok(limit) => break limit,
                    // Dropped unfinished: nobody wants the read any more.
                    Err(_) => {
                        let_go(consumer);
                        return self.into_read(None, Some(Duration::ZERO));
                    }
                },
                message = consumer.recv() => self.take(message),
            }
        };
        // What went wrong while following (the run's faults: the read goes
        // through the proxy's kafka link like every client) is over; the
        // report names only what stops the read from reaching its end.
        self.last_error = None;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        // The watermarks asked once every partition was at its end.
        let mut rechecked: Option<BTreeMap<i32, (i64, i64)>> = None;
        let mut timed_out = false;
        loop {
            let all_at_end = self.at.values().all(|pos| pos.end_at == Some(pos.next));
            if all_at_end && self.news {
                match tokio::time::timeout_at(deadline, marks.watermarks()).await {
                    Ok(Ok(now)) => {
                        self.news = false;
                        let reached =
                            now.iter().all(|(p, (_, high))| self.at.get(p).is_some_and(|pos| *high <= pos.next));
                        rechecked = Some(now);
                        if reached {
                            break;
                        }
                        // The broker says there is more: keep fetching.
                    }
                    Ok(Err(e)) => {
                        // Asked again on the next pass, after a pause that
                        // keeps a failing broker from being asked in a tight loop.
                        self.last_error = Some(format!("asking the watermarks again: {e}"));
                        let pause = tokio::time::Instant::now() + Duration::from_millis(200);
                        tokio::time::sleep_until(deadline.min(pause)).await;
                    }
                    Err(_) => {
                        timed_out = true;
                        break;
                    }
                }
            }
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => self.take(message),
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
            _ => tokio::time::timeout(Duration::from_secs(2), marks.watermarks()).await.ok().and_then(|r| r.ok()),
        };
        let_go(consumer);
        self.into_read(final_marks, timed_out.then(|| started.elapsed()))
    }

    /// One message, or the end of a partition, or an error.
    fn take(&mut self, message: Result<rdkafka::message::BorrowedMessage<'_>, KafkaError>) {
        match message {
            Ok(message) => {
                let (p, offset) = (message.partition(), message.offset());
                // A record fetched twice (after an offset reset) counts once.
                if self.seen.insert((p, offset)) {
                    self.records.push(decode(&message));
                }
                let pos = self.at.entry(p).or_insert(Position { next: 0, end_at: None });
                pos.next = pos.next.max(offset + 1);
                pos.end_at = None;
                self.news = true;
            }
            Err(KafkaError::PartitionEOF(p)) => {
                if let Some(pos) = self.at.get_mut(&p) {
                    pos.end_at = Some(pos.next);
                }
                self.news = true;
            }
            // librdkafka retries by itself; the error is kept for the report.
            Err(e) => self.last_error = Some(e.to_string()),
        }
    }

    fn into_read(mut self, final_marks: Option<BTreeMap<i32, (i64, i64)>>, timed_out: Option<Duration>) -> TopicRead {
        self.records.sort_by_key(|r| (r.partition, r.offset));
        let partitions = self
            .first
            .iter()
            .map(|(p, (low, high))| {
                let pos = &self.at[p];
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
        TopicRead {
            records: self.records,
            partitions,
            timed_out_after_ms: timed_out.map(|d| d.as_millis() as u64),
            last_error: self.last_error,
        }
    }
}
