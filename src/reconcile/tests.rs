//! The reconciler on hand-built runs: every anomaly, every kind of missing
//! evidence.

use super::*;
use crate::event::StockChanged;
use crate::history::{Event, Events, Order, ProbeSample, ReadSample, Told};
use crate::snapshot::{Backlog, CachedEntry, DownstreamState, DrainReport, StockRow, TopicRead, TopicRecord};
use uuid::Uuid;

/// A hand-built run: orders placed, and what the stores hold.
struct Run {
    history: Events,
    snapshot: Snapshot,
    clock: Millis,
}

fn id(n: u128) -> OrderId {
    Uuid::from_u128(n)
}

impl Run {
    /// A strategy that publishes (a topic and a downstream consumer), one
    /// product at version 0.
    fn publishing() -> Run {
        Run {
            history: Events::new(),
            snapshot: Snapshot {
                stock: vec![StockRow { product_id: 1, quantity: 1000, version: 0 }],
                topic: Some(Ok(TopicRead::assumed_complete(Vec::new(), 1))),
                downstream: Some(DownstreamState::default()),
                drain: DrainReport::complete(0),
                ..Snapshot::default()
            },
            clock: 0,
        }
    }

    fn tick(&mut self) -> Millis {
        self.clock += 10;
        self.clock
    }

    /// A writer places order `n` (2 units of product 1) and is told
    /// `db` and then `topic` (None: the leg was never invoked).
    fn write(&mut self, n: u128, db: Option<Told>, topic: Option<Told>) {
        let order = Order { order_id: id(n), product_id: 1, delta: -2, writer: 0, seq: n as u64 };
        let at = self.tick();
        self.history.push(Event::Begin { at, order });
        for (leg, told) in [(Leg::Db, db), (Leg::Topic, topic)] {
            if let Some(told) = told {
                let at = self.tick();
                self.history.push(Event::Invoke { at, order_id: id(n), leg });
                let at = self.tick();
                self.history.push(Event::Complete { at, order_id: id(n), leg, told });
            }
        }
    }

    /// The database holds order `n` at `version`, and stock follows it.
    fn commit(&mut self, n: u128, version: i64) {
        let quantity = 1000 - 2 * version;
        self.snapshot.orders.push(OrderRow { order_id: id(n), product_id: 1, delta: -2, quantity, version });
        self.snapshot.stock[0] = StockRow { product_id: 1, quantity, version };
    }

    /// The topic holds order `n`'s event at `version`.
    fn publish(&mut self, n: u128, version: i64) {
        let Some(Ok(topic)) = &mut self.snapshot.topic else { unreachable!() };
        let event = StockChanged { order_id: id(n), product_id: 1, delta: -2, quantity: 1000 - 2 * version, version };
        let offset = topic.records.len() as i64;
        topic.records.push(TopicRecord { partition: 0, offset, key: Some("1".into()), event: Ok(event.clone()) });
        // The broker's watermarks follow the log.
        let part = &mut topic.partitions[0];
        (part.high, part.next, part.final_watermarks) = (offset + 1, offset + 1, Some((0, offset + 1)));
        let downstream = self.snapshot.downstream.as_mut().unwrap();
        downstream.records += 1;
        let at = self.clock + 5;
        downstream.first_seen.entry(id(n)).or_insert(at);
        // The consumer's rule: only a newer version changes the view.
        match downstream.projection.get(&1) {
            Some(held) if event.version <= held.version => downstream.discarded += 1,
            _ => {
                downstream.projection.insert(1, event.after());
            }
        }
    }

    fn findings(&self) -> Findings {
        reconcile(&self.history, &self.snapshot)
    }
}

#[test]
fn a_clean_run_is_consistent_with_nothing_to_report() {
    let mut run = Run::publishing();
    for n in 1..=3 {
        run.write(n, Some(Told::ok()), Some(Told::ok()));
        run.commit(n, n as i64);
        run.publish(n, n as i64);
    }
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Consistent, "{:?}", f.reasons);
    assert_eq!(f.orders, Orders { attempted: 3, committed: 3, acknowledged: 3, skipped: Skipped::default() });
    for anomaly in [Anomaly::Lost, Anomaly::Ghost, Anomaly::Duplicate, Anomaly::Reordered, Anomaly::ProjectionDrift] {
        assert_eq!(f.count(anomaly), Some(0), "{anomaly:?}");
    }
    // No cache, no relay: those anomalies do not apply at all.
    assert_eq!(f.count(Anomaly::StaleCache), None);
    assert_eq!(f.count(Anomaly::Backlog), None);
}

#[test]
fn lost_a_commit_whose_event_never_reached_the_topic() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::ok()));
    run.commit(1, 1);
    run.publish(1, 1);
    // Committed, then the publish failed: the classic black hole.
    run.write(2, Some(Told::ok()), Some(Told::fail("connection reset")));
    run.commit(2, 2);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Lost), Some(1));
    assert_eq!(f.anomalies[&Anomaly::Lost].examples[0].order_id, Some(id(2)));
    // The consumer's last event is version 1; the database holds 2.
    assert_eq!(f.count(Anomaly::ProjectionDrift), Some(1));
    assert_eq!(f.verdict, Verdict::Inconsistent);
    assert!(f.reasons[0].contains("1 lost"), "{:?}", f.reasons);
}

#[test]
fn ghost_an_event_for_an_order_that_never_committed() {
    let mut run = Run::publishing();
    // Published inside the transaction, then the commit was lost.
    run.write(1, Some(Told::fail("connection reset before COMMIT")), Some(Told::ok()));
    run.publish(1, 1);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Ghost), Some(1));
    assert_eq!(f.anomalies[&Anomaly::Ghost].examples[0].order_id, Some(id(1)));
    assert_eq!(f.orders.committed, 0);
    assert_eq!(f.verdict, Verdict::Inconsistent);
}

#[test]
fn duplicate_counts_extra_deliveries_and_does_not_break_consistency() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::ok()));
    run.commit(1, 1);
    run.publish(1, 1);
    run.publish(1, 1);
    run.publish(1, 1);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Duplicate), Some(2));
    assert_eq!(f.count(Anomaly::Lost), Some(0));
    // The idempotent consumer absorbed them: no drift, consistent.
    assert_eq!(f.count(Anomaly::ProjectionDrift), Some(0));
    assert_eq!(f.verdict, Verdict::Consistent);
    // Effectively-once, shown: the consumer discarded both; one that
    // applied every delivery would have shipped the order's 2 units twice more.
    let r = f.redeliveries.expect("a whole topic read");
    assert_eq!((r.duplicates, r.discarded_by_consumer, r.extra_units), (2, Some(2), 4));
}

#[test]
fn reordered_a_version_arriving_after_a_newer_one() {
    let mut run = Run::publishing();
    for n in 1..=3 {
        run.write(n, Some(Told::ok()), Some(Told::ok()));
        run.commit(n, n as i64);
    }
    run.publish(1, 1);
    run.publish(3, 3);
    run.publish(2, 2);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Reordered), Some(1));
    assert_eq!(f.anomalies[&Anomaly::Reordered].examples[0].order_id, Some(id(2)));
    // Ignoring older versions keeps the projection right.
    assert_eq!(f.count(Anomaly::ProjectionDrift), Some(0));
    assert_eq!(f.verdict, Verdict::Consistent);
}

#[test]
fn a_redelivered_old_record_is_a_duplicate_not_a_reordering() {
    let mut run = Run::publishing();
    for n in 1..=2 {
        run.write(n, Some(Told::ok()), Some(Told::ok()));
        run.commit(n, n as i64);
    }
    run.publish(1, 1);
    run.publish(2, 2);
    run.publish(1, 1);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Duplicate), Some(1));
    assert_eq!(f.count(Anomaly::Reordered), Some(0));
}

#[test]
fn recovered_an_unknown_commit_that_happened() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::unknown("reset while COMMIT was in flight")), None);
    run.commit(1, 1);
    // An Unknown commit that did not happen is not recovered.
    run.write(2, Some(Told::unknown("reset while COMMIT was in flight")), None);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Recovered), Some(1));
    let example = &f.anomalies[&Anomaly::Recovered].examples[0];
    assert_eq!((example.order_id, example.leg), (Some(id(1)), Some(Leg::Db)));
    assert_eq!(f.count(Anomaly::FalseFailure), Some(0));
    // The writer never published order 1: lost as well.
    assert_eq!(f.count(Anomaly::Lost), Some(1));
}

#[test]
fn recovered_an_unknown_publish_that_landed() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::unknown("message timed out")));
    run.commit(1, 1);
    run.publish(1, 1);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Recovered), Some(1));
    assert_eq!(f.anomalies[&Anomaly::Recovered].examples[0].leg, Some(Leg::Topic));
    assert_eq!(f.verdict, Verdict::Consistent);
}

#[test]
fn false_failure_a_failure_that_happened() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::fail("the writer believed it failed")), None);
    run.commit(1, 1);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::FalseFailure), Some(1));
    assert_eq!(f.verdict, Verdict::Inconsistent);
}

#[test]
fn a_crash_mid_leg_reads_as_unknown() {
    let mut run = Run::publishing();
    let order = Order { order_id: id(1), product_id: 1, delta: -2, writer: 0, seq: 1 };
    run.history.push(Event::Begin { at: 1, order });
    run.history.push(Event::Invoke { at: 2, order_id: id(1), leg: Leg::Db });
    run.commit(1, 1);
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Recovered), Some(1));
    assert_eq!(f.orders.acknowledged, 0);
}

#[test]
fn projection_drift_when_the_consumer_missed_the_last_change() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::ok()));
    run.commit(1, 1);
    run.publish(1, 1);
    run.write(2, Some(Told::ok()), Some(Told::ok()));
    run.commit(2, 2);
    run.publish(2, 2);
    // The consumer stopped before the last event.
    run.snapshot.downstream.as_mut().unwrap().projection.insert(1, StockAfter { quantity: 998, version: 1 });
    let f = run.findings();
    assert_eq!(f.count(Anomaly::ProjectionDrift), Some(1));
    assert!(f.anomalies[&Anomaly::ProjectionDrift].examples[0].detail.contains("998 (v1)"));
}

#[test]
fn stale_cache_entries_differ_from_the_database() {
    let mut run = Run::publishing();
    run.snapshot.topic = None;
    run.snapshot.downstream = None;
    run.snapshot.stock = vec![
        StockRow { product_id: 1, quantity: 990, version: 5 },
        StockRow { product_id: 2, quantity: 1000, version: 0 },
    ];
    run.snapshot.cache = Some(Ok(vec![
        CachedEntry { product_id: 1, value: Ok(StockAfter { quantity: 994, version: 3 }) },
        CachedEntry { product_id: 2, value: Ok(StockAfter { quantity: 1000, version: 0 }) },
    ]));
    let f = run.findings();
    assert_eq!(f.count(Anomaly::StaleCache), Some(1));
    assert!(f.anomalies[&Anomaly::StaleCache].examples[0].detail.contains("cached 994 (v3)"));
    assert_eq!(f.count(Anomaly::Lost), None, "nothing is published");
    assert_eq!(f.verdict, Verdict::Inconsistent);
}

#[test]
fn stale_reads_are_measured_in_versions_and_time() {
    let mut run = Run::publishing();
    run.snapshot.cache = Some(Ok(Vec::new()));
    // Versions 1 and 2 commit at known times.
    run.write(1, Some(Told::ok()), None);
    run.history.push(Event::Wrote { at: 0, order_id: id(1), after: StockAfter { quantity: 998, version: 1 } });
    run.write(2, Some(Told::ok()), None);
    run.history.push(Event::Wrote { at: 0, order_id: id(2), after: StockAfter { quantity: 996, version: 2 } });
    let v1_committed = 30; // see Run::write: begin 10, invoke 20, complete 30
    let sample = |at, served: i64, truth: i64| {
        Event::Read(ReadSample {
            at,
            product_id: 1,
            served: Some(StockAfter { quantity: 1000 - 2 * served, version: served }),
            from_cache: true,
            filled_cache: false,
            truth: Some(StockAfter { quantity: 1000 - 2 * truth, version: truth }),
            projection: None,
            read_ms: None,
        })
    };
    run.history.push(sample(100, 0, 2));
    run.history.push(sample(110, 2, 2));
    let f = run.findings();
    let reads = f.cache_reads.unwrap();
    assert_eq!((reads.hits, reads.stale_reads, reads.worst_versions), (2, 1, 2));
    assert_eq!(reads.worst_ms, Some(100 - v1_committed));
}

#[test]
fn backlog_rows_left_unpublished() {
    let mut run = Run::publishing();
    run.snapshot.backlog = Some(Ok(Backlog { outbox_unpublished: 2, dead_letters: 1, ..Backlog::default() }));
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Backlog), Some(3));
    assert_eq!(f.dead_letters, Some(1));
    assert_eq!(f.verdict, Verdict::Inconsistent);
}

#[test]
fn an_unreadable_topic_makes_the_verdict_unknown() {
    let mut run = Run::publishing();
    run.snapshot.topic = Some(Err("broker unreachable".into()));
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Unknown);
    assert!(f.reasons[0].contains("broker unreachable"));
    assert_eq!(f.count(Anomaly::Lost), None);
}

#[test]
fn pool_probe_figures() {
    let mut run = Run::publishing();
    for (i, (ms, timeout)) in [(1.0, false), (2.0, false), (1000.0, true)].into_iter().enumerate() {
        run.history.push(Event::Probe(ProbeSample {
            at: i as u64,
            elapsed_ms: ms,
            acquire_timeout: timeout,
            failed: timeout,
        }));
    }
    let f = run.findings();
    assert_eq!((f.pool.probes, f.pool.acquire_timeouts), (3, 1));
    assert_eq!(f.pool.unrelated_p50_ms, Some(2.0));
    assert_eq!(f.pool.unrelated_p99_ms, Some(1000.0));
}

#[test]
fn event_lag_runs_from_commit_to_first_delivery() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::ok()));
    run.commit(1, 1);
    run.publish(1, 1);
    run.publish(1, 1);
    let f = run.findings();
    // Commit acknowledged at 30, first delivery at clock (50) + 5.
    assert_eq!(f.latency.event_lag_p50, Some(25.0));
    // Begin at 10, last leg at 50.
    assert_eq!(f.latency.write_p99, Some(40.0));
}

#[test]
fn percentiles_are_nearest_rank() {
    let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&mut v, 50.0), Some(50.0));
    assert_eq!(percentile(&mut v, 99.0), Some(99.0));
    assert_eq!(percentile(&mut [], 50.0), None);
    assert_eq!(percentile(&mut [7.0], 99.0), Some(7.0));
}

// ── Missing evidence: the verdict is unknown, and so is every figure that
// depends on what was not seen. ─────────────────────────────────────────

/// Three orders committed and acknowledged; the topic as `edit` leaves it.
fn three_acknowledged(edit: impl FnOnce(&mut TopicRead)) -> Findings {
    let mut run = Run::publishing();
    for n in 1..=3 {
        run.write(n, Some(Told::ok()), Some(Told::ok()));
        run.commit(n, n as i64);
        run.publish(n, n as i64);
    }
    let Some(Ok(topic)) = &mut run.snapshot.topic else { unreachable!() };
    edit(topic);
    run.findings()
}

#[test]
fn records_the_broker_deleted_are_unknown_not_lost() {
    // The embedded broker deleted the first two records (its size cap).
    let f = three_acknowledged(|topic| {
        topic.records.retain(|r| r.offset >= 2);
        topic.partitions[0].low = 2;
        topic.partitions[0].final_watermarks = Some((2, 3));
    });
    assert_eq!(f.verdict, Verdict::Unknown, "{f:#?}");
    assert!(
        f.reasons[0].contains("the broker deleted 2 records of partition 0 before the snapshot"),
        "{:?}",
        f.reasons
    );
    // Not "2 lost": nothing says they were never published.
    assert_eq!(f.count(Anomaly::Lost), None);
    assert_eq!(
        f.figure(Anomaly::Lost),
        Figure::Unknown { at_least: 0, reason: "the topic was not read completely".into() }
    );
    assert!(f.anomalies[&Anomaly::Lost].examples.is_empty(), "no story of a loss that is not shown");
    for anomaly in [Anomaly::Ghost, Anomaly::Duplicate, Anomaly::Reordered] {
        assert!(matches!(f.figure(anomaly), Figure::Unknown { .. }), "{anomaly:?}");
    }
    // The database's figures do not depend on the topic.
    assert_eq!(f.orders.committed, 3);
}

#[test]
fn a_gap_in_the_offsets_is_unknown() {
    let f = three_acknowledged(|topic| topic.records.retain(|r| r.offset != 1));
    assert_eq!(f.verdict, Verdict::Unknown);
    assert!(f.reasons[0].contains("1 offsets between 0 and 3 were never served"), "{:?}", f.reasons);
    assert_eq!(f.count(Anomaly::Lost), None);
}

#[test]
fn a_high_watermark_the_read_did_not_reach_is_unknown() {
    let f = three_acknowledged(|topic| topic.partitions[0].final_watermarks = Some((0, 7)));
    assert_eq!(f.verdict, Verdict::Unknown);
    assert!(f.reasons[0].contains("4 records unread"), "{:?}", f.reasons);
}

#[test]
fn records_beyond_the_high_watermark_with_the_end_signalled_are_a_note_on_the_broker() {
    // A broker whose ListOffsets under-reports its end (tansu 0.6.0), while
    // its fetch signalled the end where the read stopped: the read is whole,
    // the verdict stands, and the broker's disagreement is said.
    let f = three_acknowledged(|topic| {
        topic.partitions[0].high = 1;
        topic.partitions[0].final_watermarks = Some((0, 1));
    });
    assert_eq!(f.verdict, Verdict::Consistent, "{:?}", f.reasons);
    assert!(
        f.reasons.iter().any(|r| r.starts_with("note on the broker:") && r.contains("ListOffsets")),
        "{:?}",
        f.reasons
    );
}

#[test]
fn records_beyond_the_high_watermark_without_an_end_are_unknown() {
    // The same, but no fetch signalled the end: nothing shows the read reached it.
    let f = three_acknowledged(|topic| {
        topic.partitions[0].high = 1;
        topic.partitions[0].final_watermarks = Some((0, 1));
        topic.partitions[0].end_signalled = false;
    });
    assert_eq!(f.verdict, Verdict::Unknown);
    assert!(f.reasons.iter().any(|r| r.contains("nothing shows the read reached it")), "{:?}", f.reasons);
}

#[test]
fn a_read_that_ran_out_of_time_is_unknown() {
    let f = three_acknowledged(|topic| {
        topic.partitions[0].end_signalled = false;
        topic.timed_out_after_ms = Some(30_000);
    });
    assert_eq!(f.verdict, Verdict::Unknown);
    assert!(f.reasons[0].contains("had not signalled the partition's end"), "{:?}", f.reasons);
}

#[test]
fn what_was_seen_on_an_incomplete_topic_is_said_as_at_least() {
    let mut run = Run::publishing();
    // A ghost, seen.
    run.write(1, Some(Told::fail("reset before COMMIT")), Some(Told::ok()));
    run.publish(1, 1);
    let Some(Ok(topic)) = &mut run.snapshot.topic else { unreachable!() };
    topic.partitions[0].final_watermarks = Some((0, 5));
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Unknown);
    // The drift is the consumer's, read from it, not from the topic: known.
    assert_eq!(f.reasons.last().unwrap(), "seen nonetheless: at least 1 ghost, 1 projection_drift");
    assert_eq!(
        f.figure(Anomaly::Ghost),
        Figure::Unknown { at_least: 1, reason: "the topic was not read completely".into() }
    );
}

#[test]
fn an_unseen_topic_leg_is_undecided_on_an_incomplete_topic() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::unknown("message timed out")));
    run.commit(1, 1);
    // Seen: recovered for sure.
    run.publish(1, 1);
    run.write(2, Some(Told::ok()), Some(Told::unknown("message timed out")));
    run.commit(2, 2);
    // Order 2's event is not among the records read, and the read is
    // incomplete: it may have happened.
    let Some(Ok(topic)) = &mut run.snapshot.topic else { unreachable!() };
    topic.partitions[0].final_watermarks = Some((0, 2));
    let f = run.findings();
    assert_eq!(
        f.figure(Anomaly::Recovered),
        Figure::Unknown { at_least: 1, reason: "the topic was not read completely".into() }
    );
    // A database leg is decided by the orders table, complete: known.
    assert_eq!(f.count(Anomaly::FalseFailure), Some(0));
}

#[test]
fn an_unreadable_topic_leaves_the_topic_figures_unknown_not_inapplicable() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::ok()));
    run.commit(1, 1);
    run.snapshot.topic = Some(Err("broker unreachable".into()));
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Unknown);
    assert_eq!(f.figure(Anomaly::Lost), Figure::Unknown { at_least: 0, reason: "the topic could not be read".into() });
}

#[test]
fn a_drain_timeout_with_the_relay_behind_leaves_lost_and_backlog_unknown() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), None);
    run.commit(1, 1);
    run.publish(1, 1);
    // Order 2 committed; its outbox row was still unpublished when the drain gave up.
    run.write(2, Some(Told::ok()), None);
    run.commit(2, 2);
    run.snapshot.backlog = Some(Ok(Backlog { outbox_unpublished: 1, ..Backlog::default() }));
    run.snapshot.drain = DrainReport {
        completed: false,
        waited_ms: 100,
        behind: Some("the relay/connector had not published everything".into()),
        published: Some(false),
        consumed: Some(true),
    };
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Unknown, "{f:#?}");
    assert_eq!(
        f.reasons[0],
        "the drain phase timed out after 100 ms: the relay/connector had not published everything"
    );
    let why = "the drain timed out before the relay or connector had published everything";
    // In flight, not lost: "1 lost" would be a phantom.
    assert_eq!(f.figure(Anomaly::Lost), Figure::Unknown { at_least: 0, reason: why.into() });
    assert_eq!(f.figure(Anomaly::Backlog), Figure::Unknown { at_least: 0, reason: why.into() });
    assert_eq!(f.figure(Anomaly::ProjectionDrift), Figure::Unknown { at_least: 0, reason: why.into() });
    // Nothing is claimed as seen: not even "at least 1 lost".
    assert_eq!(f.reasons.len(), 1, "{:?}", f.reasons);
    // Ghosts cannot come from a relay: still counted.
    assert_eq!(f.count(Anomaly::Ghost), Some(0));
}

#[test]
fn a_drain_timeout_with_only_the_consumer_behind_leaves_only_drift_unknown() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::ok()));
    run.commit(1, 1);
    run.publish(1, 1);
    run.snapshot.downstream.as_mut().unwrap().projection.clear();
    run.snapshot.drain = DrainReport {
        completed: false,
        waited_ms: 100,
        behind: Some("the downstream consumer was 1 records behind".into()),
        published: None,
        consumed: Some(false),
    };
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Unknown);
    assert!(matches!(f.figure(Anomaly::ProjectionDrift), Figure::Unknown { at_least: 0, .. }));
    // The topic was read to its end: naive's lost is known.
    assert_eq!(f.count(Anomaly::Lost), Some(0));
}

#[test]
fn an_unreadable_backlog_is_unknown_not_inapplicable() {
    let mut run = Run::publishing();
    run.snapshot.backlog = Some(Err("connection refused".into()));
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Unknown);
    assert!(f.reasons[0].contains("left unpublished could not be read: connection refused"), "{:?}", f.reasons);
    assert_eq!(
        f.figure(Anomaly::Backlog),
        Figure::Unknown { at_least: 0, reason: "the backlog could not be read".into() }
    );
    assert_eq!(f.dead_letters, None);
}

#[test]
fn the_connectors_backlog_is_its_unacknowledged_orders() {
    let mut run = Run::publishing();
    run.snapshot.backlog =
        Some(Ok(Backlog { unacknowledged: Some(4), slot_lag_bytes: Some(1_024), ..Backlog::default() }));
    let f = run.findings();
    assert_eq!(f.count(Anomaly::Backlog), Some(4));
    assert_eq!(f.slot_lag_bytes, Some(1_024));
    assert!(f.anomalies[&Anomaly::Backlog].examples[0].detail.contains("4 committed orders"));
    assert_eq!(f.verdict, Verdict::Inconsistent);
}

#[test]
fn an_unreadable_cache_is_unknown() {
    let mut run = Run::publishing();
    run.snapshot.cache = Some(Err("timed out".into()));
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Unknown);
    assert_eq!(
        f.figure(Anomaly::StaleCache),
        Figure::Unknown { at_least: 0, reason: "the cache could not be read".into() }
    );
}

#[test]
fn a_complete_drain_and_read_give_a_verdict() {
    let mut run = Run::publishing();
    run.write(1, Some(Told::ok()), Some(Told::ok()));
    run.commit(1, 1);
    run.publish(1, 1);
    run.snapshot.drain = DrainReport::complete(5);
    let f = run.findings();
    assert_eq!(f.verdict, Verdict::Consistent);
    assert!(Anomaly::ALL.iter().all(|a| !matches!(f.figure(*a), Figure::Unknown { .. })));
}

#[test]
fn beats_that_placed_no_order_are_counted_and_said_with_why() {
    let mut run = Run::publishing();
    for n in 1..=3 {
        run.write(n, Some(Told::ok()), Some(Told::ok()));
        run.commit(n, n as i64);
        run.publish(n, n as i64);
    }
    run.history.skip(Skipped { full: 5, late: 2 });
    let f = run.findings();
    // Skipped beats are not an anomaly: the stores still agree.
    assert_eq!(f.verdict, Verdict::Consistent, "{:?}", f.reasons);
    assert_eq!(f.orders.skipped, Skipped { full: 5, late: 2 });
    assert_eq!(
        f.orders.describe_skipped().as_deref(),
        Some(
            "7 beats placed no order (70 % of the writers' beats): 5 passed while their writer had 16 orders \
             in flight (the strategy and its stores did not keep up), 2 had passed before their writer woke (a \
             busy machine, or a beat too short for the timer)"
        )
    );
    assert_eq!(Orders { skipped: Skipped::default(), ..f.orders }.describe_skipped(), None);
    // Below 10 %, one decimal: 1 of 160 beats is 0.6 %, not "1 %".
    let few = Orders { attempted: 159, skipped: Skipped { full: 1, late: 0 }, ..f.orders };
    assert!(few.describe_skipped().unwrap().starts_with("1 beat placed no order (0.6 % of"), "{few:?}");
}

#[test]
fn a_report_written_before_skipped_beats_were_counted_still_reads() {
    let old: Orders = serde_json::from_str(r#"{"attempted": 3, "committed": 2, "acknowledged": 2}"#).unwrap();
    assert_eq!(old, Orders { attempted: 3, committed: 2, acknowledged: 2, skipped: Skipped::default() });
    assert_eq!(old.describe_skipped(), None);
}
