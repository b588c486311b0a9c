//! Evidence before verdicts: what the snapshot did not see, and which
//! figures that leaves unknown.
//!
//! Jepsen's checkers answer `:unknown` when the final read is missing; so
//! does this reconciler. A figure is *unknown* when the evidence it is
//! counted from is incomplete, and the verdict is *unknown* when any
//! evidence is — whatever was seen is still reported, as "at least".
//!
//! | what is missing | the figures it leaves unknown | why |
//! |---|---|---|
//! | the topic: unreadable, records deleted, offsets skipped, its end not reached or misreported, records undecodable | lost, ghost, duplicate, reordered; a topic leg's recovered / false failure when the leg was not seen | an order missing from what was read may be in what was not |
//! | the drain timed out with the relay or connector behind | lost, duplicate, reordered, backlog, projection drift | events still in flight would have arrived (not ghost: they publish only what committed) |
//! | the drain timed out with the downstream consumer behind | projection drift | it had not read everything yet |
//! | the backlog could not be read | backlog | nothing says whether rows were left behind |
//! | the cache could not be read | stale cache | |

use std::collections::BTreeMap;

use super::Anomaly;
use crate::snapshot::Snapshot;

/// What the snapshot did not see, and what that leaves unknown.
#[derive(Debug, Default)]
pub(super) struct Evidence {
    /// Each piece of missing evidence, in words: any one makes the verdict
    /// unknown, and each becomes one of its reasons.
    pub gaps: Vec<String>,
    /// Per anomaly whose figure is not known, why (a short phrase).
    pub unknown: BTreeMap<Anomaly, &'static str>,
    /// Why a topic leg not seen on the topic may still have happened.
    pub topic_incomplete: Option<&'static str>,
}

impl Evidence {
    fn leaves_unknown(&mut self, anomalies: &[Anomaly], why: &'static str) {
        for anomaly in anomalies {
            // The first reason found is the one reported.
            self.unknown.entry(*anomaly).or_insert(why);
        }
    }
}

/// The anomalies counted from the topic.
const FROM_THE_TOPIC: [Anomaly; 4] = [Anomaly::Lost, Anomaly::Ghost, Anomaly::Duplicate, Anomaly::Reordered];

/// Assesses what `snapshot` covers. Pure.
pub(super) fn assess(snapshot: &Snapshot) -> Evidence {
    let mut evidence = Evidence::default();

    // The topic: read at all, and read whole?
    match &snapshot.topic {
        None => {}
        Some(Err(e)) => {
            evidence.gaps.push(format!("the topic could not be read: {e}"));
            evidence.leaves_unknown(&FROM_THE_TOPIC, "the topic could not be read");
            evidence.topic_incomplete = Some("the topic could not be read");
        }
        Some(Ok(read)) => {
            let mut missing = read.missing();
            let undecodable = read.records.iter().filter(|r| r.event.is_err()).count();
            if undecodable > 0 {
                missing.push(format!("{undecodable} topic records could not be decoded"));
            }
            if !missing.is_empty() {
                // two-phase publishes in Kafka transactions. The records of a
                // transaction that was aborted or never committed, and the
                // broker's commit and abort markers, take offsets that a
                // read_committed reader is never served: this check cannot
                // tell them from deleted records. Said, so that the unknown
                // is not a mystery.
                let transactional = matches!(&snapshot.backlog, Some(Ok(b)) if b.in_doubt.is_some());
                if transactional && missing.iter().any(|m| m.contains("never served")) {
                    missing.push(
                        "two-phase publishes in Kafka transactions: records of transactions aborted or never \
                         committed, and transaction markers, take offsets a read_committed reader is never served, \
                         which the read cannot tell from deleted records"
                            .to_string(),
                    );
                }
                evidence.gaps.extend(missing);
                evidence.leaves_unknown(&FROM_THE_TOPIC, "the topic was not read completely");
                evidence.topic_incomplete = Some("the topic was not read completely");
            }
        }
    }

    // The drain: did everything in flight arrive before the snapshot?
    let drain = &snapshot.drain;
    if !drain.completed {
        evidence.gaps.push(format!(
            "the drain phase timed out after {} ms{}",
            drain.waited_ms,
            drain.behind.as_deref().map(|b| format!(": {b}")).unwrap_or_default()
        ));
        // Unless the drain says which part had caught up, assume neither had.
        if snapshot.backlog.is_some() && drain.published != Some(true) {
            let why = "the drain timed out before the relay or connector had published everything";
            // Not ghosts: a relay or connector publishes only what committed.
            evidence.leaves_unknown(&[Anomaly::Lost, Anomaly::Duplicate, Anomaly::Reordered, Anomaly::Backlog], why);
            if snapshot.downstream.is_some() {
                evidence.leaves_unknown(&[Anomaly::ProjectionDrift], why);
            }
        }
        if snapshot.downstream.is_some() && drain.consumed != Some(true) {
            evidence.leaves_unknown(
                &[Anomaly::ProjectionDrift],
                "the drain timed out before the downstream consumer had read everything",
            );
        }
    }

    // The backlog: a failed read is unknown, never "does not apply".
    if let Some(Err(e)) = &snapshot.backlog {
        evidence.gaps.push(format!("what the relay or connector left unpublished could not be read: {e}"));
        evidence.leaves_unknown(&[Anomaly::Backlog], "the backlog could not be read");
    }

    if let Some(Err(e)) = &snapshot.cache {
        evidence.gaps.push(format!("the cache could not be read: {e}"));
        evidence.leaves_unknown(&[Anomaly::StaleCache], "the cache could not be read");
    }
    evidence
}
