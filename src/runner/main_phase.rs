//! The main phase: the app's tasks and the fault schedule run for the
//! workload's duration, and crashes happen on time.
//!
//! It ends in one of four ways — the duration is over, a signal, a store
//! that died, or an error (a fault step the proxy refused, a restart that
//! failed, a task that panicked) — and every way out goes through the same
//! wind-down, in this order:
//!
//! 1. the fault schedule is aborted *and awaited*: once it has stopped, no
//!    toxic can be added after the heal that follows;
//! 2. the app's tasks stop — gracefully when the run is over (orders in
//!    flight finish), as a crash otherwise — and are awaited;
//! 3. a relay, connector or downstream consumer whose restart falls after
//!    the end comes back, so that the drain can let it catch up.
//!
//! Nothing in the loop returns early: an error breaks out of it with the
//! error, and the wind-down runs before the error is returned.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::faults::{self, Applied, FaultLog};
use crate::history::History;
use crate::scenario::schedule::Component;
use crate::strategy::App;
use crate::workload::tasks::{AppTasks, TaskEnv};

use super::{Live, Run};

/// A crash or restart due at a point of the main phase.
#[derive(Debug, Clone, Copy)]
enum Step {
    Crash(Component),
    Restart(Component),
}

/// The app, while it runs: `None` between a writer crash and its restart.
struct Running {
    app: Option<Arc<App>>,
    tasks: Option<AppTasks>,
}

impl Run<'_> {
    /// main: returns the faults as they were applied.
    pub async fn main(&self, live: &mut Live) -> Result<Vec<Applied>> {
        let plan = self.plan;
        self.enter("main");
        let clock = live.history.clock();
        let task_env = TaskEnv {
            workload: plan.workload.clone(),
            history: live.history.clone(),
            direct: live.direct.clone(),
            downstream: live.downstream.clone(),
        };
        // Connected by `start` (lazily, but for its producer).
        let app = match live.app.take() {
            Some(app) => app,
            None => Arc::new(App::connect(&self.env)?),
        };
        let mut running = Running { tasks: Some(AppTasks::spawn(app.clone(), &task_env)), app: Some(app) };

        // The fault schedule runs on its own task, on the run's clock.
        let log = FaultLog::default();
        let mut schedule: JoinHandle<Result<()>> = {
            let (schedule, proxy, log) = (plan.schedule.clone(), self.infra.proxy.clone(), log.clone());
            tokio::spawn(async move { faults::execute(&schedule, &proxy, clock, &log).await })
        };
        // A task that has finished must not be awaited again.
        let mut schedule_running = true;
        if let Some(url) = &self.infra.services.toxiproxy {
            // An external proxy outlives dualwrite: a user who quits before
            // the heal must know how to heal it.
            self.interrupt.hold(format!("faults on the proxy at {url}"), format!("curl -X POST {url}/reset"));
        }

        // Crashes and restarts, in time order. They run in this loop, not on
        // a task of their own, because a crash replaces the app and its
        // tasks, which the loop owns: no lock, no race with the wind-down.
        let mut steps: Vec<(Duration, Step)> = Vec::new();
        for crash in &plan.schedule.crashes {
            steps.push((crash.at, Step::Crash(crash.component)));
            steps.push((crash.at + crash.restart_after, Step::Restart(crash.component)));
        }
        steps.sort_by_key(|(at, _)| *at);
        let mut steps = steps.into_iter().peekable();

        let end = tokio::time::Instant::from_std(clock.at(plan.workload.duration));
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        self.progress.start_main(crate::progress::RunView {
            strategy: plan.strategy,
            duration: plan.workload.duration,
            products: plan.workload.products,
            windows: plan.schedule.windows.clone(),
            crashes: plan.schedule.crashes.clone(),
        });
        // Every arm either continues or breaks with the phase's outcome;
        // none returns, so the wind-down below runs on every path.
        let outcome: Result<()> = loop {
            let next_step =
                steps.peek().map(|(at, _)| tokio::time::Instant::from_std(clock.at(*at))).filter(|t| *t < end);
            tokio::select! {
                _ = tokio::time::sleep_until(end) => break Ok(()),
                // A signal or a dead store ends the phase at once: a user
                // waiting on Ctrl-C, or on a store that is gone, waits for
                // nothing more than the wind-down.
                _ = self.interrupt.cancelled() => break Err(self.interrupted()),
                _ = live.watch.died() => break Err(self.store_died(live)),
                done = &mut schedule, if schedule_running => {
                    schedule_running = false;
                    match done {
                        Ok(Ok(())) => {}
                        // The proxy refused a step: the scenario cannot run as written.
                        Ok(Err(e)) => break Err(e),
                        Err(e) => break Err(Error::task_failed("fault schedule", e)),
                    }
                }
                _ = tokio::time::sleep_until(next_step.unwrap_or(end)), if next_step.is_some() => {
                    let (_, step) = steps.next().expect("peeked");
                    if let Err(e) = self.step(step, &mut running, &task_env, live).await {
                        break Err(e);
                    }
                }
                // The live display; it only reads the history.
                _ = tick.tick() => self.progress.main(&live.history, live.downstream.as_deref()),
            }
        };

        // ── wind-down: the same on every path ───────────────────────────
        // 1. No fault step after this point: the heal is the last word.
        if schedule_running {
            schedule.abort();
            let _ = (&mut schedule).await;
        }
        // 2. The app stops: no new orders; those in flight finish (each leg
        //    is bounded), unless the phase failed — then it stops at once.
        let stopped = match running.tasks.take() {
            Some(tasks) if outcome.is_ok() => {
                self.enter("finishing in-flight orders");
                let limit = plan.tuning.db_timeout * 3 + plan.tuning.publish_timeout + Duration::from_secs(5);
                // A signal cuts the wait short; dropping the tasks aborts them.
                tokio::select! {
                    stopped = tasks.stop(limit) => stopped,
                    _ = self.interrupt.cancelled() => Err(self.interrupted()),
                    _ = live.watch.died() => Err(self.store_died(live)),
                }
            }
            Some(tasks) => tasks.abort().await,
            None => Ok(()),
        };
        // The app's producer purges its queue (empty now, unless the
        // writers were aborted) and closes in the background.
        drop(running.app.take());
        // 3. A component whose restart falls after the end comes back now.
        let restarted = match (&outcome, &stopped) {
            (Ok(()), Ok(())) => self.late_restarts(steps.map(|(_, step)| step), live).await,
            _ => Ok(()),
        };
        outcome.and(stopped).and(restarted).map(|()| log.entries())
    }

    /// One crash or restart.
    async fn step(&self, step: Step, running: &mut Running, task_env: &TaskEnv, live: &mut Live) -> Result<()> {
        let history = &live.history;
        let background = live.background.as_mut().expect("the background runs through the main phase");
        match step {
            // The process-death imitation (see `crash_writer`).
            Step::Crash(Component::Writer) => crash_writer(history, running.tasks.take(), running.app.take()).await?,
            Step::Restart(Component::Writer) => {
                // Recorded before the new app's first order can be.
                history.crash("writer", true);
                let fresh = Arc::new(App::connect(&self.env)?);
                running.tasks = Some(AppTasks::spawn(fresh.clone(), task_env));
                running.app = Some(fresh);
            }
            // The downstream consumer, for a strategy that publishes.
            Step::Crash(Component::Consumer) => {
                if let Some(downstream) = &live.downstream {
                    history.crash("consumer", false);
                    downstream.crash();
                }
            }
            Step::Restart(Component::Consumer) => self.restart_consumer(live).await?,
            // A relay or connector crash only hits a strategy that has one.
            Step::Crash(component) if background.is(component) => {
                history.crash(component.as_str(), false);
                background.crash().await;
            }
            Step::Restart(component) if background.is(component) => {
                background.restart(&self.env, history).await?;
                history.crash(component.as_str(), true);
            }
            Step::Crash(_) | Step::Restart(_) => {}
        }
        Ok(())
    }

    /// Restarts a relay, connector or consumer whose restart was due after
    /// the end.
    async fn late_restarts(&self, steps: impl Iterator<Item = Step>, live: &mut Live) -> Result<()> {
        for step in steps {
            match step {
                Step::Restart(Component::Consumer) => self.restart_consumer(live).await?,
                Step::Restart(component) if component != Component::Writer => {
                    let background = live.background.as_mut().expect("the background runs through the main phase");
                    if background.is(component) {
                        background.restart(&self.env, &live.history).await?;
                        live.history.crash(component.as_str(), true);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Brings a crashed downstream consumer back, resuming where it stopped.
    async fn restart_consumer(&self, live: &Live) -> Result<()> {
        let Some(downstream) = &live.downstream else { return Ok(()) };
        downstream.restart().await.map_err(|e| {
            Error::refused("Kafka", self.env.kafka.clone(), "take back the restarted downstream consumer", e)
        })?;
        live.history.crash("consumer", true);
        Ok(())
    }
}

/// A writer crash, the process-death imitation: every app task stops where it
/// is, then the app's pool and producer are dropped. Public so that tests can
/// crash an app exactly as a scenario does; `tests/crash.rs` shows that it has
/// each effect of a real process death. An error if a task had panicked.
pub async fn crash_writer(history: &History, tasks: Option<AppTasks>, app: Option<Arc<App>>) -> Result<()> {
    let stopped = match tasks {
        Some(t) => t.abort().await,
        None => Ok(()),
    };
    // The moment of death, recorded once nothing of the app runs any more and
    // before the teardown: no event of the dead app can follow it.
    history.crash("writer", false);
    if let Some(a) = app {
        crash_app(a).await;
    }
    stopped
}

/// Drops a crashed app's pool and producer the way a dying process would:
/// open transactions end with their connections (the server rolls them
/// back), and messages still in the producer's queue are purged, unsent.
async fn crash_app(app: Arc<App>) {
    let pool = app.db().pool.clone();
    let _ = tokio::time::timeout(Duration::from_secs(2), pool.close()).await;
    // Its producer purges the messages still queued (see `Publisher`).
    drop(app);
}
