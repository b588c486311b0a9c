//! The connector's ledger: what the broker acknowledged, across every
//! connector process of a run (a crash does not erase it).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use pgwire_replication::Lsn;

use crate::history::OrderId;

/// What the broker acknowledged, across every connector process of a run.
///
/// The ledger is the observer's notebook, not the connector's memory: a
/// crash does not erase it, because what the broker acknowledged stays
/// acknowledged. The drain phase reads it to know when everything committed
/// has reached the topic; tests read it to see redeliveries.
#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<LedgerState>,
    /// Test hook: while set, the connector publishes but confirms nothing.
    hold_acks: AtomicBool,
}

#[derive(Debug, Default)]
pub(super) struct LedgerState {
    pub(super) acknowledged: HashSet<OrderId>,
    pub(super) deliveries: u64,
    pub(super) confirmed: Option<Lsn>,
    pub(super) sessions: u64,
    /// Why the last session failed, until one streams again.
    pub(super) last_error: Option<String>,
    /// Per product (lane), why its event's last publish did not succeed,
    /// while any event of the lane that failed is still unacknowledged.
    pub(super) failing_publishes: HashMap<String, String>,
}

impl Ledger {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state.lock().expect("ledger mutex poisoned")
    }

    /// True when the broker has acknowledged an event for every order.
    pub fn all_acknowledged<'a>(&self, orders: impl IntoIterator<Item = &'a OrderId>) -> bool {
        let state = self.lock();
        orders.into_iter().all(|id| state.acknowledged.contains(id))
    }

    /// How many of `orders` have had no event acknowledged by the broker.
    pub fn unacknowledged<'a>(&self, orders: impl IntoIterator<Item = &'a OrderId>) -> u64 {
        let state = self.lock();
        orders.into_iter().filter(|id| !state.acknowledged.contains(id)).count() as u64
    }

    /// Orders with at least one acknowledged event.
    pub fn acknowledged_orders(&self) -> usize {
        self.lock().acknowledged.len()
    }

    /// Events the broker acknowledged, redeliveries included.
    pub fn deliveries(&self) -> u64 {
        self.lock().deliveries
    }

    /// The last position a connector confirmed to its replication client
    /// (the server hears of it within the status interval).
    pub fn confirmed(&self) -> Option<Lsn> {
        self.lock().confirmed
    }

    /// Replication sessions that started streaming (one per connect).
    pub fn sessions(&self) -> u64 {
        self.lock().sessions
    }

    /// Why the connector is not making progress, if it is not: its last
    /// session's error while it cannot stream, else the last error of a
    /// publish still waiting to be retried.
    pub fn last_error(&self) -> Option<String> {
        let state = self.lock();
        if let Some(error) = &state.last_error {
            return Some(format!("the connector could not stream the WAL: {error}"));
        }
        let (key, error) = state.failing_publishes.iter().min_by(|a, b| a.0.cmp(b.0))?;
        Some(format!(
            "the connector's publishes are failing ({} product(s); key {key}: {error})",
            state.failing_publishes.len()
        ))
    }

    pub(super) fn publish_failed(&self, key: &str, error: Option<&str>) {
        self.lock().failing_publishes.insert(key.to_string(), error.unwrap_or("no error reported").to_string());
    }

    /// Test hook: while `hold` is true the connector keeps publishing but
    /// confirms no position, so that a crash then leaves every event
    /// delivered and unconfirmed: the restarted connector must publish them
    /// all again. This is how the duplicates of a crash are made certain
    /// rather than left to timing.
    pub fn hold_acks(&self, hold: bool) {
        self.hold_acks.store(hold, Ordering::SeqCst);
    }

    pub(super) fn holding_acks(&self) -> bool {
        self.hold_acks.load(Ordering::SeqCst)
    }

    /// The lane `key` has no failed event left unacknowledged (the
    /// pipeline knows; an acknowledgement of a newer event says nothing of
    /// an older one waiting for its retry).
    pub(super) fn publishes_recovered(&self, key: &str) {
        self.lock().failing_publishes.remove(key);
    }

    pub(super) fn delivered(&self, order: Option<OrderId>) {
        let mut state = self.lock();
        state.deliveries += 1;
        if let Some(id) = order {
            state.acknowledged.insert(id);
        }
    }
}
