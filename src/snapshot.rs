//! The snapshot: what the stores hold once the run has healed and drained.
//!
//! The snapshot is the checker's final read, taken directly (not through the
//! fault proxy): every committed order and stock row from Postgres, every
//! record of the topic read to its end, every cached key of the run, the
//! downstream consumer's view, and what is still waiting to be published.
//! Together with the history it is all the reconciler sees.
//!
//! These are leaf types: the store clients fill them (`db`,
//! `kafka::topic`, the relay and the connector), the runner
//! gathers them, and the reconciler reads nothing else. A snapshot also
//! says what it did *not* see — how the drain ended, what the broker said
//! about each partition's extent, a read that failed — because a verdict
//! is given only over complete evidence (see `reconcile`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::event::StockChanged;
use crate::history::{IdMap, Millis, OrderId, StockAfter};

/// What the stores hold after drain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Every committed order (the `orders` table).
    pub orders: Vec<OrderRow>,
    /// Every product's stock row.
    pub stock: Vec<StockRow>,
    /// The whole topic. `None` when the strategy publishes nothing;
    /// `Some(Err)` when it could not be read at all (the verdict is then
    /// unknown). A read that began but may have missed records is `Ok`: its
    /// [`TopicRead::partitions`] say what the broker reported, and the
    /// reconciler decides whether the read was complete.
    pub topic: Option<Result<TopicRead, String>>,
    /// Every cached product. `None` when the strategy has no cache.
    pub cache: Option<Result<Vec<CachedEntry>, String>>,
    /// The downstream consumer's state. `None` when nothing is published.
    pub downstream: Option<DownstreamState>,
    /// What is left to publish. `None` when the strategy has no relay or
    /// connector; `Some(Err)` when it could not be read (then whether
    /// anything was left behind is unknown, never "does not apply").
    pub backlog: Option<Result<Backlog, String>>,
    /// How the drain phase ended.
    pub drain: DrainReport,
}

/// A committed order as the `orders` table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRow {
    pub order_id: OrderId,
    pub product_id: i32,
    pub delta: i32,
    pub quantity: i64,
    pub version: i64,
}

/// A product's stock row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StockRow {
    pub product_id: i32,
    pub quantity: i64,
    pub version: i64,
}

/// One record of the topic, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The decoded value, or why it could not be decoded.
    pub event: Result<StockChanged, String>,
}

/// The topic as the snapshot read it: the records, and per partition what
/// the broker said about where the partition begins and ends.
///
/// A broker can hold fewer records than were acknowledged (retention, the
/// embedded broker's size cap) and can misreport its own watermarks, so the
/// records alone do not prove that the read saw everything. The reconciler
/// checks them against [`PartitionRead`] (see `reconcile::topic_evidence`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopicRead {
    /// Every record read, in partition and offset order, each offset once.
    pub records: Vec<TopicRecord>,
    /// One entry per partition the broker's metadata lists.
    pub partitions: Vec<PartitionRead>,
    /// Set when the read's time limit passed before every partition's end
    /// was reached: how long it had read, in ms.
    pub timed_out_after_ms: Option<Millis>,
    /// The last error the consumer reported while reading, if any.
    pub last_error: Option<String>,
}

/// What the broker said about one partition, and where the read stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PartitionRead {
    pub partition: i32,
    /// The low watermark (first offset the broker still holds) when the
    /// read began. A run's topic is new, so anything above 0 was deleted.
    pub low: i64,
    /// The high watermark (the offset the next record would get) when the
    /// read began.
    pub high: i64,
    /// Both watermarks asked again once the read had reached the end; `None`
    /// if that second question got no answer.
    pub final_watermarks: Option<(i64, i64)>,
    /// The offset after the last record read: where the read stopped.
    pub next: i64,
    /// Whether the broker signalled the end of the partition (librdkafka's
    /// `enable.partition.eof`: a fetch answered with a high watermark equal
    /// to the fetch position) at `next`, with no record after it.
    pub end_signalled: bool,
}

impl TopicRead {
    /// A read assumed complete, built from records alone: each partition
    /// from offset 0 to one past its last record, its end signalled. For
    /// hand-built snapshots (tests), and for records that
    /// `kafka::topic::read_all` returned — it fails unless the read
    /// was complete, so the assumption has been checked.
    pub fn assumed_complete(mut records: Vec<TopicRecord>, partitions: i32) -> TopicRead {
        records.sort_by_key(|r| (r.partition, r.offset));
        let partitions = (0..partitions)
            .map(|p| {
                let next = records.iter().filter(|r| r.partition == p).map(|r| r.offset + 1).max().unwrap_or(0);
                PartitionRead {
                    partition: p,
                    low: 0,
                    high: next,
                    final_watermarks: Some((0, next)),
                    next,
                    end_signalled: true,
                }
            })
            .collect();
        TopicRead { records, partitions, timed_out_after_ms: None, last_error: None }
    }

    /// The offsets read, per partition, gathered in one pass over the
    /// records: the checks below read a million records once, not twice
    /// per partition.
    fn offsets(&self) -> HashMap<i32, Vec<i64>> {
        let mut offsets: HashMap<i32, Vec<i64>> = HashMap::new();
        for record in &self.records {
            offsets.entry(record.partition).or_default().push(record.offset);
        }
        offsets
    }

    /// What this read did not see, in words, one line per finding; empty
    /// when, for every partition, it read each offset from the log's start
    /// to the end the broker signalled. Pure: the reconciler's evidence
    /// check, and `kafka::topic::read_all`'s.
    ///
    /// | finding | why the figures would be wrong without it |
    /// |---|---|
    /// | the log starts above offset 0 (the low watermark, and nothing served below it) | the broker deleted the oldest records (retention, the embedded broker's cap): their orders would count as lost |
    /// | offsets skipped | records between two that were read were never served |
    /// | no end signal | the read stopped (its time limit) before the partition's end |
    /// | high watermark above where the read stopped | records the broker says it holds were not read |
    /// | records beyond the high watermark, and no end signal | nothing says the read reached the end |
    ///
    /// A broker whose ListOffsets answers disagree with what its fetches
    /// served, where the fetch did signal the end, has not hidden anything
    /// from the read: that is in [`TopicRead::broker_notes`], not here.
    pub fn missing(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let offsets = self.offsets();
        for part in &self.partitions {
            let p = part.partition;
            // The offsets read from this partition, in order.
            let mut sorted: Vec<i64> = offsets.get(&p).cloned().unwrap_or_default();
            sorted.sort_unstable();
            let first_read = sorted.first().copied();
            // Where the log starts: the broker's word, unless it served a
            // record below it (then its word is wrong, see `broker_notes`).
            let start = first_read.map_or(part.low, |first| first.min(part.low));
            if start > 0 {
                lines.push(format!(
                    "the broker deleted {} records of partition {p} before the snapshot (its log starts at offset {})",
                    thousands(start),
                    thousands(start)
                ));
            }
            // Offsets the read skipped over, from where the log starts.
            let (mut expected, mut skipped, mut first_gap) = (start, 0i64, None);
            for offset in sorted {
                if offset > expected {
                    skipped += offset - expected;
                    first_gap.get_or_insert((expected, offset - 1));
                }
                expected = expected.max(offset + 1);
            }
            if let Some((from, to)) = first_gap {
                lines.push(format!(
                    "partition {p}: {} offsets between {} and {} were never served (the first: {}–{})",
                    thousands(skipped),
                    thousands(start),
                    thousands(part.next),
                    thousands(from),
                    thousands(to)
                ));
            }
            if !part.end_signalled {
                let why = match (self.timed_out_after_ms, &self.last_error) {
                    (Some(ms), Some(e)) => {
                        format!("after {:.1} s (the consumer's last error: {e})", ms as f64 / 1000.0)
                    }
                    (Some(ms), None) => format!("after {:.1} s", ms as f64 / 1000.0),
                    (None, _) => "before the read ended".to_string(),
                };
                lines.push(format!(
                    "partition {p}: the broker had not signalled the partition's end at offset {} {why}",
                    thousands(part.next)
                ));
            }
            match part.final_watermarks {
                None => lines.push(format!(
                    "partition {p}: the broker did not answer when asked for its watermarks after the read"
                )),
                Some((_, high)) if high > part.next => lines.push(format!(
                    "partition {p}: the broker's high watermark is {} but the read ended at offset {}: {} records unread",
                    thousands(high),
                    thousands(part.next),
                    thousands(high - part.next)
                )),
                Some((_, high)) if high < part.next && !part.end_signalled => lines.push(format!(
                    "partition {p}: records were read up to offset {}, beyond the high watermark {} the broker \
                     reports, and no fetch signalled the end: nothing shows the read reached it",
                    thousands(part.next - 1),
                    thousands(high)
                )),
                Some(_) => {}
            }
        }
        lines
    }

    /// What the broker said that disagrees with what it served, where the
    /// read is complete all the same: its fetch signalled each partition's
    /// end, and it served records below the log start it reported. Facts
    /// about the broker, for the report — not missing evidence. (tansu
    /// 0.6.0 answers ListOffsets from the batch written last, or first, in
    /// time: README, "dualwrite found it".)
    pub fn broker_notes(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let offsets = self.offsets();
        for part in &self.partitions {
            let p = part.partition;
            let first_read = offsets.get(&p).and_then(|o| o.iter().min().copied());
            if let Some(first) = first_read.filter(|first| *first < part.low) {
                lines.push(format!(
                    "partition {p}: the broker's ListOffsets says its log starts at offset {}, but it served \
                     records from offset {}",
                    thousands(part.low),
                    thousands(first)
                ));
            }
            if let Some((_, high)) = part.final_watermarks.filter(|(_, high)| *high < part.next) {
                if part.end_signalled {
                    lines.push(format!(
                        "partition {p}: the broker's fetch signalled the end at offset {}, but its ListOffsets \
                         answer says {}; the read went by the fetch",
                        thousands(part.next),
                        thousands(high)
                    ));
                }
            }
        }
        lines
    }
}

/// One cached product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CachedEntry {
    pub product_id: i32,
    /// The cached value, or the raw text if dualwrite cannot read it.
    pub value: Result<StockAfter, String>,
}

/// The downstream consumer's state: an idempotent projection of the topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DownstreamState {
    /// Per product, the event with the highest version seen (older versions
    /// and duplicates are ignored).
    pub projection: BTreeMap<i32, StockAfter>,
    /// When each order's event was first delivered, on the run's clock.
    #[serde(skip)]
    pub first_seen: IdMap<Millis>,
    /// Records delivered in total (duplicates included).
    pub records: u64,
    /// Deliveries the consumer ignored because it already held that
    /// version of the product or a newer one: duplicates, and versions that
    /// arrived late. What idempotency by version discarded.
    #[serde(default)]
    pub discarded: u64,
    /// Per product, the last event to arrive, whatever its version: what a
    /// consumer that applies events in arrival order (last write wins)
    /// would hold. Kept beside the projection to show what the version
    /// check saves.
    #[serde(default)]
    pub last_arrived: BTreeMap<i32, StockAfter>,
    /// Deliveries of a version older than the newest one already delivered
    /// for its product: each moved the last-write-wins view back in time.
    #[serde(default)]
    pub arrived_late: u64,
}

/// What a relay or connector has not published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Outbox rows never marked published (outbox).
    pub outbox_unpublished: u64,
    /// Outbox rows the relay gave up on (permanent errors).
    pub dead_letters: u64,
    /// Committed orders whose event the broker has not acknowledged to the
    /// connector (cdc, outbox-cdc); `None` for the relay, whose backlog is
    /// its unpublished rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unacknowledged: Option<u64>,
    /// Bytes of WAL the replication slot has not confirmed (cdc,
    /// outbox-cdc); informational: the WAL is the whole server's, and the
    /// connector reports its position only every second.
    pub slot_lag_bytes: Option<u64>,
    /// two-phase: what its coordinator log and `pg_prepared_xacts` say.
    /// Its `outbox_unpublished` counts commit decisions whose event nobody
    /// has published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_doubt: Option<InDoubt>,
}

impl Backlog {
    /// Everything left behind that should have been published — or, for
    /// two-phase, resolved: a prepared transaction still in doubt.
    pub fn left_behind(&self) -> u64 {
        self.outbox_unpublished
            + self.dead_letters
            + self.unacknowledged.unwrap_or(0)
            + self.in_doubt.map_or(0, |d| d.left_prepared)
    }
}

/// two-phase: the transactions left in doubt, and the orders they blocked.
/// Read from the run's `coordinator_log` and `pg_prepared_xacts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InDoubt {
    /// Prepared transactions that recovery had to resolve (their
    /// coordinator died or lost track of them): the orders in doubt.
    pub resolved: u64,
    /// Of those, how many the log said to commit (the rest rolled back).
    pub committed_by_recovery: u64,
    /// Events recovery published from the log.
    pub republished: u64,
    /// Prepared transactions of the run still in `pg_prepared_xacts` at the
    /// snapshot: still holding their locks, still in doubt.
    pub left_prepared: u64,
    /// The most prepared transactions of the run one recovery pass saw in
    /// `pg_prepared_xacts` at once.
    pub most_prepared_seen: u64,
    /// Orders whose stock UPDATE waited at least
    /// `strategy::two_phase::BLOCKED_AFTER_MS` for the row lock.
    pub blocked: u64,
    pub lock_wait_p99_ms: Option<u64>,
    pub lock_wait_max_ms: Option<u64>,
    /// The transaction that held its locks in doubt the longest.
    pub longest: Option<LongestLock>,
}

/// The in-doubt transaction that held its product's lock the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LongestLock {
    pub order_id: OrderId,
    /// `None` when recovery rolled it back (the order never committed and
    /// its coordinator had not logged it).
    pub product_id: Option<i32>,
    /// From PREPARE TRANSACTION to its resolution by recovery.
    pub locked_ms: u64,
    /// Orders for that product that waited on the lock meanwhile.
    pub waited: u64,
}

/// How the drain phase ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// Everything caught up before the drain timeout.
    pub completed: bool,
    pub waited_ms: Millis,
    /// What was still behind, if the drain timed out, in words.
    pub behind: Option<String>,
    /// Whether the relay or connector had published everything committed:
    /// `None` when the strategy has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<bool>,
    /// Whether the downstream consumer had read every partition to its high
    /// watermark: `None` when nothing is published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed: Option<bool>,
}

impl DrainReport {
    /// A drain that caught up: nothing was left behind.
    pub fn complete(waited_ms: Millis) -> DrainReport {
        DrainReport { completed: true, waited_ms, ..DrainReport::default() }
    }
}

/// `39894` as `39,894`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> TopicRecord {
        TopicRecord { partition, offset, key: Some("1".into()), event: Err("not needed here".into()) }
    }

    /// A read of one partition holding `offsets`, the broker reporting
    /// watermarks `low..high` before and after.
    fn read(offsets: &[i64], low: i64, high: i64) -> TopicRead {
        let next = offsets.iter().map(|o| o + 1).max().unwrap_or(low);
        TopicRead {
            records: offsets.iter().map(|o| record(0, *o)).collect(),
            partitions: vec![PartitionRead {
                partition: 0,
                low,
                high,
                final_watermarks: Some((low, high)),
                next,
                end_signalled: true,
            }],
            timed_out_after_ms: None,
            last_error: None,
        }
    }

    #[test]
    fn a_whole_partition_misses_nothing() {
        assert_eq!(read(&[0, 1, 2], 0, 3).missing(), Vec::<String>::new());
        assert_eq!(read(&[], 0, 0).missing(), Vec::<String>::new());
        assert_eq!(TopicRead::assumed_complete(vec![record(1, 0), record(1, 1)], 3).missing(), Vec::<String>::new());
    }

    #[test]
    fn deleted_records_are_named_with_their_count() {
        // The embedded broker's cap: the oldest 39,894 records are gone.
        let r = read(&[39_894, 39_895], 39_894, 39_896);
        let missing = r.missing();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(
            missing[0],
            "the broker deleted 39,894 records of partition 0 before the snapshot (its log starts at offset 39,894)"
        );
    }

    #[test]
    fn skipped_offsets_are_a_gap() {
        let missing = read(&[0, 1, 4, 5, 9], 0, 10).missing();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].contains("5 offsets between 0 and 10 were never served (the first: 2–3)"), "{missing:?}");
        // A first record above the low watermark is a gap too.
        let missing = read(&[3, 4], 0, 5).missing();
        assert!(missing[0].contains("the first: 0–2"), "{missing:?}");
    }

    #[test]
    fn a_watermark_above_the_read_means_records_unread() {
        let mut r = read(&[0, 1], 0, 2);
        r.partitions[0].final_watermarks = Some((0, 5));
        let missing = r.missing();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(
            missing[0].contains("high watermark is 5 but the read ended at offset 2: 3 records unread"),
            "{missing:?}"
        );
    }

    #[test]
    fn a_fetch_end_beyond_the_watermark_is_a_note_on_the_broker_not_missing_evidence() {
        // tansu 0.6.0, memory engine, two idempotent producers at once
        // (tests/evidence.rs): every record read, the fetch signalled the end
        // at 4,000, ListOffsets says 2,001. Nothing was hidden from the read.
        let offsets: Vec<i64> = (0..4_000).collect();
        let r = read(&offsets, 0, 2_001);
        assert_eq!(r.missing(), Vec::<String>::new());
        assert_eq!(
            r.broker_notes(),
            vec!["partition 0: the broker's fetch signalled the end at offset 4,000, but its ListOffsets answer \
                  says 2,001; the read went by the fetch"
                .to_string()]
        );
    }

    #[test]
    fn a_log_start_the_broker_misreports_is_a_note_not_a_deletion() {
        // ListOffsets(earliest) says 1,000, yet the fetch served from 0.
        let offsets: Vec<i64> = (0..1_500).collect();
        let mut r = read(&offsets, 1_000, 1_500);
        r.partitions[0].final_watermarks = Some((1_000, 1_500));
        assert_eq!(r.missing(), Vec::<String>::new());
        let notes = r.broker_notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("says its log starts at offset 1,000, but it served records from offset 0"));
    }

    #[test]
    fn records_beyond_the_watermark_and_no_end_mean_the_end_is_unknown() {
        let offsets: Vec<i64> = (0..4_000).collect();
        let mut r = read(&offsets, 0, 2_001);
        r.partitions[0].end_signalled = false;
        r.timed_out_after_ms = Some(30_000);
        let missing = r.missing();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(
            missing[0].contains("had not signalled the partition's end at offset 4,000 after 30.0 s"),
            "{missing:?}"
        );
        assert!(missing[1].contains("beyond the high watermark 2,001"), "{missing:?}");
    }

    #[test]
    fn watermarks_that_could_not_be_asked_again_are_missing_evidence() {
        let mut r = read(&[0], 0, 1);
        r.partitions[0].final_watermarks = None;
        assert!(r.missing()[0].contains("did not answer"), "{:?}", r.missing());
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(39_894), "39,894");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
    }
}
