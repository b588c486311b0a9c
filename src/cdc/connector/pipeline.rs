//! Committed events on their way to the broker, and the positions that
//! wait for them (see [`Pipeline`]).

use std::collections::{HashMap, VecDeque};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use pgwire_replication::Lsn;

use super::capture::Outgoing;
use super::sink::Sink;
use super::Ledger;
use crate::backoff::Backoff;
use crate::history::{Outcome, Told};

/// Most events waiting for the broker before the session stops reading.
const MAX_WAITING: usize = 10_000;

/// The events of committed transactions on their way to the broker, and the
/// positions waiting for them.
///
/// Each product (the record key) has a *lane*: its events leave one at a
/// time, in commit order, and the next one leaves only when the broker has
/// acknowledged the one before. So a product's versions reach the topic in
/// order even when a publish fails and is retried. Lanes of different
/// products run side by side, so one slow acknowledgement does not hold up
/// every other product (the topic keeps order per key only, too).
///
/// Positions are confirmed strictly in commit order: a transaction's
/// position once all its events, and every earlier transaction's, are acknowledged.
pub(super) struct Pipeline<'p> {
    sink: &'p Sink,
    /// Commit positions not confirmed yet, oldest first, with how many of
    /// their events are still unacknowledged.
    positions: VecDeque<Position>,
    /// The number of the next transaction (`positions` are consecutive).
    next: u64,
    /// Per key, the events not yet acknowledged; the first is in flight.
    lanes: HashMap<String, VecDeque<Waiting>>,
    waiting: usize,
    pub(super) in_flight: FuturesUnordered<BoxFuture<'p, Published>>,
}

struct Position {
    transaction: u64,
    lsn: Lsn,
    unacknowledged: usize,
}

struct Waiting {
    transaction: u64,
    event: Outgoing,
    /// Publishes of this event that did not succeed.
    failures: u32,
}

/// A publish that ended, for the lane `key`.
pub(super) struct Published {
    key: String,
    told: Told,
}

impl<'p> Pipeline<'p> {
    pub(super) fn new(sink: &'p Sink) -> Pipeline<'p> {
        Pipeline {
            sink,
            positions: VecDeque::new(),
            next: 0,
            lanes: HashMap::new(),
            waiting: 0,
            in_flight: FuturesUnordered::new(),
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.waiting >= MAX_WAITING
    }

    /// A committed transaction's events (none, for a keepalive). Returns a
    /// position that may be confirmed now, if any.
    pub(super) fn committed(&mut self, lsn: Lsn, events: Vec<Outgoing>) -> Option<Lsn> {
        if events.is_empty() && self.positions.is_empty() {
            return Some(lsn);
        }
        let transaction = self.next;
        self.next += 1;
        self.positions.push_back(Position { transaction, lsn, unacknowledged: events.len() });
        for event in events {
            self.waiting += 1;
            let lane = self.lanes.entry(event.key.clone()).or_default();
            lane.push_back(Waiting { transaction, event, failures: 0 });
            // An idle lane sends at once; a busy one sends it after the others.
            if lane.len() == 1 {
                send(&self.in_flight, self.sink, &lane[0]);
            }
        }
        self.confirmable()
    }

    /// A publish ended. Returns a position that may be confirmed now, if any.
    pub(super) fn published(&mut self, done: Published, ledger: &Ledger) -> Option<Lsn> {
        let lane = self.lanes.get_mut(&done.key).expect("a publish belongs to a lane");
        let head = lane.front_mut().expect("a lane in flight has a head");
        if done.told.outcome != Outcome::Ok {
            // Fail or Unknown: publish it again, after a pause. Skipping it
            // would lose it; retrying an Unknown may write it twice, which
            // the downstream consumer tolerates. Its position waits meanwhile.
            // At debug level: during an injected Kafka fault this is the
            // expected behaviour, not news (`-vv` shows it).
            head.failures += 1;
            ledger.publish_failed(&done.key, done.told.error.as_deref());
            tracing::debug!(
                key = %done.key,
                attempt = head.failures,
                outcome = done.told.outcome.as_str(),
                error = done.told.error.as_deref().unwrap_or(""),
                "the connector's publish did not succeed; retrying (its position stays unconfirmed)"
            );
            send(&self.in_flight, self.sink, &lane[0]);
            return None;
        }
        // Acknowledged: the lane's next event may go.
        let acknowledged = lane.pop_front().expect("checked above");
        ledger.delivered(&done.key, acknowledged.event.order);
        self.waiting -= 1;
        match lane.front() {
            Some(next) => send(&self.in_flight, self.sink, next),
            None => {
                self.lanes.remove(&done.key);
            }
        }
        let first = self.positions.front().expect("an event belongs to a position").transaction;
        self.positions[(acknowledged.transaction - first) as usize].unacknowledged -= 1;
        self.confirmable()
    }

    /// Removes the positions whose events, and all earlier ones, are
    /// acknowledged; returns the newest of them.
    fn confirmable(&mut self) -> Option<Lsn> {
        let mut newest = None;
        while self.positions.front().is_some_and(|p| p.unacknowledged == 0) {
            newest = self.positions.pop_front().map(|p| p.lsn);
        }
        newest
    }
}

/// Starts publishing a lane's head.
fn send<'p>(in_flight: &FuturesUnordered<BoxFuture<'p, Published>>, sink: &'p Sink, waiting: &Waiting) {
    let Outgoing { key, payload, .. } = waiting.event.clone();
    let pause = (waiting.failures > 0).then(|| Backoff::BACKGROUND.after(waiting.failures));
    in_flight.push(Box::pin(async move {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        // Waits for the broker's acknowledgement (bounded by the delivery
        // timeout): Ok, Fail (never reached the broker) or Unknown (the
        // reply was lost; the broker may have it).
        let told = sink.deliver(&key, &payload).await;
        Published { key, told }
    }));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::OrderId;
    use crate::kafka::Publisher;

    /// A publisher that is never polled: the pipeline's futures are built
    /// but nothing is sent, and the tests report each outcome by hand.
    fn idle_publisher() -> Publisher {
        Publisher::new(crate::kafka::PublisherConfig {
            bootstrap: "127.0.0.1:1".into(),
            topic: "never-used".into(),
            publish_timeout: Duration::from_secs(5),
            client_id: "pipeline-test".into(),
        })
        .unwrap()
    }

    fn event(key: &str) -> Outgoing {
        Outgoing { key: key.into(), payload: b"{}".to_vec(), order: Some(OrderId::new_v4()) }
    }

    fn ok(key: &str) -> Published {
        Published { key: key.into(), told: Told::ok() }
    }

    fn unknown(key: &str) -> Published {
        Published { key: key.into(), told: Told::unknown("reply lost") }
    }

    #[tokio::test]
    async fn a_position_is_confirmed_only_after_everything_before_it() {
        let sink = Sink::Topic(idle_publisher());
        let ledger = Ledger::default();
        let mut pipeline = Pipeline::new(&sink);
        // T1 and T3 for product a, T2 for product b: a and b go side by side.
        assert_eq!(pipeline.committed(Lsn(10), vec![event("a")]), None);
        assert_eq!(pipeline.committed(Lsn(20), vec![event("b")]), None);
        assert_eq!(pipeline.committed(Lsn(30), vec![event("a")]), None);
        assert_eq!(pipeline.in_flight.len(), 2, "one in flight per product");
        // b's acknowledgement alone confirms nothing: T1 is still out.
        assert_eq!(pipeline.published(ok("b"), &ledger), None);
        // T1 acknowledged: T1 and T2 are done, T3 is sent.
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(20)));
        assert_eq!(pipeline.in_flight.len(), 3, "a's next event was sent (the old futures are never polled)");
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(30)));
        assert_eq!(ledger.deliveries(), 3);
    }

    #[tokio::test]
    async fn a_failed_publish_is_retried_and_holds_its_lane_and_position() {
        let sink = Sink::Topic(idle_publisher());
        let ledger = Ledger::default();
        let mut pipeline = Pipeline::new(&sink);
        pipeline.committed(Lsn(10), vec![event("a")]);
        pipeline.committed(Lsn(20), vec![event("a")]);
        assert_eq!(pipeline.published(unknown("a"), &ledger), None);
        assert_eq!(pipeline.published(unknown("a"), &ledger), None);
        assert_eq!(pipeline.lanes["a"][0].failures, 2, "the same event, retried");
        assert_eq!(pipeline.lanes["a"].len(), 2, "the next waits behind it");
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(10)));
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(20)));
        assert!(pipeline.lanes.is_empty());
    }

    #[tokio::test]
    async fn positions_without_events_wait_only_for_what_came_before() {
        let sink = Sink::Topic(idle_publisher());
        let ledger = Ledger::default();
        let mut pipeline = Pipeline::new(&sink);
        // Nothing pending: a keepalive (or another run's transaction) at once.
        assert_eq!(pipeline.committed(Lsn(5), vec![]), Some(Lsn(5)));
        pipeline.committed(Lsn(10), vec![event("a")]);
        assert_eq!(pipeline.committed(Lsn(15), vec![]), None, "behind an unacknowledged event");
        assert_eq!(pipeline.published(ok("a"), &ledger), Some(Lsn(15)));
    }
}
