//! The figures that are measured rather than counted as anomalies:
//! latencies, the pool probe, and what readers were served from the cache.

use std::collections::HashMap;

use super::{CacheReads, Latency, PoolStats, Redeliveries};
use crate::history::{Event, Events, IdSet, Leg, Millis, Outcome, WriteRecord};
use crate::snapshot::{Snapshot, TopicRecord};

/// Write latency and commit → event lag.
pub(super) fn latency(history: &Events, records: &[WriteRecord], snapshot: &Snapshot) -> Latency {
    let mut writes: Vec<f64> = records
        .iter()
        .filter_map(|r| {
            // The last leg's outcome; none if a leg never completed.
            let mut last: Option<Millis> = None;
            for leg in r.legs.values() {
                let done = leg.completed_at?;
                last = Some(last.map_or(done, |l| l.max(done)));
            }
            Some(last?.saturating_sub(r.begun_at) as f64)
        })
        .collect();
    let mut lags: Vec<f64> = Vec::new();
    if let Some(downstream) = &snapshot.downstream {
        for r in records {
            let Some(db) = r.legs.get(&Leg::Db) else { continue };
            if db.told.outcome != Outcome::Ok {
                continue;
            }
            let (Some(committed_at), Some(seen)) = (db.completed_at, downstream.first_seen.get(&r.order.order_id))
            else {
                continue;
            };
            lags.push(*seen as f64 - committed_at as f64);
        }
    }
    // Every read the readers made, hit, miss or failure: what a user of
    // the service waited.
    let mut reads: Vec<f64> = history
        .whole()
        .filter_map(|e| match e {
            Event::Read(sample) => sample.read_ms,
            _ => None,
        })
        .collect();
    Latency {
        read_p50: percentile(&mut reads, 50.0),
        read_p99: percentile(&mut reads, 99.0),
        write_p50: percentile(&mut writes, 50.0),
        write_p99: percentile(&mut writes, 99.0),
        event_lag_p50: percentile(&mut lags, 50.0),
        event_lag_p99: percentile(&mut lags, 99.0),
    }
}

/// The pool probe's figures.
pub(super) fn pool_stats(history: &Events) -> PoolStats {
    let mut times = Vec::new();
    let mut stats = PoolStats::default();
    for event in history.whole() {
        if let Event::Probe(p) = event {
            stats.probes += 1;
            if p.acquire_timeout {
                stats.acquire_timeouts += 1;
            }
            times.push(p.elapsed_ms);
        }
    }
    stats.unrelated_p50_ms = percentile(&mut times, 50.0);
    stats.unrelated_p99_ms = percentile(&mut times, 99.0);
    stats
}

/// Staleness of what readers were served from the cache. A read is stale
/// when the database already held a newer version *before* the cache was
/// asked (readers read the truth first, so a write landing between the two
/// reads is never mistaken for staleness).
pub(super) fn stale_reads(history: &Events, records: &[WriteRecord]) -> CacheReads {
    // When each (product, version) was committed, as its writer learned it.
    let mut committed_at: HashMap<(i32, i64), Millis> = HashMap::new();
    for r in records {
        if let (Some(after), Some(db)) = (r.after, r.legs.get(&Leg::Db)) {
            if db.told.outcome == Outcome::Ok {
                if let Some(at) = db.completed_at {
                    committed_at.insert((r.order.product_id, after.version), at);
                }
            }
        }
    }
    let mut reads = CacheReads::default();
    // How long each stale value served had already been out of date.
    let mut ages: Vec<f64> = Vec::new();
    for event in history.whole() {
        let Event::Read(sample) = event else { continue };
        if !sample.from_cache {
            continue;
        }
        reads.hits += 1;
        let (Some(served), Some(truth)) = (sample.served, sample.truth) else { continue };
        if served.version < truth.version {
            reads.stale_reads += 1;
            reads.worst_versions = reads.worst_versions.max(truth.version - served.version);
            // Out of date since the next version committed.
            if let Some(newer) = committed_at.get(&(sample.product_id, served.version + 1)) {
                let age = sample.at.saturating_sub(*newer);
                reads.worst_ms = Some(reads.worst_ms.map_or(age, |w| w.max(age)));
                ages.push(age as f64);
            }
        }
    }
    reads.stale_p50_ms = percentile(&mut ages, 50.0);
    reads.stale_p99_ms = percentile(&mut ages, 99.0);
    reads
}

/// What duplicates cost, read off the whole topic: every delivery of an
/// order after its first is a duplicate, and a consumer that applied every
/// delivery (shipping the order's units each time) would have shipped its
/// units again. `discarded` is the downstream consumer's own count.
pub(super) fn redeliveries(topic: &[TopicRecord], discarded: Option<u64>) -> Redeliveries {
    let mut seen = IdSet::default();
    let mut found = Redeliveries { duplicates: 0, discarded_by_consumer: discarded, extra_units: 0 };
    for record in topic {
        let Ok(event) = &record.event else { continue };
        if !seen.insert(event.order_id) {
            found.duplicates += 1;
            found.extra_units += u64::from(event.delta.unsigned_abs());
        }
    }
    found
}

/// Nearest-rank percentile; sorts `values`. `None` when empty.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}
