//! Watching the stores themselves: is a store down for a reason the
//! scenario did not inject?
//!
//! Every fault a scenario injects is on a proxy link. This watch reaches each
//! store the run uses *directly*, bypassing the proxy, a few times a second:
//! PostgreSQL on the run's lease connection, Redis with a PING, the broker
//! with a TCP connect. So when a probe fails, the store itself is down (it
//! was killed, restarted, or the machine is out of memory), never because of
//! a toxic. Two things follow:
//!
//! - an outage that ends by itself is a fact about the run, reported beside
//!   its figures ("postgres was unreachable 4.1–7.9 s, not injected"): a
//!   verdict reached across it means less than it seems;
//! - an outage that lasts [`DEAD_AFTER`] (a store that refuses) or
//!   [`SILENT_DEAD_AFTER`] (one that does not answer at all, which may only
//!   be slow) means the store is gone. The run stops with one line that
//!   names the store, its address and the fix, instead of a minute of
//!   warnings from every component retrying.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::error::Error;
use crate::history::{Clock, Millis};
use crate::lease::Lease;

/// How often each store is probed.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long one probe may take before it counts as a failure. Far above
/// what a `SELECT 1` or a PING takes on a loaded laptop.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a store may refuse the probe (a connection refused or reset,
/// an error returned) before the run gives up on it. Long enough for a
/// restart to come back (PostgreSQL restarts in about a second); short
/// enough that nobody waits on a dead store.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
/// How long a store may stay *silent* — every probe unanswered within
/// [`PROBE_TIMEOUT`] — before the run gives up on it. Longer than
/// [`DEAD_AFTER`]: a store that refuses is down, but one that is silent
/// may only be slow (a server shared by a whole class, a checkpoint's
/// fsync on a busy disk), and a run stopped for a slow server would be a
/// lesson lost, not a dead store found.
pub const SILENT_DEAD_AFTER: Duration = Duration::from_secs(15);

/// A period during which a store did not answer its direct probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outage {
    /// `postgres`, `redis` or `kafka`.
    pub store: &'static str,
    pub address: String,
    /// When the first failed probe was sent, on the run's clock.
    pub from_ms: Millis,
    /// When the store answered again; `None` if it had not by the end.
    pub until_ms: Option<Millis>,
    /// What the first failed probe said.
    pub error: String,
}

impl Outage {
    /// `postgres was unreachable 4.1–7.9 s, not injected`
    pub fn describe(&self) -> String {
        let s = |ms: Millis| format!("{:.1}", ms as f64 / 1000.0);
        match self.until_ms {
            Some(until) => format!(
                "{} at {} was unreachable {}–{} s, not injected ({})",
                self.store,
                self.address,
                s(self.from_ms),
                s(until),
                self.error
            ),
            None => format!(
                "{} at {} was unreachable from {} s to the end, not injected ({})",
                self.store,
                self.address,
                s(self.from_ms),
                self.error
            ),
        }
    }
}

/// One store to probe.
pub enum Probe {
    /// The run's lease connection (see [`Lease::check`]).
    Postgres { lease: Arc<Lease>, address: String },
    /// A PING on a direct connection of its own (boxed: a client is large,
    /// and probes live in a list).
    Redis { cache: Box<Cache> },
    /// A TCP connect to the broker's own address (not the proxy's link).
    Kafka { address: String },
    /// A store that refuses every probe (unit tests of the timing, under
    /// paused time).
    #[cfg(test)]
    Failing,
    /// A store that answers no probe in time: the probe's own call times
    /// out, as the lease's and the cache's do.
    #[cfg(test)]
    Silent,
}

impl Probe {
    fn store(&self) -> &'static str {
        match self {
            Probe::Postgres { .. } => "postgres",
            Probe::Redis { .. } => "redis",
            Probe::Kafka { .. } => "kafka",
            #[cfg(test)]
            Probe::Failing | Probe::Silent => "kafka",
        }
    }

    fn address(&self) -> String {
        match self {
            Probe::Postgres { address, .. } | Probe::Kafka { address } => address.clone(),
            Probe::Redis { cache } => cache.address().to_string(),
            #[cfg(test)]
            Probe::Failing | Probe::Silent => "127.0.0.1:1".into(),
        }
    }

    /// One probe, bounded by [`PROBE_TIMEOUT`].
    async fn check(&self) -> Result<(), Failure> {
        let attempt = async {
            match self {
                Probe::Postgres { lease, .. } => lease.check(PROBE_TIMEOUT).await,
                Probe::Redis { cache } => cache.ping().await.map_err(|e| crate::error::chain(&e)),
                Probe::Kafka { address } => {
                    tokio::net::TcpStream::connect(address.as_str()).await.map(drop).map_err(|e| e.to_string())
                }
                #[cfg(test)]
                Probe::Failing => Err("connection refused".to_string()),
                // As the lease and the cache do: their own timeout's error.
                #[cfg(test)]
                Probe::Silent => {
                    tokio::time::sleep(PROBE_TIMEOUT).await;
                    Err(format!("no answer within {PROBE_TIMEOUT:?}"))
                }
            }
        };
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(())) => Ok(()),
            // A refusal is prompt. An error that took half the probe's
            // time or more is silence: the lease and the cache bound their
            // own calls by the same limit, and their timeouts come back as
            // errors just before this one would fire.
            Ok(Err(error)) => Err(Failure { error, silent: started.elapsed() >= PROBE_TIMEOUT / 2 }),
            Err(_) => Err(Failure { error: format!("no answer within {PROBE_TIMEOUT:?}"), silent: true }),
        }
    }

    /// The error a run stops with when this store is gone.
    fn died(&self, at: Millis, error: String) -> Error {
        let (service, fix) = match self {
            Probe::Postgres { address, .. } => {
                let (host, port) = address.rsplit_once(':').unwrap_or((address.as_str(), "5432"));
                ("PostgreSQL", format!("is it running? `pg_isready -h {host} -p {port}` says; `make setup` starts it"))
            }
            Probe::Redis { cache } => {
                let address = cache.address();
                let (host, port) = address.rsplit_once(':').unwrap_or((address, "6379"));
                ("Redis", format!("is it running? `redis-cli -h {host} -p {port} ping` says; `make setup` starts it"))
            }
            Probe::Kafka { address } => ("Kafka", format!("is the broker at {address} running?")),
            #[cfg(test)]
            Probe::Failing | Probe::Silent => ("Kafka", "is the broker running?".to_string()),
        };
        Error::StoreDied { service, address: self.address(), at_ms: at, fix, source: error.into() }
    }
}

/// A failed probe: what it said, and whether the store said nothing at
/// all (no answer within [`PROBE_TIMEOUT`]) rather than refusing.
struct Failure {
    error: String,
    silent: bool,
}

/// The probes, running for as long as the run is live.
pub struct Watch {
    state: Arc<Mutex<State>>,
    /// Cancelled when a store has been unreachable for [`DEAD_AFTER`]
    /// ([`SILENT_DEAD_AFTER`] when it was silent).
    dead: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    /// Outages that ended, in the order they began.
    ended: Vec<Outage>,
    /// Per store, the outage going on right now, when (on tokio's clock,
    /// which tests can pause) its first failed probe was sent, and when the
    /// refusals going on now began (`None` while the store is silent).
    open: BTreeMap<&'static str, (Outage, tokio::time::Instant, Option<tokio::time::Instant>)>,
    /// The error of the first store declared dead.
    died: Option<Error>,
}

impl Watch {
    /// Starts one probing task per store, on the run's clock.
    pub fn start(clock: Clock, probes: Vec<Probe>) -> Watch {
        let state = Arc::new(Mutex::new(State::default()));
        let dead = CancellationToken::new();
        let tasks =
            probes.into_iter().map(|probe| tokio::spawn(watch(probe, clock, state.clone(), dead.clone()))).collect();
        Watch { state, dead, tasks }
    }

    /// Resolves once a store is declared dead.
    pub async fn died(&self) {
        self.dead.cancelled().await
    }

    /// The error for the store that died, if one did. Taken once.
    pub fn take_death(&self) -> Option<Error> {
        self.state.lock().expect("watch mutex poisoned").died.take()
    }

    /// Stops probing; returns every outage, those still going on included.
    /// Waits for the probes to be gone, so that the lease they share has
    /// one owner again.
    pub async fn stop(mut self) -> Vec<Outage> {
        let tasks: Vec<_> = self.tasks.drain(..).collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        let mut state = self.state.lock().expect("watch mutex poisoned");
        let mut outages = std::mem::take(&mut state.ended);
        // Those still going on when the run stopped looking keep `until_ms: None`.
        outages.extend(std::mem::take(&mut state.open).into_values().map(|(outage, _, _)| outage));
        outages.sort_by_key(|o| o.from_ms);
        outages
    }

    fn abort(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Probes one store until aborted, recording its outages.
async fn watch(probe: Probe, clock: Clock, state: Arc<Mutex<State>>, dead: CancellationToken) {
    loop {
        let (sent, sent_instant) = (clock.now(), tokio::time::Instant::now());
        let result = probe.check().await;
        record(&probe, &state, &dead, result, sent, sent_instant);
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Files one probe's result: opens, extends or closes the store's outage,
/// and declares the store dead once it has refused for [`DEAD_AFTER`], or
/// been out, silent or refusing, for [`SILENT_DEAD_AFTER`].
fn record(
    probe: &Probe,
    state: &Mutex<State>,
    dead: &CancellationToken,
    result: Result<(), Failure>,
    sent: Millis,
    sent_instant: tokio::time::Instant,
) {
    let store = probe.store();
    let mut state = state.lock().expect("watch mutex poisoned");
    let State { ended, open, died } = &mut *state;
    match result {
        Ok(()) => {
            if let Some((mut outage, _, _)) = open.remove(store) {
                // It answered a probe sent at `sent`: back by then.
                outage.until_ms = Some(sent);
                tracing::warn!("{}", outage.describe());
                ended.push(outage);
            }
        }
        Err(Failure { error, silent }) => {
            let (outage, since, refusing) = open.entry(store).or_insert_with(|| {
                let outage =
                    Outage { store, address: probe.address(), from_ms: sent, until_ms: None, error: error.clone() };
                (outage, sent_instant, None)
            });
            // Silence may be slowness; a refusal is an answer. Dead after
            // DEAD_AFTER of refusals without a silence between them, or
            // SILENT_DEAD_AFTER of outage of any kind.
            *refusing = if silent { None } else { Some(refusing.unwrap_or(sent_instant)) };
            let refused_long = refusing.is_some_and(|from| from.elapsed() >= DEAD_AFTER);
            if (refused_long || since.elapsed() >= SILENT_DEAD_AFTER) && died.is_none() {
                *died = Some(probe.died(outage.from_ms, error));
                dead.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_says_when_and_that_it_was_not_injected() {
        let outage = Outage {
            store: "postgres",
            address: "127.0.0.1:5432".into(),
            from_ms: 4100,
            until_ms: Some(7900),
            error: "connection refused".into(),
        };
        assert_eq!(
            outage.describe(),
            "postgres at 127.0.0.1:5432 was unreachable 4.1–7.9 s, not injected (connection refused)"
        );
        let open = Outage { until_ms: None, ..outage };
        assert!(open.describe().contains("from 4.1 s to the end"), "{}", open.describe());
    }

    /// A store that answers nothing is declared dead after
    /// SILENT_DEAD_AFTER, not after DEAD_AFTER: it may only be slow.
    #[tokio::test(start_paused = true)]
    async fn a_silent_store_is_given_longer_than_one_that_refuses() {
        let started = tokio::time::Instant::now();
        let watch = Watch::start(Clock::start(), vec![Probe::Silent]);
        watch.died().await;
        let waited = started.elapsed();
        // The last probe before the limit may still be waiting for its answer.
        assert!(waited >= SILENT_DEAD_AFTER && waited <= SILENT_DEAD_AFTER + PROBE_TIMEOUT + PROBE_EVERY, "{waited:?}");
        let text = crate::error::chain(&watch.take_death().expect("the death is recorded"));
        assert!(text.contains("no answer within 2s"), "{text}");
        watch.stop().await;
    }

    /// Refusals count toward DEAD_AFTER only while no silence breaks them;
    /// the outage as a whole still ends at SILENT_DEAD_AFTER.
    #[tokio::test(start_paused = true)]
    async fn a_silence_between_refusals_starts_their_count_again() {
        let (state, dead) = (Mutex::new(State::default()), CancellationToken::new());
        let file = |silent: bool| {
            let failure = Failure { error: "connection refused".into(), silent };
            record(&Probe::Failing, &state, &dead, Err(failure), 0, tokio::time::Instant::now());
        };
        let step = |secs: f64| tokio::time::advance(Duration::from_secs_f64(secs));
        file(false); // refused at 0 s
        step(3.0).await;
        file(true); // silent at 3 s
        step(3.0).await;
        file(false); // refusing again from 6 s
        step(4.9).await;
        file(false); // 10.9 s: refusing for 4.9 s, out for 10.9 s
        assert!(!dead.is_cancelled(), "neither limit reached");
        step(0.2).await;
        file(false); // 11.1 s: refusing for 5.1 s
        assert!(dead.is_cancelled(), "five seconds of refusals");

        // Refused and silent by turns, every 2 s: no run of refusals lasts
        // 5 s, so the store is dead at the first probe past 15 s, at 16 s.
        let (state, dead) = (Mutex::new(State::default()), CancellationToken::new());
        for i in 0..=8u64 {
            let failure = Failure { error: "refused, or no answer".into(), silent: i % 2 == 1 };
            record(&Probe::Failing, &state, &dead, Err(failure), 0, tokio::time::Instant::now());
            assert_eq!(dead.is_cancelled(), i == 8, "at {} s", i * 2);
            tokio::time::advance(Duration::from_secs(2)).await;
        }
    }

    /// A store that refuses every probe is declared dead after DEAD_AFTER,
    /// and not before; under paused time, so exactly.
    #[tokio::test(start_paused = true)]
    async fn a_store_that_stays_down_is_declared_dead_after_dead_after() {
        let started = tokio::time::Instant::now();
        let watch = Watch::start(Clock::start(), vec![Probe::Failing]);
        watch.died().await;
        let waited = started.elapsed();
        assert!(waited >= DEAD_AFTER && waited <= DEAD_AFTER + PROBE_EVERY, "{waited:?}");
        let error = watch.take_death().expect("the death is recorded");
        let text = crate::error::chain(&error);
        assert!(text.contains("Kafka at 127.0.0.1:1") && text.contains("not because of an injected fault"), "{text}");
        let outages = watch.stop().await;
        assert_eq!(outages.len(), 1);
        assert_eq!(outages[0].until_ms, None);
    }
}
