//! The runner: one strategy under one scenario, in phases.
//!
//! ```text
//! prepare  → a fresh namespace: schema + tables, topic, key prefix
//! main     → writers ‖ readers ‖ fault schedule ‖ crashes ‖ progress
//! heal     → reset every proxy — always, even after an error or Ctrl-C
//! drain    → let the relay / connector / downstream consumer catch up (bounded)
//! snapshot → read the database, the whole topic and the cache, directly
//! reconcile→ compare the history with the snapshot (pure)
//! ```
//!
//! The shape is Jepsen's: work and faults together, then heal, then let the
//! system recover, then a final read that the checker compares with what
//! every client was told. [`run`] reads top to bottom in that order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::config::{Tuning, Workload};
use crate::consumer::Downstream;
use crate::error::{Error, Result};
use crate::faults::{self, Applied, FaultLog};
use crate::history::{Clock, Event, History};
use crate::infra::Infra;
use crate::progress::Progress;
use crate::reconcile::{reconcile, Findings};
use crate::scenario::schedule::{Component, Schedule};
use crate::scenario::Scenario;
use crate::snapshot::{CachedEntry, DrainReport, Snapshot};
use crate::strategy::background::Background;
use crate::strategy::{App, Env, Expectation, Strategy};
use crate::workload::generate;
use crate::workload::tasks::{AppTasks, TaskEnv};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub strategy: Strategy,
    pub scenario: Arc<Scenario>,
    /// The scenario expanded for this seed and duration.
    pub schedule: Schedule,
    pub workload: Workload,
    pub tuning: Tuning,
    /// Leave the namespace in place after the run.
    pub keep: bool,
}

/// Where a run kept its data: one namespace per run, so runs and tests never
/// see each other's rows, records or keys.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Namespace {
    /// Schema, topic, replication slot and publication all use this name.
    pub run_id: String,
    /// A database of the run's own (the CDC strategies, see
    /// [`Strategy::needs_own_database`]); `None`: the one --database-url names.
    pub database: Option<String>,
    pub schema: String,
    pub topic: String,
    pub redis_prefix: String,
}

impl Namespace {
    fn new(strategy: Strategy) -> Namespace {
        let run_id = format!("dw_{}_{}", strategy.name().replace('-', "_"), generate::run_id());
        Namespace {
            database: strategy.needs_own_database().then(|| run_id.clone()),
            schema: run_id.clone(),
            topic: run_id.clone(),
            redis_prefix: format!("{run_id}:"),
            run_id,
        }
    }
}

/// Everything a run produced.
#[derive(Debug)]
pub struct RunResult {
    pub strategy: Strategy,
    pub expected: Expectation,
    pub findings: Findings,
    pub namespace: Namespace,
    pub history: Vec<Event>,
    pub snapshot: Snapshot,
    /// The faults as they were applied.
    pub faults: Vec<Applied>,
}

/// Runs one strategy. `interrupt` is Ctrl-C: the run stops, heals and
/// cleans up, and returns [`Error::Interrupted`].
pub async fn run(infra: &Infra, plan: &Plan, progress: &Progress, interrupt: &CancellationToken) -> Result<RunResult> {
    // ── prepare ─────────────────────────────────────────────────────────
    progress.phase(plan.strategy, "prepare");
    let namespace = Namespace::new(plan.strategy);
    // Every connection of the run goes to its database: its own, or the shared one.
    let db = match &namespace.database {
        Some(name) => infra.db.clone().database(name),
        None => infra.db.clone(),
    };
    let env = Env {
        strategy: plan.strategy,
        db,
        schema: namespace.schema.clone(),
        topic: namespace.topic.clone(),
        redis_url: infra.services.redis_url.clone(),
        redis_prefix: namespace.redis_prefix.clone(),
        links: infra.links,
        kafka: infra.kafka.clone(),
        tuning: plan.tuning.clone(),
        seed: plan.workload.seed,
        knobs: plan.schedule.knobs.clone(),
    };
    // Start from healed links, whatever an earlier run left behind.
    infra.heal().await?;
    if let Some(name) = &namespace.database {
        crate::db::create_database(&infra.db, name).await?;
    }
    let result = async {
        crate::db::create_schema(&env.db, &namespace.schema, plan.workload.products, plan.workload.initial_stock)
            .await?;
        infra.create_topic(&namespace.topic).await?;
        crate::strategy::prepare(&env).await?;
        run_prepared(infra, plan, &env, &namespace, progress, interrupt).await
    }
    .await;

    // The namespace goes, unless asked to stay — even after a failure.
    if !plan.keep {
        cleanup(infra, &env, &namespace).await;
    }
    result
}

async fn run_prepared(
    infra: &Infra,
    plan: &Plan,
    env: &Env,
    namespace: &Namespace,
    progress: &Progress,
    interrupt: &CancellationToken,
) -> Result<RunResult> {
    // The checker's own connection: directly to Postgres, never through a fault.
    let direct = crate::db::connect_direct(&env.db, Some(&namespace.schema), 2).await?;
    let ready = if plan.strategy.publishes() {
        Some(
            Downstream::connect(&infra.kafka, &namespace.topic)
                .await
                .map_err(|e| Error::unreachable("Kafka", infra.kafka.clone(), "check --brokers / KAFKA_BROKERS", e))?,
        )
    } else {
        None
    };
    let mut background = Background::start(env).await?;
    // The run's clock starts now: everything before was set-up, and the
    // fault schedule, the workload and every latency count from here.
    let history = History::new(Clock::start());
    let downstream = ready.map(|consumer| Arc::new(consumer.start(history.clock())));

    let worked = async {
        // ── main: workload ‖ faults ‖ crashes ───────────────────────────
        let main =
            main_phase(infra, plan, env, &history, &direct, downstream.clone(), &mut background, progress, interrupt)
                .await;

        // ── heal: always ────────────────────────────────────────────────
        // Whatever the main phase did — finished, failed, interrupted — no
        // toxic outlives it.
        progress.phase(plan.strategy, "heal");
        let healed = infra.heal().await;
        let faults = main?;
        healed?;

        // ── drain ───────────────────────────────────────────────────────
        progress.phase(plan.strategy, "drain");
        let drain = drain(infra, plan, env, &background, downstream.as_deref(), interrupt).await?;
        let backlog = background.backlog(env).await;
        Ok::<_, Error>((faults, drain, backlog))
    }
    .await;
    // The relay or connector stops on every path: left running after an
    // error or Ctrl-C, it would keep working against a namespace that the
    // cleanup is about to drop (and a connector would hold its slot).
    background.stop().await;
    let (faults, drain, backlog) = worked?;

    // ── snapshot ────────────────────────────────────────────────────────
    progress.phase(plan.strategy, "snapshot");
    let downstream_state = downstream.map(|d| d.state());
    let snapshot = take_snapshot(infra, plan, env, &direct, downstream_state, backlog, drain).await?;
    direct.close().await;

    // ── reconcile ───────────────────────────────────────────────────────
    let events = history.events();
    let findings = reconcile(&events, &snapshot);
    progress.done(plan.strategy);
    Ok(RunResult {
        strategy: plan.strategy,
        expected: plan.scenario.expected(plan.strategy),
        findings,
        namespace: namespace.clone(),
        history: events,
        snapshot,
        faults,
    })
}

/// A crash or restart due at a point of the main phase.
#[derive(Debug, Clone, Copy)]
enum Step {
    Crash(Component),
    Restart(Component),
}

/// The main phase: the app's tasks and the fault schedule run for the
/// workload's duration; crashes happen on time. Returns the faults applied.
#[allow(clippy::too_many_arguments)]
async fn main_phase(
    infra: &Infra,
    plan: &Plan,
    env: &Env,
    history: &History,
    direct: &PgPool,
    downstream: Option<Arc<Downstream>>,
    background: &mut Background,
    progress: &Progress,
    interrupt: &CancellationToken,
) -> Result<Vec<Applied>> {
    let clock = history.clock();
    let task_env =
        TaskEnv { workload: plan.workload.clone(), history: history.clone(), direct: direct.clone(), downstream };
    let mut app = Some(Arc::new(App::connect(env)?));
    let mut tasks = Some(AppTasks::spawn(app.clone().expect("just connected"), &task_env));

    // The fault schedule runs on its own task, on the run's clock.
    let log = FaultLog::default();
    let mut schedule = {
        let (schedule, proxy, log) = (plan.schedule.clone(), infra.proxy.clone(), log.clone());
        tokio::spawn(async move { faults::execute(&schedule, &proxy, clock, &log).await })
    };
    let mut schedule_running = true;

    // Crashes and restarts, in time order.
    let mut steps: Vec<(Duration, Step)> = Vec::new();
    for crash in &plan.schedule.crashes {
        steps.push((crash.at, Step::Crash(crash.component)));
        steps.push((crash.at + crash.restart_after, Step::Restart(crash.component)));
    }
    steps.sort_by_key(|(at, _)| *at);
    let mut steps = steps.into_iter().peekable();

    let end = tokio::time::Instant::from_std(clock.at(plan.workload.duration));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let outcome: Result<()> = loop {
        let next_step = steps.peek().map(|(at, _)| tokio::time::Instant::from_std(clock.at(*at))).filter(|t| *t < end);
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break Ok(()),
            _ = interrupt.cancelled() => break Err(Error::Interrupted),
            done = &mut schedule, if schedule_running => {
                schedule_running = false;
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break Err(e),
                    Err(e) => break Err(Error::Config(format!("the fault schedule stopped unexpectedly: {e}"))),
                }
            }
            _ = tokio::time::sleep_until(next_step.unwrap_or(end)), if next_step.is_some() => {
                let (_, step) = steps.next().expect("peeked");
                match step {
                    // The process-death imitation (see `crash_writer`).
                    Step::Crash(Component::Writer) => crash_writer(history, tasks.take(), app.take()).await,
                    Step::Restart(Component::Writer) => {
                        // Recorded before the new app's first order can be.
                        history.crash("writer", true);
                        let fresh = Arc::new(App::connect(env)?);
                        tasks = Some(AppTasks::spawn(fresh.clone(), &task_env));
                        app = Some(fresh);
                    }
                    // A relay or connector crash only hits a strategy that has one.
                    Step::Crash(component) if background.is(component) => {
                        history.crash(component.as_str(), false);
                        background.crash().await;
                    }
                    Step::Restart(component) if background.is(component) => {
                        background.restart(env, history).await?;
                        history.crash(component.as_str(), true);
                    }
                    Step::Crash(_) | Step::Restart(_) => {}
                }
            }
            _ = tick.tick() => progress.main(plan, history),
        }
    };

    // No new orders; those in flight finish (each leg is bounded).
    let in_flight_limit = plan.tuning.db_timeout * 3 + plan.tuning.publish_timeout + Duration::from_secs(5);
    if let Some(t) = tasks.take() {
        if outcome.is_ok() {
            progress.phase(plan.strategy, "finishing in-flight orders");
            t.stop(in_flight_limit).await;
        } else {
            t.abort().await;
        }
    }
    schedule.abort();
    // A component whose restart falls after the end comes back now, so that
    // the drain phase can let it catch up.
    for (_, step) in steps {
        if let Step::Restart(component) = step {
            if component != Component::Writer && background.is(component) {
                background.restart(env, history).await?;
                history.crash(component.as_str(), true);
            }
        }
    }
    outcome.map(|()| log.entries())
}

/// A writer crash, the process-death imitation: every app task stops where it
/// is, then the app's pool and producer are dropped. Public so that tests can
/// crash an app exactly as a scenario does; `tests/crash.rs` shows that it has
/// each effect of a real process death.
pub async fn crash_writer(history: &History, tasks: Option<AppTasks>, app: Option<Arc<App>>) {
    if let Some(t) = tasks {
        t.abort().await;
    }
    // The moment of death, recorded once nothing of the app runs any more and
    // before the teardown: no event of the dead app can follow it.
    history.crash("writer", false);
    if let Some(a) = app {
        crash_app(a).await;
    }
}

/// Drops a crashed app's pool and producer the way a dying process would:
/// open transactions end with their connections (the server rolls them
/// back), and messages still in the producer's queue are purged, unsent.
async fn crash_app(app: Arc<App>) {
    let pool = app.db().pool.clone();
    let _ = tokio::time::timeout(Duration::from_secs(2), pool.close()).await;
    // Dropping librdkafka's producer joins its thread: off the async workers.
    let _ = tokio::task::spawn_blocking(move || drop(app)).await;
}

/// Waits until the background component has published everything and the
/// downstream consumer has read the whole topic, up to the drain timeout.
async fn drain(
    infra: &Infra,
    plan: &Plan,
    env: &Env,
    background: &Background,
    downstream: Option<&Downstream>,
    interrupt: &CancellationToken,
) -> Result<DrainReport> {
    let started = Instant::now();
    let deadline = started + plan.tuning.drain_timeout;
    loop {
        let published = background.caught_up(env).await;
        let (consumed, behind) = match downstream {
            None => (true, None),
            Some(consumer) => match crate::kafka::topic::high_watermarks(&infra.kafka, &env.topic).await {
                Ok(marks) => {
                    let behind = consumer.behind(&marks);
                    (consumer.caught_up(&marks), Some(behind))
                }
                Err(e) => {
                    tracing::debug!("cannot read the topic's high watermarks yet: {e}");
                    (false, None)
                }
            },
        };
        if published && consumed {
            return Ok(DrainReport { completed: true, waited_ms: started.elapsed().as_millis() as u64, behind: None });
        }
        if Instant::now() >= deadline {
            let mut what = Vec::new();
            if !published {
                what.push(match background.last_error() {
                    Some(error) => format!("the relay/connector had not published everything ({error})"),
                    None => "the relay/connector had not published everything".to_string(),
                });
            }
            if let Some(n) = behind.filter(|_| !consumed) {
                what.push(format!(
                    "the downstream consumer was {} records behind{}",
                    n,
                    downstream.and_then(|d| d.last_error()).map(|e| format!(" (last error: {e})")).unwrap_or_default()
                ));
            }
            return Ok(DrainReport {
                completed: false,
                waited_ms: started.elapsed().as_millis() as u64,
                behind: Some(what.join("; ")),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = interrupt.cancelled() => return Err(Error::Interrupted),
        }
    }
}

/// The final read, directly from every store.
async fn take_snapshot(
    infra: &Infra,
    plan: &Plan,
    env: &Env,
    direct: &PgPool,
    downstream: Option<crate::snapshot::DownstreamState>,
    backlog: Option<crate::snapshot::Backlog>,
    drain: DrainReport,
) -> Result<Snapshot> {
    let (orders, stock) = crate::db::read_tables(direct).await.map_err(|e| {
        Error::refused(
            "PostgreSQL",
            crate::db::address(&env.db),
            format!("read the tables of schema {}", env.schema),
            e,
        )
    })?;
    let topic = if plan.strategy.publishes() {
        Some(crate::kafka::topic::read_all(&infra.kafka, &env.topic, Duration::from_secs(30)).await)
    } else {
        None
    };
    let cache = if plan.strategy.caches() {
        let cache = Cache::new(&env.redis_url, None, &env.redis_prefix, Duration::from_secs(5))?;
        Some(
            cache
                .read_all()
                .await
                .map(|entries| {
                    entries.into_iter().map(|(product_id, value)| CachedEntry { product_id, value }).collect()
                })
                .map_err(|e| format!("{e:#}")),
        )
    } else {
        None
    };
    Ok(Snapshot { orders, stock, topic, cache, downstream, backlog, drain })
}

/// Removes a run's namespace: schema, topic, cache keys, and whatever the
/// strategy created (a replication slot holds WAL forever if left behind).
async fn cleanup(infra: &Infra, env: &Env, namespace: &Namespace) {
    if let Err(e) = crate::strategy::cleanup(env).await {
        eprintln!("warning: {e:#}");
    }
    if let Err(e) = crate::db::drop_schema(&env.db, &namespace.schema).await {
        eprintln!("warning: could not drop schema {}: {e:#}", namespace.schema);
    }
    // After the schema and the slot (a database with a slot cannot be dropped).
    if let Some(name) = &namespace.database {
        if let Err(e) = crate::db::drop_database(&infra.db, name).await {
            eprintln!("warning: could not drop database {name}: {e:#}");
        }
    }
    if infra.embedded.is_none() {
        crate::kafka::topic::delete_topic(&infra.kafka, &namespace.topic).await;
    }
    if env.strategy.caches() {
        if let Ok(cache) = Cache::new(&env.redis_url, None, &namespace.redis_prefix, Duration::from_secs(5)) {
            if let Err(e) = cache.delete_all().await {
                eprintln!("warning: could not delete Redis keys {}*: {e:#}", namespace.redis_prefix);
            }
        }
    }
}
