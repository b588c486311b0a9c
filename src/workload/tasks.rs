//! The app's tasks: writers, readers and the unrelated pool probe.
//!
//! They all run "inside the app", so a writer crash (see the runner) aborts
//! them together, as the death of one process would, and they start again on
//! a fresh app after the restart. Each task finds its place in its seeded
//! sequence from the run's clock, so a restarted task skips the orders it
//! would have placed while dead, exactly as a real restarted service would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Workload, MAX_IN_FLIGHT_PER_WRITER};
use crate::consumer::Downstream;
use crate::db::{self, DbError};
use crate::error::{Error, Result};
use crate::history::{Clock, History, ProbeSample, ReadSample, Skip};
use crate::strategy::App;

use crate::generate;

/// What the app's tasks share.
#[derive(Clone)]
pub struct TaskEnv {
    pub workload: Workload,
    pub history: History,
    /// Postgres directly (no proxy), for the readers' truth.
    pub direct: PgPool,
    /// The downstream consumer, when the strategy publishes.
    pub downstream: Option<Arc<Downstream>>,
}

/// The running app tasks. [`AppTasks::stop`] ends them gracefully,
/// [`AppTasks::abort`] as a crash would. Dropping them aborts them too, so
/// that no path out of the main phase — an error, a panic above, Ctrl-C —
/// leaves writers placing orders into a namespace that is being dropped.
pub struct AppTasks {
    writers: Vec<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
    /// Tells writers to place no more orders and finish those in flight.
    stop: CancellationToken,
    /// Every order and read in flight. The tasks above spawn them, and
    /// aborting a task does not wait for what it spawned: a crash waits for
    /// these too, or a write of the dead app could carry on after its death.
    in_flight: TaskTracker,
}

/// A beat: tick `k` is due at `offset + k × every` on the run's clock.
#[derive(Debug, Clone, Copy)]
struct Beat {
    every: Duration,
    offset: Duration,
}

impl Beat {
    /// The first tick at or after now.
    fn next_tick(&self, clock: &Clock) -> u64 {
        let since = clock.now_f64() - self.offset.as_secs_f64() * 1000.0;
        (since.max(0.0) / (self.every.as_secs_f64() * 1000.0)).ceil() as u64
    }

    /// When tick `k` is due.
    fn due(&self, clock: &Clock, k: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(clock.at(self.offset + self.every.mul_f64(k as f64)))
    }
}

impl AppTasks {
    /// Starts the writers, the reader and the pool probe on `app`.
    pub fn spawn(app: Arc<App>, env: &TaskEnv) -> AppTasks {
        let stop = CancellationToken::new();
        let in_flight = TaskTracker::new();
        let writers = (0..env.workload.writer_tasks)
            .map(|w| tokio::spawn(writer(w, app.clone(), env.clone(), stop.clone(), in_flight.clone())))
            .collect();
        let others = vec![
            tokio::spawn(reader(app.clone(), env.clone(), stop.clone(), in_flight.clone())),
            tokio::spawn(probe(app, env.clone(), stop.clone(), in_flight.clone())),
        ];
        AppTasks { writers, others, stop, in_flight }
    }

    /// The end of the main phase: no new orders or reads; those in flight
    /// finish (each of their steps is bounded by a timeout), up to `limit`.
    /// An error if a task panicked: its history is incomplete, a bug.
    pub async fn stop(mut self, limit: Duration) -> Result<()> {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + limit;
        let mut panicked = None;
        for mut task in self.take_all() {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panicked = panicked.or(Some(e)),
                Err(_) => {
                    tracing::warn!("an app task did not finish within {limit:?} of the end; abandoning it");
                    task.abort();
                }
            }
        }
        panicked.map_or(Ok(()), |e| Err(Error::task_failed("app task", e)))
    }

    /// A crash: every task stops where it is. Orders in flight never learn
    /// their outcome, so the history holds their legs as invoked and never
    /// completed — Unknown. An error if a task had panicked before.
    pub async fn abort(mut self) -> Result<()> {
        let tasks = self.take_all();
        for task in &tasks {
            task.abort();
        }
        // Wait until every task has really stopped (an aborted task stops at
        // its next await), so nothing runs after the crash point.
        let mut panicked = None;
        for task in tasks {
            if let Err(e) = task.await {
                if e.is_panic() {
                    panicked = panicked.or(Some(e));
                }
            }
        }
        // A stopped task dropped its orders and reads in flight, which
        // aborts them but does not wait for them: they stop at their own
        // next await. Only when they are gone too has the app stopped, and
        // no longer holds its pool or producer.
        self.in_flight.close();
        self.in_flight.wait().await;
        panicked.map_or(Ok(()), |e| Err(Error::task_failed("app task", e)))
    }

    /// Every task handle, leaving none for `drop` to abort.
    fn take_all(&mut self) -> Vec<JoinHandle<()>> {
        self.writers.drain(..).chain(self.others.drain(..)).collect()
    }
}

impl Drop for AppTasks {
    /// Stops whatever [`AppTasks::stop`] or [`AppTasks::abort`] did not: the
    /// tasks stop at their next `.await`, and their orders in flight with them.
    fn drop(&mut self) {
        for task in self.writers.iter().chain(&self.others) {
            task.abort();
        }
    }
}

/// One writer task: an order on every beat, whether or not the previous ones
/// have finished (up to [`MAX_IN_FLIGHT_PER_WRITER`]). Orders arrive like
/// requests at a service; when a store is slow they pile up, which is what
/// exhausts a connection pool. Writer `w` of `W` beats `w/W` of an interval
/// after writer 0, so orders arrive evenly spread rather than in bursts.
async fn writer(w: u32, app: Arc<App>, env: TaskEnv, stop: CancellationToken, in_flight: TaskTracker) {
    let clock = env.history.clock();
    let every = env.workload.writers;
    let beat = Beat { every, offset: every.mul_f64(w as f64 / env.workload.writer_tasks as f64) };
    on_every_beat(clock, beat, stop, in_flight, Some(env.history.clone()), move |k| {
        let order = generate::order(env.workload.seed, w, k, env.workload.products);
        let (app, history) = (app.clone(), env.history.clone());
        async move { app.write(&order, &history).await }
    })
    .await
}

/// Runs `task(k)` on every beat of `every` — whether or not earlier ones
/// have finished, up to [`MAX_IN_FLIGHT_PER_WRITER`] at once — until `stop`;
/// then lets those in flight finish. Requests to a service arrive this way:
/// a slow store makes them pile up instead of arriving less often. Each one
/// is tracked by `tracker`, so that a crash can wait until it is gone.
///
/// The beats it lets pass are counted in `skipped` (the writers' history;
/// `None` for the readers), with why: it was waiting for room (every one of
/// its orders still in flight) or woke too late. A run that skips beats
/// offered less than its rate: the report says so.
async fn on_every_beat<F, Fut>(
    clock: Clock,
    beat: Beat,
    stop: CancellationToken,
    tracker: TaskTracker,
    skipped: Option<History>,
    task: F,
) where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let skipped = |why, beats: u64| match &skipped {
        Some(history) if beats > 0 => history.skip(why, beats),
        _ => {}
    };
    let room = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_WRITER));
    // Dropping a JoinSet aborts its tasks: a crash takes in-flight work with it.
    let mut in_flight = JoinSet::new();
    let mut k = beat.next_tick(&clock);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(beat.due(&clock, k)) => {}
            _ = stop.cancelled() => break,
        }
        // The beats already past when the task woke: it woke too late.
        let late = beat.next_tick(&clock).saturating_sub(k + 1);
        // With no room, this beat waits for an order in flight to finish;
        // the beats that pass meanwhile are skipped for want of room.
        let (permit, waited) = match room.clone().try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => tokio::select! {
                permit = room.clone().acquire_owned() => (permit.expect("the semaphore is never closed"), true),
                _ = stop.cancelled() => {
                    // This beat, and those that passed while it waited,
                    // placed no order.
                    let waited = beat.next_tick(&clock).saturating_sub(k).saturating_sub(late).max(1);
                    skipped(Skip::Late, late);
                    skipped(Skip::Full, waited);
                    break;
                }
            },
        };
        let work = task(k);
        in_flight.spawn(tracker.track_future(async move {
            work.await;
            drop(permit);
        }));
        while let Some(done) = in_flight.try_join_next() {
            rethrow_panic(done);
        }
        // A late beat is not made up twice: the next one is the next tick
        // from now, so the sequence stays the seeded one.
        let next = (k + 1).max(beat.next_tick(&clock));
        let (late, full) = match next - (k + 1) - late {
            0 => (late, 0),
            // Passed while it waited for room.
            waiting if waited => (late, waiting),
            // Passed while it placed this order: a busy machine again.
            placing => (late + placing, 0),
        };
        skipped(Skip::Late, late);
        skipped(Skip::Full, full);
        k = next;
    }
    while let Some(done) = in_flight.join_next().await {
        rethrow_panic(done);
    }
}

/// An order or read that panicked makes its task panic too, so that
/// [`AppTasks::stop`] reports the bug instead of the panic vanishing with
/// the JoinSet.
fn rethrow_panic(done: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// The reader: on every beat, one product read three ways at one instant —
/// the truth (directly, no fault), what the strategy's read path serves, and
/// what the downstream consumer believes. Reads overlap like requests do;
/// at the end of the run those in hand finish (a cache fill included).
async fn reader(app: Arc<App>, env: TaskEnv, stop: CancellationToken, in_flight: TaskTracker) {
    let clock = env.history.clock();
    let beat = Beat { every: env.workload.readers, offset: Duration::ZERO };
    on_every_beat(clock, beat, stop, in_flight, None, move |k| {
        let (app, env) = (app.clone(), env.clone());
        async move {
            let product_id = generate::read_product(env.workload.seed, k, env.workload.products);
            // The truth first: if the served value is older than this, it was
            // already stale when it was served.
            let truth = db::read_stock_direct(&env.direct, product_id).await;
            let started = std::time::Instant::now();
            let served = app.read(product_id).await;
            let read_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            let projection = env.downstream.as_ref().and_then(|d| d.projection(product_id));
            env.history.read(ReadSample {
                at: clock.now(),
                product_id,
                served: served.value,
                from_cache: served.from_cache,
                filled_cache: served.filled_cache,
                truth,
                projection,
                read_ms,
            });
        }
    })
    .await
}

/// The unrelated pool probe: a product lookup through the app's pool on the
/// readers' beat. It has nothing to do with orders; it measures what the
/// writers' use of the pool does to the rest of the service.
async fn probe(app: Arc<App>, env: TaskEnv, stop: CancellationToken, in_flight: TaskTracker) {
    let clock = env.history.clock();
    let beat = Beat { every: env.workload.readers, offset: Duration::ZERO };
    on_every_beat(clock, beat, stop, in_flight, None, move |k| {
        let (app, env) = (app.clone(), env.clone());
        async move {
            let product_id = generate::read_product(env.workload.seed, k, env.workload.products);
            let started = Instant::now();
            let result = app.db().read_stock(product_id).await;
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            env.history.probe(ProbeSample {
                at: clock.now(),
                elapsed_ms,
                acquire_timeout: matches!(result, Err(DbError::Sqlx(sqlx::Error::PoolTimedOut))),
                failed: result.is_err(),
            });
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::ops::RangeInclusive;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::history::Skipped;

    /// Runs `on_every_beat` every `every` for `run`, each task taking `task`;
    /// returns the tasks begun, the beats skipped and the beats that were due.
    async fn beats(every: Duration, task: Duration, run: Duration) -> (u64, Skipped, RangeInclusive<u64>) {
        let clock = Clock::start();
        let stop = CancellationToken::new();
        let begun = Arc::new(AtomicU64::new(0));
        let history = History::new(clock);
        let counted = begun.clone();
        let beating = tokio::spawn(on_every_beat(
            clock,
            Beat { every, offset: Duration::ZERO },
            stop.clone(),
            TaskTracker::new(),
            Some(history.clone()),
            move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(task)
            },
        ));
        tokio::time::sleep(run).await;
        // The beats due: ticks 0 to the one at the stop. The writer may see
        // the stop a little after it is given (a busy machine), so between
        // the ticks due when it was given and those due once it has ended.
        let due_by = || (clock.now_f64() / (every.as_secs_f64() * 1000.0)).floor() as u64 + 1;
        let due_at_stop = due_by();
        stop.cancel();
        beating.await.unwrap();
        let due = due_at_stop..=due_by();
        (begun.load(Ordering::Relaxed), history.skipped(), due)
    }

    #[tokio::test]
    async fn beats_that_find_every_order_in_flight_are_counted_as_full() {
        // 16 orders of 200 ms each fill the writer in 32 ms; then it waits,
        // and places about 16 orders every 200 ms as they end.
        let (begun, skipped, due) =
            beats(Duration::from_millis(2), Duration::from_millis(200), Duration::from_millis(500)).await;
        assert!(begun < 60, "{begun} begun: 16, then about 16 more every 200 ms");
        assert!(skipped.full > 150, "{skipped:?}");
        let accounted = begun + skipped.total();
        // Every beat was either begun or skipped, but for two at the edges:
        // tick 0, due as the writer starts, has already passed by then (it
        // begins at the next tick, as a restarted writer does), and the one
        // at the stop may not have been reached.
        assert!(*due.start() <= accounted + 2 && accounted <= *due.end(), "{begun} + {skipped:?}, {due:?} due");
    }

    #[tokio::test]
    async fn a_writer_with_room_skips_no_beat_for_want_of_it() {
        let (begun, skipped, due) = beats(Duration::from_millis(20), Duration::ZERO, Duration::from_millis(400)).await;
        assert_eq!(skipped.full, 0, "{skipped:?}");
        let accounted = begun + skipped.total();
        // Every beat was either begun or skipped, but for two at the edges:
        // tick 0, due as the writer starts, has already passed by then (it
        // begins at the next tick, as a restarted writer does), and the one
        // at the stop may not have been reached.
        assert!(*due.start() <= accounted + 2 && accounted <= *due.end(), "{begun} + {skipped:?}, {due:?} due");
    }
}
