//! Commit → event lag of each publishing strategy, measured in one run on a
//! calm network, as ratios to the polling outbox.
//!
//! `cargo bench --bench lag [-- SECONDS]` (default 20 s per strategy). The
//! strategies run one after another on the same services and broker, under
//! the same seed, so the ratios compare like with like on this machine; the
//! absolute figures depend on the machine.

use std::sync::Arc;
use std::time::Duration;

use dualwrite::config::{Services, Tuning, Workload};
use dualwrite::infra::Infra;
use dualwrite::progress::Progress;
use dualwrite::runner::{self, Plan};
use dualwrite::scenario::Scenario;
use dualwrite::strategy::Strategy;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20);
    let duration = Duration::from_secs(seconds);
    let scenario = Arc::new(Scenario::load("calm").expect("built in"));
    let infra = Infra::start(&Services::local()).await.expect("the services are up (`make setup`)");
    let strategies = [Strategy::Outbox, Strategy::OutboxCdc, Strategy::Cdc, Strategy::Naive, Strategy::PublishInTx];
    let mut rows = Vec::new();
    for strategy in strategies {
        let plan = Plan {
            strategy,
            scenario: scenario.clone(),
            schedule: scenario.schedule(1, duration).unwrap(),
            // Ten orders a second, so that the percentiles rest on hundreds of events.
            workload: Workload {
                seed: 1,
                duration,
                readers: Duration::from_millis(100),
                writers: Duration::from_millis(400),
                writer_tasks: 4,
                products: 6,
                initial_stock: 1000,
            },
            tuning: Tuning::default(),
            keep: false,
        };
        eprintln!("measuring {strategy} for {seconds} s…");
        let result =
            runner::run(&infra, &plan, &Progress::hidden(), &dualwrite::signals::Interrupt::new()).await.expect("run");
        let l = result.findings.latency;
        rows.push((strategy, result.findings.orders.committed, l.event_lag_p50.unwrap(), l.event_lag_p99.unwrap()));
    }
    infra.shutdown().await;

    let (_, _, base50, base99) = rows[0];
    println!("commit → event lag, calm, {seconds} s per strategy, one run (ratios to the polling outbox)");
    println!(
        "{:<14} {:>7} {:>9} {:>9} {:>10} {:>10}",
        "strategy", "events", "p50 ms", "p99 ms", "p50 ratio", "p99 ratio"
    );
    for (strategy, events, p50, p99) in rows {
        println!(
            "{:<14} {:>7} {:>9.1} {:>9.1} {:>10.2} {:>10.2}",
            strategy.name(),
            events,
            p50,
            p99,
            p50 / base50,
            p99 / base99
        );
    }
    println!("naive and publish-in-tx publish from the writer itself: their lag is the floor (publish-in-tx's is negative: its events arrive before its commits do).");
}
