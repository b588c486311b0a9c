//! The runner: one strategy under one scenario, in phases.
//!
//! ```text
//! prepare   → a lease, then a fresh namespace: schema + tables, topic, key prefix
//! main      → writers ‖ readers ‖ fault schedule ‖ crashes ‖ progress
//! heal      → reset every proxy — always, even after an error or a signal
//! drain     → let the relay / connector / downstream consumer catch up (bounded)
//! snapshot  → read the database, the whole topic and the cache, directly
//!             (the topic's read follows it from the start, and ends here)
//! reconcile → compare the history with the snapshot (pure)
//! cleanup   → drop the namespace (unless --keep), give the lease back
//! ```
//!
//! The shape is Jepsen's: work and faults together, then heal, then let the
//! system recover, then a final read that the checker compares with what
//! every client was told. [`run`] reads top to bottom in that order, one
//! method of [`Run`] per phase.
//!
//! Two rules keep a run safe on a server it shares with others. Nothing
//! skips the heal or the cleanup: each phase returns its error instead of
//! leaving early, and `run` decides what to do next only once every
//! component has stopped. And while a store the run uses is watched
//! directly ([`watch`]), a store that dies is a tool error that says so,
//! not a verdict.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::cache::Cache;
use crate::config::{Tuning, Workload};
use crate::consumer::Downstream;
use crate::error::{Error, Result};
use crate::faults::Applied;
use crate::history::{Clock, Events, History};
use crate::infra::Infra;
use crate::kafka::read::TopicTail;
use crate::lease::Lease;
use crate::leftovers::REMOVE_COMMAND;
use crate::progress::Progress;
use crate::reconcile::{reconcile, Findings};
use crate::scenario::schedule::Schedule;
use crate::scenario::Scenario;
use crate::signals::{Interrupt, Signal};
use crate::snapshot::{Backlog, CachedEntry, DownstreamState, DrainReport, Snapshot};

/// A relay's or connector's backlog as read: the figures, or why they could not be read.
type BacklogRead = std::result::Result<Backlog, String>;
use crate::generate;
use crate::strategy::background::Background;
use crate::strategy::{App, Env, Expectation, Strategy};

mod cleanup;
mod main_phase;
pub mod watch;

pub use main_phase::crash_writer;
use watch::{Outage, Probe, Watch};

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
    pub history: Events,
    pub snapshot: Snapshot,
    /// The faults as they were applied.
    pub faults: Vec<Applied>,
    /// Stores that were unreachable for a while, though no fault was
    /// injected on them (see [`watch`]).
    pub outages: Vec<Outage>,
    /// How long each phase took, in the order they ran (cleanup included):
    /// what a run costs beyond its workload (`make bench` prints it).
    pub phases: Vec<(&'static str, Duration)>,
}

/// How long the app's producer may take to start before the clock does
/// (on a healthy link it takes milliseconds).
const WARM_UP: Duration = Duration::from_secs(5);

/// How often the drain looks again: each look is a query and a watermark
/// request, cheap beside the time a run waits for a late event, and a
/// drain that is done is seen to be done within this.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Runs one strategy. A signal on `interrupt` stops the run: it heals and
/// cleans up, and returns [`Error::Interrupted`].
pub async fn run(infra: &Infra, plan: &Plan, progress: &Progress, interrupt: &Interrupt) -> Result<RunResult> {
    let mut run = Run::new(infra, plan, progress, interrupt);
    let mut result = run.phases().await;
    if let (Err(Error::Interrupted(signal)), Some(phase)) = (&result, run.stopped_in()) {
        tracing::info!("{}: stopped by {} during {phase}", plan.strategy, signal.name());
    }
    // Whatever happened above: the namespace goes (unless kept), the lease last.
    run.cleanup().await;
    if let Ok(result) = &mut result {
        result.phases = run.phase_times();
    }
    result
}

/// One run, phase by phase. Each method is one phase of the module doc;
/// [`run`] calls them in order, and tests call them one by one to look at a
/// run between two phases.
pub struct Run<'a> {
    infra: &'a Infra,
    plan: &'a Plan,
    progress: &'a Progress,
    interrupt: &'a Interrupt,
    namespace: Namespace,
    /// What the strategy is built from (the namespace, how to reach each store).
    env: Env,
    /// Held from before the namespace exists until after it is gone.
    lease: Option<Arc<Lease>>,
    /// What prepare created, so that cleanup removes exactly that.
    created: Created,
    /// The store that died, if one did: cleanup does not wait on it.
    dead_store: Option<&'static str>,
    /// The phase under way, and the one a signal stopped, for the log.
    phase: std::sync::Mutex<(&'static str, Option<&'static str>)>,
    /// When each phase began, for [`RunResult::phases`].
    began: std::sync::Mutex<Vec<(&'static str, Instant)>>,
}

/// What prepare created.
#[derive(Debug, Default, Clone, Copy)]
struct Created {
    database: bool,
    schema: bool,
    topic: bool,
    /// The strategy's own resources (a CDC run's slot and publication).
    strategy: bool,
}

/// What runs while the run is live: started after prepare, stopped on
/// every path before cleanup.
pub struct Live {
    history: History,
    /// The checker's own connection: directly to Postgres, never through a fault.
    direct: PgPool,
    downstream: Option<Arc<Downstream>>,
    /// The checker's read of the topic, following it from the start; the
    /// snapshot takes it and reads on to the end.
    tail: Option<TopicTail>,
    /// The relay or connector; `None` once stopped.
    background: Option<Background>,
    watch: Watch,
    /// The app, connected before the clock starts; the main phase takes it.
    app: Option<Arc<App>>,
}

impl Live {
    /// The run's history so far.
    pub fn history(&self) -> &History {
        &self.history
    }
}

impl<'a> Run<'a> {
    pub fn new(infra: &'a Infra, plan: &'a Plan, progress: &'a Progress, interrupt: &'a Interrupt) -> Run<'a> {
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
        Run {
            infra,
            plan,
            progress,
            interrupt,
            namespace,
            env,
            lease: None,
            created: Created::default(),
            dead_store: None,
            phase: std::sync::Mutex::new(("prepare", None)),
            began: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Where the run keeps its data.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The phases from prepare to reconcile. Returns early only where
    /// nothing is left running: every component started in `start` is
    /// stopped before any error of main, heal or drain is returned.
    async fn phases(&mut self) -> Result<RunResult> {
        // Errors here need no special care: what prepare made is recorded
        // in `created` as it is made, and `run` cleans it up.
        self.prepare().await?;
        let mut live = self.start().await?;

        // ── main: workload ‖ faults ‖ crashes ──────────────────────────
        // Its result is kept, not `?`-ed: an error here is exactly when
        // the heal matters most.
        let main = self.main(&mut live).await;
        // ── heal: always ───────────────────────────────────────────────
        let healed = self.heal().await;
        // ── drain: only after a main phase that ran to its end ─────────
        // After an error or a signal the run has no result to wait for.
        let completed = main.is_ok() && healed.is_ok();
        let drained = if completed { Some(self.drain(&live).await) } else { None };
        // The relay or connector stops on every path: left running after an
        // error or a signal, it would keep working against a namespace that
        // the cleanup is about to drop (and a connector would hold its slot).
        // Its backlog is evidence for the snapshot, read only when there
        // will be one.
        let read_backlog = matches!(drained, Some(Ok(_)));
        let backlog = self.stop_background(&mut live, read_backlog).await;
        // The first error is the cause: a heal that failed after a main
        // phase that failed is a consequence, or beside the point.
        let worked = match (main, healed, drained) {
            (Ok(faults), Ok(()), Some(Ok(drain))) => Ok((faults, drain)),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Some(Err(e))) => Err(e),
            (Ok(_), Ok(()), None) => unreachable!("a successful main phase and heal are followed by a drain"),
        };
        let (faults, drain) = match worked {
            Ok(worked) => worked,
            Err(e) => {
                // A dead store is not waited on by the cleanup.
                self.note_death(&e);
                live.watch.stop().await;
                return Err(e);
            }
        };

        // ── snapshot ───────────────────────────────────────────────────
        // The watch runs through the snapshot: a store that dies while it
        // is read ends the snapshot within the watch's limit (a read of a
        // store that is only slow may wait longer), and the outage says why.
        let tail = live.tail.take();
        let snapshot = tokio::select! {
            snapshot = self.snapshot(&live, tail, drain, backlog) => snapshot,
            _ = live.watch.died() => Err(self.store_died(&live)),
        };
        if let Err(e) = &snapshot {
            self.note_death(e);
        }
        let outages = live.watch.stop().await;
        live.direct.close().await;
        let snapshot = snapshot?;

        // ── reconcile ──────────────────────────────────────────────────
        Ok(self.reconcile(&live.history, snapshot, faults, outages))
    }

    /// prepare: the lease first, then the namespace, each part recorded as
    /// it is made so that cleanup (or the user, after a third Ctrl-C) knows
    /// exactly what exists.
    pub async fn prepare(&mut self) -> Result<()> {
        self.enter("prepare");
        // A signal during `Infra::start` (or an earlier strategy of a
        // compare) must not create a namespace only to drop it.
        self.check_interrupt()?;
        // Logged so that a user (and the signal tests) can find the run's
        // data with psql and redis-cli.
        tracing::info!("{}: namespace {}", self.plan.strategy, self.namespace.run_id);
        // The lease before anything it covers exists: `doctor --drop-stale`
        // reads "named like a run, and no lease" as "that run is over".
        let id = crate::lease::run_id_of(&self.namespace.run_id).expect("namespaces are named after a run id");
        self.lease = Some(Arc::new(Lease::acquire(&self.infra.db, id).await?));
        // Start from healed links, whatever an earlier run left behind.
        self.infra.heal().await?;
        let name = self.namespace.run_id.clone();
        // Each part is held *before* it is made: a call cut short may still
        // have made it on the server, and a third Ctrl-C should name it.
        // Between parts the run looks for a signal: each step is bounded,
        // but together they can take seconds (creating a slot waits for the
        // transactions running anywhere on the server).
        if let Some(database) = &self.namespace.database {
            self.hold(format!("database {database}"));
            crate::db::create_database(&self.infra.db, database).await?;
            self.created.database = true;
        }
        self.check_interrupt()?;
        self.hold(format!("schema {name}"));
        if self.infra.embedded.is_none() {
            // The embedded broker's topics end with the process; a real one's stay.
            self.hold(format!("topic {name}"));
        }
        // The schema and the topic at once: two services, no order between them.
        let workload = &self.plan.workload;
        let (schema, topic) = tokio::join!(
            crate::db::create_schema(&self.env.db, &self.namespace.schema, workload.products, workload.initial_stock),
            self.infra.create_topic(&self.namespace.topic)
        );
        self.created.schema = schema.is_ok();
        self.created.topic = topic.is_ok();
        schema?;
        topic?;
        self.check_interrupt()?;
        if self.plan.strategy.needs_own_database() {
            self.hold(format!("replication slot {name}"));
        }
        // Marked before the call for the same reason: the strategy's
        // cleanup drops what exists and ignores what does not.
        self.created.strategy = true;
        crate::strategy::prepare(&self.env).await?;
        // Readers fill the cache from the first beat of the main phase.
        if self.plan.strategy.caches() {
            self.hold(format!("cache keys {}*", self.namespace.redis_prefix));
        }
        Ok(())
    }

    /// What runs beside the workload: the checker's connection, the
    /// downstream consumer, the relay or connector, the store watch. The
    /// run's clock starts at the end, when everything is ready.
    pub async fn start(&mut self) -> Result<Live> {
        // Two connections: the readers' truth and the snapshot share it, and
        // a slow snapshot query must not stall a reader's sample.
        let direct = crate::db::connect_direct(&self.env.db, Some(&self.namespace.schema), 2).await?;
        // The consumer is fetching before the clock starts, so that the
        // event lag it measures is the strategy's, not its own start-up;
        // and so is the checker's read, so that after the drain only the
        // last records are left to read (`kafka/read.rs`).
        let ready = async {
            if !self.plan.strategy.publishes() {
                return Ok::<_, Error>(None);
            }
            let unreachable =
                |e| Error::unreachable("Kafka", self.infra.kafka.clone(), "check --brokers / KAFKA_BROKERS", e);
            let (consumer, tail) = tokio::join!(
                Downstream::connect(&self.infra.kafka, &self.namespace.topic),
                TopicTail::start(&self.infra.kafka, &self.namespace.topic)
            );
            Ok(Some((consumer.map_err(unreachable)?, tail.map_err(unreachable)?)))
        };
        // The app's pool is lazy, but its producer starts now, before any
        // fault: a running service's would be up before its first order.
        let app = async {
            let app = Arc::new(App::connect(&self.env)?);
            app.warm_up(WARM_UP).await;
            Ok::<_, Error>(app)
        };
        // The three start side by side: none waits for another.
        let (ready, background, app) = tokio::join!(ready, Background::start(&self.env), app);
        let (ready, background, app) = (ready?, background?, app?);
        // The run's clock starts now: everything before was set-up, and the
        // fault schedule, the workload and every latency count from here.
        let clock = Clock::start();
        let history = History::new(clock);
        let (downstream, tail) = match ready {
            Some((consumer, tail)) => (Some(Arc::new(consumer.start(clock))), Some(tail)),
            None => (None, None),
        };
        // On the same clock, so that an outage reads against the faults.
        let watch = Watch::start(clock, self.probes()?);
        Ok(Live { history, direct, downstream, tail, background: Some(background), watch, app: Some(app) })
    }

    /// The stores to watch directly: Postgres always (on the lease's own
    /// connection), Redis when the strategy caches, the broker when it
    /// publishes and its own address is known — not the embedded broker,
    /// which lives and dies with dualwrite, and not one behind an external
    /// Toxiproxy, whose address dualwrite is never told.
    fn probes(&self) -> Result<Vec<Probe>> {
        let lease = self.lease.clone().expect("prepare took the lease");
        let mut probes = vec![Probe::Postgres { lease, address: crate::db::address(&self.infra.db) }];
        if self.plan.strategy.caches() {
            let cache = Cache::new(&self.env.redis_url, None, "dw_watch:", Duration::from_secs(2))?;
            probes.push(Probe::Redis { cache: Box::new(cache) });
        }
        let services = &self.infra.services;
        if self.plan.strategy.publishes() && self.infra.embedded.is_none() && services.toxiproxy.is_none() {
            if let Some(first) = services.brokers.as_deref().and_then(|b| b.split(',').next()) {
                probes.push(Probe::Kafka { address: first.trim().to_string() });
            }
        }
        Ok(probes)
    }

    /// heal: every toxic removed, every proxy enabled. Retried briefly: the
    /// proxy may be busy closing the connections a toxic touched.
    pub async fn heal(&self) -> Result<()> {
        self.enter("heal");
        // `POST /reset` is one call, bounded by the proxy client's timeout.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.infra.heal().await {
                Ok(()) => {
                    // Nothing to tell a user who quits now about the proxy.
                    if let Some(url) = &self.infra.services.toxiproxy {
                        self.interrupt.release(&format!("faults on the proxy at {url}"));
                    }
                    return Ok(());
                }
                Err(e) if attempt >= 3 => return Err(e),
                Err(e) => {
                    tracing::warn!("healing the fault proxy failed ({}); retrying", crate::error::chain(&e));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// drain: waits until the background component has published
    /// everything and the downstream consumer has read the whole topic, up
    /// to the drain timeout. A signal or a dead store ends it early.
    pub async fn drain(&self, live: &Live) -> Result<DrainReport> {
        self.enter("drain");
        let background = live.background.as_ref().expect("the background runs until after the drain");
        let downstream = live.downstream.as_deref();
        let started = Instant::now();
        let deadline = started + self.plan.tuning.drain_timeout;
        // The checker's read's client, connected since the start.
        let marks = live.tail.as_ref().map(TopicTail::watermarks);
        loop {
            // The two looks at once: a query and a watermark request.
            let consumer_looked = async {
                match (downstream, marks) {
                    (Some(consumer), Some(marks)) => match marks.high_watermarks().await {
                        Ok(marks) => (consumer.caught_up(&marks), Some(consumer.behind(&marks))),
                        Err(e) => {
                            tracing::debug!("cannot read the topic's high watermarks yet: {e}");
                            (false, None)
                        }
                    },
                    _ => (true, None),
                }
            };
            let (published, (consumed, behind)) = tokio::join!(background.caught_up(&self.env), consumer_looked);
            let waited_ms = started.elapsed().as_millis() as u64;
            if published && consumed {
                return Ok(DrainReport::complete(waited_ms));
            }
            if Instant::now() >= deadline {
                // Say what was still behind: the verdict must not read a
                // backlog as loss without saying the drain was cut short.
                let mut what = Vec::new();
                if !published {
                    what.push(match background.last_error() {
                        Some(error) => format!("the relay/connector had not published everything ({error})"),
                        None => "the relay/connector had not published everything".to_string(),
                    });
                }
                if let Some(n) = behind.filter(|_| !consumed) {
                    let last = downstream.and_then(|d| d.last_error()).map(|e| format!(" (last error: {e})"));
                    what.push(format!("the downstream consumer was {n} records behind{}", last.unwrap_or_default()));
                }
                // Which part had caught up decides which figures stay known.
                return Ok(DrainReport {
                    completed: false,
                    waited_ms,
                    behind: Some(what.join("; ")),
                    published: background.component().map(|_| published),
                    consumed: downstream.map(|_| consumed),
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_POLL) => {}
                _ = self.interrupt.cancelled() => return Err(self.interrupted()),
                _ = live.watch.died() => return Err(self.store_died(live)),
            }
        }
    }

    /// Stops the relay or connector, reading its backlog first if asked:
    /// what it left unpublished at the end of the drain.
    async fn stop_background(&self, live: &mut Live, read_backlog: bool) -> Option<BacklogRead> {
        let background = live.background.take()?;
        let backlog = if read_backlog { background.backlog(&self.env).await } else { None };
        background.stop().await;
        backlog
    }

    /// snapshot: the final read, directly from every store.
    async fn snapshot(
        &self,
        live: &Live,
        tail: Option<TopicTail>,
        drain: DrainReport,
        backlog: Option<BacklogRead>,
    ) -> Result<Snapshot> {
        self.enter("snapshot");
        // The three stores at once: each read is its own, and none waits
        // for another.
        let tables = crate::db::read_tables(&live.direct);
        // The topic and the cache become part of the verdict: one that
        // cannot be read makes it `unknown`, with the reason.
        let topic = async {
            // To the end the broker signals, naming whatever it did not see.
            Some(tail?.finish(Duration::from_secs(30)).await)
        };
        let cache = async {
            if !self.plan.strategy.caches() {
                return Ok(None);
            }
            let cache = Cache::new(&self.env.redis_url, None, &self.env.redis_prefix, Duration::from_secs(5))?;
            let entries = cache.read_all().await.map_err(|e| crate::error::chain(&e));
            Ok::<_, Error>(Some(entries.map(|entries| {
                entries.into_iter().map(|(product_id, value)| CachedEntry { product_id, value }).collect()
            })))
        };
        let (tables, topic, cache) = tokio::join!(tables, topic, cache);
        // Without the tables there is nothing to reconcile against: an
        // error, not an `unknown` verdict.
        let (orders, stock) = tables.map_err(|e| {
            Error::refused(
                "PostgreSQL",
                crate::db::address(&self.env.db),
                format!("read the tables of schema {}", self.env.schema),
                e,
            )
        })?;
        let cache = cache?;
        let downstream: Option<DownstreamState> = live.downstream.as_ref().map(|d| d.state());
        Ok(Snapshot { orders, stock, topic, cache, downstream, backlog, drain })
    }

    /// reconcile: the history against the snapshot, pure.
    fn reconcile(
        &self,
        history: &History,
        snapshot: Snapshot,
        faults: Vec<Applied>,
        outages: Vec<Outage>,
    ) -> RunResult {
        self.enter("reconcile");
        // Taken, not copied: nothing appends any more, and a copy would
        // hold the whole history twice.
        let events = history.take();
        let findings = reconcile(&events, &snapshot);
        self.progress.done(self.plan.strategy);
        RunResult {
            strategy: self.plan.strategy,
            expected: self.plan.scenario.expected(self.plan.strategy),
            findings,
            namespace: self.namespace.clone(),
            history: events,
            snapshot,
            faults,
            outages,
            phases: Vec::new(),
        }
    }

    /// A phase begins.
    fn enter(&self, phase: &'static str) {
        self.phase.lock().expect("phase mutex poisoned").0 = phase;
        self.began.lock().expect("phase mutex poisoned").push((phase, Instant::now()));
        self.progress.phase(self.plan.strategy, phase);
    }

    /// How long each phase has taken so far: from its start to the next
    /// one's (the last one's to now).
    fn phase_times(&self) -> Vec<(&'static str, Duration)> {
        let began = self.began.lock().expect("phase mutex poisoned");
        let now = Instant::now();
        began
            .iter()
            .enumerate()
            .map(|(i, (phase, at))| (*phase, began.get(i + 1).map_or(now, |next| next.1).duration_since(*at)))
            .collect()
    }

    /// The phase in which the run first noticed a signal.
    fn stopped_in(&self) -> Option<&'static str> {
        self.phase.lock().expect("phase mutex poisoned").1
    }

    /// Records that the run now holds `what`, for a user who quits at once.
    fn hold(&self, what: String) {
        self.interrupt.hold(what, REMOVE_COMMAND);
    }

    /// An error if a signal has stopped the run.
    fn check_interrupt(&self) -> Result<()> {
        if self.interrupt.is_pressed() {
            return Err(self.interrupted());
        }
        Ok(())
    }

    /// The error for a signal, noting the phase it stopped.
    fn interrupted(&self) -> Error {
        let mut phase = self.phase.lock().expect("phase mutex poisoned");
        phase.1 = phase.1.or(Some(phase.0));
        drop(phase);
        Error::Interrupted(self.interrupt.signal().unwrap_or(Signal::Interrupt))
    }

    /// Remembers which store died, so that cleanup does not wait on it.
    fn note_death(&mut self, error: &Error) {
        if let Error::StoreDied { service, .. } = error {
            self.dead_store = Some(service);
        }
    }

    /// The error of the store the watch declared dead.
    fn store_died(&self, live: &Live) -> Error {
        live.watch.take_death().unwrap_or_else(|| Error::Bug {
            what: "a store was declared dead without an error".into(),
            source: "watch".into(),
        })
    }
}
