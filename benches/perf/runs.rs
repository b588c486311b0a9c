//! The strategies under load: each one run at a fixed rate (open loop, as
//! the CLI's writers are) and at saturation, on a calm network, one after
//! another on the same services, embedded broker and built-in proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dualwrite::config::{Tuning, Workload};
use dualwrite::infra::Infra;
use dualwrite::progress::Progress;
use dualwrite::runner::{self, Plan};
use dualwrite::scenario::Scenario;
use dualwrite::signals::Interrupt;
use dualwrite::strategy::Strategy;

use crate::cpu::{Sampler, Used};

/// A rate to run at: orders a second, or as fast as the writers go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    PerSecond(u32),
    /// Eight writer tasks offering 8,000 orders a second, more than any
    /// strategy commits here (each keeps up to `MAX_IN_FLIGHT_PER_WRITER`
    /// in flight and skips the beats it cannot take): the highest rate the
    /// strategy, the pool and the services sustain together. (A shorter
    /// beat measures the writers' timer instead: at 50 µs the eight tasks'
    /// wake-ups took a whole core, and naive fell to 583 orders/s.)
    Saturated,
}

impl Rate {
    pub fn label(self) -> String {
        match self {
            Rate::PerSecond(n) => format!("{n}/s"),
            Rate::Saturated => "max".into(),
        }
    }

    /// Writer tasks and the interval of each.
    fn writers(self) -> (u32, Duration) {
        match self {
            // Four tasks for light loads, as the CLI's default has.
            Rate::PerSecond(n) if n <= 200 => (4, Duration::from_secs_f64(4.0 / f64::from(n))),
            Rate::PerSecond(n) => (8, Duration::from_secs_f64(8.0 / f64::from(n))),
            Rate::Saturated => (8, Duration::from_millis(1)),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub strategy: Strategy,
    pub rate: Rate,
    pub seconds: f64,
    /// Orders begun, committed, and the beats skipped: what the writers
    /// really offered.
    pub orders: dualwrite::reconcile::Orders,
    pub lag_p50: Option<f64>,
    pub lag_p99: Option<f64>,
    pub verdict: String,
    /// The whole `runner::run`, from prepare to cleanup.
    pub wall: Duration,
    /// Every phase but main: what the run costs beyond its workload.
    pub phases: Vec<(&'static str, Duration)>,
    /// The CPU used during the main phase (see `cpu.rs`), if `/proc` could be read.
    pub cpu: Option<Used>,
}

impl Measured {
    pub fn orders_per_second(&self) -> f64 {
        self.orders.committed as f64 / self.seconds
    }
    /// CPU time per committed order during the main phase, in µs: the
    /// machine's, PostgreSQL's and this process's. The orders committed in
    /// the sampled part of the phase are taken in proportion to its length.
    pub fn cpu_per_order(&self) -> Option<(f64, f64, f64)> {
        let cpu = self.cpu?;
        let orders = self.orders.committed as f64 * (cpu.wall / self.seconds).min(1.0);
        let us = |s: f64| s * 1e6 / orders;
        (orders > 0.0).then(|| (us(cpu.machine), us(cpu.postgres), us(cpu.this)))
    }

    /// Whether the writers offered the rate: an order placed on all but
    /// 1 % of their beats.
    pub fn sustained(&self) -> bool {
        self.orders.skipped.total() * 100 <= self.orders.attempted + self.orders.skipped.total()
    }

    /// Wall time beyond the workload's.
    pub fn overhead(&self) -> Duration {
        self.wall.saturating_sub(Duration::from_secs_f64(self.seconds))
    }
}

/// Runs `strategy` at `rate` for `duration`.
pub async fn measure(infra: &Infra, strategy: Strategy, rate: Rate, duration: Duration) -> Measured {
    let scenario = Arc::new(Scenario::load("calm").expect("calm is built in"));
    let (writer_tasks, writers) = rate.writers();
    let plan = Plan {
        strategy,
        scenario: scenario.clone(),
        schedule: scenario.schedule(1, duration).expect("calm has no windows to place"),
        workload: Workload {
            seed: 1,
            duration,
            readers: Duration::from_millis(100),
            writers,
            writer_tasks,
            products: 6,
            initial_stock: 1000,
        },
        tuning: Tuning::default(),
        keep: false,
    };
    eprintln!("perf: {strategy} at {} for {} s…", rate.label(), duration.as_secs());
    let sampler = Sampler::start();
    let started = Instant::now();
    let result = runner::run(infra, &plan, &Progress::hidden(), &Interrupt::new()).await.expect("a calm run completes");
    let wall = started.elapsed();
    // The main phase's place in the run: the phases are in the order they ran.
    let before_main: Duration = result.phases.iter().take_while(|(p, _)| *p != "main").map(|(_, d)| *d).sum();
    let main = result.phases.iter().find(|(p, _)| *p == "main").map_or(Duration::ZERO, |(_, d)| *d);
    let cpu = sampler.stop(started + before_main, started + before_main + main);
    let f = &result.findings;
    Measured {
        strategy,
        rate,
        seconds: duration.as_secs_f64(),
        orders: f.orders,
        lag_p50: f.latency.event_lag_p50,
        lag_p99: f.latency.event_lag_p99,
        verdict: f.verdict.as_str().to_string(),
        wall,
        phases: result.phases.into_iter().filter(|(p, _)| *p != "main").collect(),
        cpu,
    }
}
