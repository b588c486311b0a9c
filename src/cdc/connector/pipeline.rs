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
/// Each product (the record key) has a *lane*: its events are handed to the
/// producer in commit order, as soon as they are committed, without waiting
/// for the broker to acknowledge the one before. The producer is idempotent:
/// it sends a partition's records in the order it was given them and keeps
/// that order through its own retries, so a product's versions reach the
/// topic in commit order. Waiting for each acknowledgement before sending the
/// next would cap a product at one event per round trip to the broker: with
/// the workload's six products, about 2,400 events a second on the embedded
/// broker, below what the writers commit (issue 13).
///
/// A publish the producer gives up on (Fail or Unknown, after its delivery
/// timeout) is retried by the pipeline, and its lane turns *careful*: the
/// rest of its events wait until nothing of the lane is in flight, then go
/// one at a time, each after the one before is acknowledged, until the lane
/// is empty. Events of the lane already sent before the failure were not
/// held back, so when the producer gave up on one and delivered a later one
/// (a gap, possible only around a fault), the retried version lands after a
/// newer one: the reconciler counts it as `reordered`, and the consumer,
/// which keeps the highest version, ignores it.
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
    /// The number of the next event, which names its publishes.
    next_event: u64,
    /// Per key, the events not yet acknowledged, oldest first.
    lanes: HashMap<String, Lane>,
    waiting: usize,
    pub(super) in_flight: FuturesUnordered<BoxFuture<'p, Published>>,
}

struct Position {
    transaction: u64,
    lsn: Lsn,
    unacknowledged: usize,
}

/// One product's events not yet acknowledged, oldest first.
#[derive(Default)]
struct Lane {
    events: VecDeque<Waiting>,
    /// How many of `events` are with the producer now.
    sending: usize,
    /// A publish of this lane failed: until it is empty, one event at a time.
    careful: bool,
}

struct Waiting {
    /// Names this event's publishes (see [`Published`]).
    number: u64,
    transaction: u64,
    event: Outgoing,
    state: State,
    /// Publishes of this event that did not succeed.
    failures: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Not handed to the producer (a careful lane holds it back, or it
    /// failed and waits to be sent again).
    Held,
    Sending,
    /// Acknowledged, behind an older event of its lane that is not yet.
    Acknowledged,
}

/// A publish that ended: event `number`, of the lane `key`.
pub(super) struct Published {
    key: String,
    number: u64,
    told: Told,
}

impl<'p> Pipeline<'p> {
    pub(super) fn new(sink: &'p Sink) -> Pipeline<'p> {
        Pipeline {
            sink,
            positions: VecDeque::new(),
            next: 0,
            next_event: 0,
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
            let number = self.next_event;
            self.next_event += 1;
            let lane = self.lanes.entry(event.key.clone()).or_default();
            lane.events.push_back(Waiting { number, transaction, event, state: State::Held, failures: 0 });
            // A lane that is not careful sends at once; a careful one holds
            // it until its turn (see `published`).
            if !lane.careful {
                let last = lane.events.len() - 1;
                send(&self.in_flight, self.sink, lane, last);
            }
        }
        self.confirmable()
    }

    /// A publish ended. Returns a position that may be confirmed now, if any.
    pub(super) fn published(&mut self, done: Published, ledger: &Ledger) -> Option<Lsn> {
        let lane = self.lanes.get_mut(&done.key).expect("a publish belongs to a lane");
        let at =
            lane.events.iter().position(|w| w.number == done.number).expect("a publish belongs to a waiting event");
        lane.sending -= 1;
        let this = &mut lane.events[at];
        if done.told.outcome == Outcome::Ok {
            this.state = State::Acknowledged;
            ledger.delivered(this.event.order);
            let first = self.positions.front().expect("an event belongs to a position").transaction;
            self.positions[(this.transaction - first) as usize].unacknowledged -= 1;
        } else {
            // Fail or Unknown: publish it again, after a pause. Skipping it
            // would lose it; retrying an Unknown may write it twice, which
            // the downstream consumer tolerates. Its position waits meanwhile.
            // At debug level: during an injected Kafka fault this is the
            // expected behaviour, not news (`-vv` shows it).
            this.state = State::Held;
            this.failures += 1;
            lane.careful = true;
            ledger.publish_failed(&done.key, done.told.error.as_deref());
            tracing::debug!(
                key = %done.key,
                attempt = this.failures,
                outcome = done.told.outcome.as_str(),
                error = done.told.error.as_deref().unwrap_or(""),
                "the connector's publish did not succeed; retrying (its position stays unconfirmed)"
            );
        }
        // The acknowledged head of the lane is done with.
        while lane.events.front().is_some_and(|w| w.state == State::Acknowledged) {
            lane.events.pop_front();
            self.waiting -= 1;
        }
        if !lane.events.iter().any(|w| w.failures > 0 && w.state != State::Acknowledged) {
            ledger.publishes_recovered(&done.key);
        }
        if lane.events.is_empty() {
            self.lanes.remove(&done.key);
        } else if lane.careful && lane.sending == 0 {
            // The oldest event not acknowledged goes next, alone.
            if let Some(held) = lane.events.iter().position(|w| w.state == State::Held) {
                send(&self.in_flight, self.sink, lane, held);
            }
        }
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

/// Starts publishing the lane's event `at`. A first attempt is handed to
/// the producer now, so the lane's events reach it in order; a retry, after
/// its pause.
fn send<'p>(in_flight: &FuturesUnordered<BoxFuture<'p, Published>>, sink: &'p Sink, lane: &mut Lane, at: usize) {
    let waiting = &mut lane.events[at];
    waiting.state = State::Sending;
    lane.sending += 1;
    let number = waiting.number;
    let Outgoing { key, payload, .. } = waiting.event.clone();
    // Waits for the broker's acknowledgement (bounded by the delivery
    // timeout): Ok, Fail (never reached the broker) or Unknown (the reply
    // was lost; the broker may have it).
    if waiting.failures == 0 {
        let delivery = sink.start(&key, &payload);
        in_flight.push(Box::pin(async move { Published { key, number, told: delivery.await } }));
    } else {
        let pause = Backoff::BACKGROUND.after(waiting.failures);
        in_flight.push(Box::pin(async move {
            tokio::time::sleep(pause).await;
            let told = sink.start(&key, &payload).await;
            Published { key, number, told }
        }));
    }
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

    /// The publish of `key`'s `nth` waiting event ended with `told`.
    fn ended(pipeline: &Pipeline<'_>, key: &str, nth: usize, told: Told) -> Published {
        Published { key: key.into(), number: pipeline.lanes[key].events[nth].number, told }
    }

    fn states(pipeline: &Pipeline<'_>, key: &str) -> Vec<State> {
        pipeline.lanes[key].events.iter().map(|w| w.state).collect()
    }

    /// A pipeline holding T1 (at 10) and T2 (at 20), one event each, both of
    /// product a and both sent.
    fn two_transactions_of_a(sink: &Sink) -> Pipeline<'_> {
        let mut pipeline = Pipeline::new(sink);
        pipeline.committed(Lsn(10), vec![event("a")]);
        pipeline.committed(Lsn(20), vec![event("a")]);
        pipeline
    }

    fn reply_lost() -> Told {
        Told::unknown("reply lost")
    }

    #[tokio::test]
    async fn a_position_is_confirmed_only_after_everything_before_it() {
        let sink = Sink::Topic(idle_publisher());
        let ledger = Ledger::default();
        let mut pipeline = Pipeline::new(&sink);
        // T1 and T3 for product a, T2 for product b: all three sent at once.
        assert_eq!(pipeline.committed(Lsn(10), vec![event("a")]), None);
        assert_eq!(pipeline.committed(Lsn(20), vec![event("b")]), None);
        assert_eq!(pipeline.committed(Lsn(30), vec![event("a")]), None);
        assert_eq!(pipeline.in_flight.len(), 3, "a lane does not wait for an acknowledgement to send");
        // b's acknowledgement alone confirms nothing: T1 is still out.
        let b = ended(&pipeline, "b", 0, Told::ok());
        assert_eq!(pipeline.published(b, &ledger), None);
        // T1 acknowledged: T1 and T2 are done.
        let a1 = ended(&pipeline, "a", 0, Told::ok());
        assert_eq!(pipeline.published(a1, &ledger), Some(Lsn(20)));
        let a2 = ended(&pipeline, "a", 0, Told::ok());
        assert_eq!(pipeline.published(a2, &ledger), Some(Lsn(30)));
        assert!(pipeline.lanes.is_empty());
        assert_eq!(ledger.deliveries(), 3);
    }

    #[tokio::test]
    async fn an_acknowledgement_out_of_order_waits_for_the_older_one() {
        let sink = Sink::Topic(idle_publisher());
        let ledger = Ledger::default();
        let mut pipeline = two_transactions_of_a(&sink);
        let newer = ended(&pipeline, "a", 1, Told::ok());
        assert_eq!(pipeline.published(newer, &ledger), None, "T1 is not acknowledged yet");
        assert_eq!(states(&pipeline, "a"), [State::Sending, State::Acknowledged]);
        let older = ended(&pipeline, "a", 0, Told::ok());
        assert_eq!(pipeline.published(older, &ledger), Some(Lsn(20)));
        assert!(pipeline.lanes.is_empty());
    }

    #[tokio::test]
    async fn a_failed_publish_is_retried_alone_and_holds_its_lane_and_position() {
        let sink = Sink::Topic(idle_publisher());
        let ledger = Ledger::default();
        let mut pipeline = two_transactions_of_a(&sink);
        // T1's publish is lost while T2's is still out: T1 waits for T2 to end.
        let lost = ended(&pipeline, "a", 0, reply_lost());
        assert_eq!(pipeline.published(lost, &ledger), None);
        assert_eq!(states(&pipeline, "a"), [State::Held, State::Sending]);
        // T2 lost too: T1, the older, goes again, alone.
        let lost = ended(&pipeline, "a", 1, reply_lost());
        assert_eq!(pipeline.published(lost, &ledger), None);
        assert_eq!(states(&pipeline, "a"), [State::Sending, State::Held]);
        assert_eq!(pipeline.lanes["a"].events[0].failures, 1, "the same event, retried");
        // A new event of the careful lane is held back.
        pipeline.committed(Lsn(30), vec![event("a")]);
        assert_eq!(states(&pipeline, "a"), [State::Sending, State::Held, State::Held]);
        // Each acknowledgement lets the next go.
        let retried = ended(&pipeline, "a", 0, Told::ok());
        assert_eq!(pipeline.published(retried, &ledger), Some(Lsn(10)));
        assert_eq!(states(&pipeline, "a"), [State::Sending, State::Held]);
        let retried = ended(&pipeline, "a", 0, Told::ok());
        assert_eq!(pipeline.published(retried, &ledger), Some(Lsn(20)));
        let third = ended(&pipeline, "a", 0, Told::ok());
        assert_eq!(pipeline.published(third, &ledger), Some(Lsn(30)));
        assert!(pipeline.lanes.is_empty(), "an emptied lane is no longer careful");
        pipeline.committed(Lsn(40), vec![event("a")]);
        pipeline.committed(Lsn(50), vec![event("a")]);
        assert_eq!(states(&pipeline, "a"), [State::Sending, State::Sending]);
    }

    #[tokio::test]
    async fn a_lane_is_failing_until_its_failed_event_is_acknowledged() {
        let sink = Sink::Topic(idle_publisher());
        let ledger = Ledger::default();
        let mut pipeline = two_transactions_of_a(&sink);
        let lost = ended(&pipeline, "a", 0, reply_lost());
        pipeline.published(lost, &ledger);
        // The newer event, sent before the failure, is acknowledged while
        // the older one waits for its retry: the lane is still failing.
        let newer = ended(&pipeline, "a", 1, Told::ok());
        assert_eq!(pipeline.published(newer, &ledger), None);
        let error = ledger.last_error().expect("the older event is still unacknowledged");
        assert!(error.contains("key a: reply lost"), "{error}");
        let retried = ended(&pipeline, "a", 0, Told::ok());
        assert_eq!(pipeline.published(retried, &ledger), Some(Lsn(20)));
        assert_eq!(ledger.last_error(), None);
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
        let a = ended(&pipeline, "a", 0, Told::ok());
        assert_eq!(pipeline.published(a, &ledger), Some(Lsn(15)));
    }
}
