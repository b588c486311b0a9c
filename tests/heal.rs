//! Heal on every path: whatever ends the main phase — a fault step the
//! proxy refuses, a signal — every proxy is enabled again with no toxic on
//! it, the fault schedule cannot add one after the heal, no app task is
//! left running, and the namespace is removed.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dualwrite::config::{Services, Tuning, Workload};
use dualwrite::error::Error;
use dualwrite::infra::Infra;
use dualwrite::progress::Progress;
use dualwrite::proxy::{Stream, Toxic, ToxicKind};
use dualwrite::runner::{self, Plan, Run};
use dualwrite::scenario::schedule::{Fault, Schedule, Window};
use dualwrite::scenario::Scenario;
use dualwrite::signals::{Interrupt, Signal};
use dualwrite::strategy::Strategy;

fn window(link: &str, from_ms: u64, until_ms: u64, fault: Fault) -> Window {
    Window { link: link.into(), from: Duration::from_millis(from_ms), until: Duration::from_millis(until_ms), fault }
}

fn latency(ms: i64) -> Fault {
    Fault::Toxic { toxic: Toxic::new(ToxicKind::Latency { latency: ms, jitter: 0 }, Stream::Downstream) }
}

/// A schedule the proxy refuses at 1 s: a fault on a link it does not
/// have. Before it, a toxic on `postgres` (so that there is something to
/// heal); after it, one on `redis` at 2 s (which a schedule left running
/// would add after the heal).
fn refused_at_one_second() -> Schedule {
    Schedule {
        windows: vec![
            window("postgres", 200, 20_000, latency(50)),
            window("no_such_link", 1_000, 20_000, Fault::Down),
            window("redis", 2_000, 20_000, latency(50)),
        ],
        ..Schedule::default()
    }
}

fn plan(strategy: Strategy, schedule: Schedule) -> Plan {
    Plan {
        strategy,
        scenario: Arc::new(Scenario::load("calm").unwrap()),
        schedule,
        workload: Workload {
            seed: 1,
            duration: Duration::from_secs(20),
            readers: Duration::from_millis(100),
            writers: Duration::from_millis(200),
            writer_tasks: 2,
            products: 6,
            initial_stock: 1000,
        },
        tuning: Tuning::default(),
        keep: false,
    }
}

/// Every proxy enabled, no toxic anywhere.
async fn assert_healed(infra: &Infra, when: &str) {
    for (name, proxy) in infra.proxy.proxies().await.unwrap() {
        assert!(proxy.enabled && proxy.toxics.is_empty(), "{when}: {name} still faulty: {proxy:?}");
    }
}

fn schema_exists(schema: &str) -> bool {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-tAqX", "-c"])
        .arg(format!("SELECT 1 FROM pg_namespace WHERE nspname = '{schema}'"))
        .output()
        .expect("psql");
    !String::from_utf8_lossy(&output.stdout).trim().is_empty()
}

/// Phase by phase, to look between them: the main phase returns the
/// proxy's refusal, and by then every app task has stopped (the history no
/// longer grows); the heal leaves no toxic, and none appears later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_fault_step_stops_every_task_and_nothing_comes_after_the_heal() {
    let infra = Infra::start(&Services::local()).await.expect("the services are reachable");
    let plan = plan(Strategy::Naive, refused_at_one_second());
    let interrupt = Interrupt::new();
    let progress = Progress::hidden();
    let mut run = Run::new(&infra, &plan, &progress, &interrupt);
    run.prepare().await.expect("prepared");
    let mut live = run.start().await.expect("started");

    let main = run.main(&mut live).await;
    assert!(matches!(main, Err(Error::Proxy(_))), "the refusal ends the main phase: {main:?}");
    let took = live.history().clock().now();
    assert!(took < 3_000, "it ended at the refusal, not at the end of the run: {took} ms");
    // The app ran (readers read every 100 ms), and has stopped.
    let events = live.history().events().len();
    assert!(events > 5, "the app was running: {events} events");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(live.history().events().len(), events, "no app task still runs after the main phase");
    // The postgres toxic is still on: the heal has not happened yet.
    let before = infra.proxy.proxies().await.unwrap();
    assert!(!before["postgres"].toxics.is_empty(), "window 0 was applied: {:?}", before["postgres"]);

    run.heal().await.expect("healed");
    assert_healed(&infra, "right after the heal").await;
    // Past 2 s on the run's clock, when window 2 would have been added.
    let wait = 2_500u64.saturating_sub(live.history().clock().now());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_healed(&infra, "after window 2's start").await;

    let schema = run.namespace().schema.clone();
    drop(live);
    run.cleanup().await;
    assert!(!schema_exists(&schema), "{schema} was left behind");
    infra.shutdown().await;
}

/// A signal ends the main phase while the fault schedule still has a window
/// to open (at 2.5 s): the schedule is stopped before the heal, so the heal
/// is the last word and no toxic appears after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_stops_the_fault_schedule_before_the_heal() {
    let infra = Infra::start(&Services::local()).await.expect("the services are reachable");
    let schedule = Schedule {
        windows: vec![window("postgres", 200, 20_000, latency(50)), window("redis", 2_500, 20_000, latency(50))],
        ..Schedule::default()
    };
    let plan = plan(Strategy::Naive, schedule);
    let interrupt = Interrupt::new();
    let progress = Progress::hidden();
    let mut run = Run::new(&infra, &plan, &progress, &interrupt);
    run.prepare().await.expect("prepared");
    let mut live = run.start().await.expect("started");
    let pressed = interrupt.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        pressed.press(Signal::Interrupt);
    });

    let main = run.main(&mut live).await;
    assert!(matches!(main, Err(Error::Interrupted(Signal::Interrupt))), "{main:?}");
    let events = live.history().events().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(live.history().events().len(), events, "no app task still runs after the main phase");
    run.heal().await.expect("healed");
    assert_healed(&infra, "right after the heal").await;
    let wait = 3_500u64.saturating_sub(live.history().clock().now());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_healed(&infra, "after the redis window's start").await;

    drop(live);
    run.cleanup().await;
    infra.shutdown().await;
}

/// The same refusal through `runner::run`: the error comes back, the proxy
/// is healed, the namespace is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_fault_step_is_refused_returns_the_error_healed_and_clean() {
    let infra = Infra::start(&Services::local()).await.expect("the services are reachable");
    let plan = plan(Strategy::Outbox, refused_at_one_second());
    let result = runner::run(&infra, &plan, &Progress::hidden(), &Interrupt::new()).await;
    let error = result.expect_err("the proxy refused a step");
    let text = dualwrite::error::chain(&error);
    assert!(text.contains("no_such_link"), "the error names the refused link: {text}");
    assert_healed(&infra, "after the run").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_healed(&infra, "after window 2's start").await;
    infra.shutdown().await;
}

/// A signal in the middle of a fault window: the run returns `Interrupted`
/// with the signal's exit code, healed, its namespace gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_in_a_fault_window_returns_interrupted_healed_and_clean() {
    let infra = Infra::start(&Services::local()).await.expect("the services are reachable");
    let schedule = Schedule {
        windows: vec![window("postgres", 200, 20_000, latency(300)), window("kafka", 200, 20_000, Fault::Down)],
        ..Schedule::default()
    };
    let plan = plan(Strategy::Cdc, schedule);
    let interrupt = Interrupt::new();
    let pressed = interrupt.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        pressed.press(Signal::Terminate);
    });
    let result = runner::run(&infra, &plan, &Progress::hidden(), &interrupt).await;
    let error = result.expect_err("stopped by the signal");
    assert!(matches!(error, Error::Interrupted(Signal::Terminate)), "{error:?}");
    assert_eq!(error.exit_code(), 143);
    assert_healed(&infra, "after the run").await;
    assert!(interrupt.held().is_empty(), "the run says it holds nothing: {:?}", interrupt.held());
    infra.shutdown().await;
}
